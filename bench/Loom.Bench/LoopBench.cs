using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Evaluation;
using Loom.IO;
using Loom.Models;
using Loom.Server;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Bench;

/// <summary>
/// The closed loop, end to end through the HTTP API: a served model answers traffic; simulated annotators (a program
/// judge with label noise, three per response) rate the answers through <c>POST /v1/feedback</c>; <see cref="Improver"/>
/// tunes the deployed version on the feedback since it was trained, the evaluation gate compares the candidate with it,
/// a promoted candidate is hot-swapped into the running server. Task: the product reviews of <see cref="ReviewTask"/>.
/// Three honest rounds, then one round of adversarial feedback (ratings inverted) whose candidate must not be promoted.
/// Reports per round: feedback, agreement (Krippendorff's alpha, ordinal), the gate's win rate against the deployed
/// version, the decision, the candidate's and the served version's win rate against round 0 under the noiseless
/// judge, and wall time. Writes bench/results/loop.json.
/// </summary>
public static class LoopBench
{
    const int SamplesPerPrompt = 4, AnnotatorsPerResponse = 3, AnnotatorPool = 5, EvalSamples = 5;
    const double LabelNoise = 0.2;

    /// <summary>The noiseless judge as the gate's pairwise judge: the higher review score wins, equal scores tie.</summary>
    sealed class ReviewJudge : IPairwiseJudge
    {
        public Task<double> CompareAsync(string prompt, string answerA, string answerB, IReadOnlyList<string> references, CancellationToken cancellationToken = default) =>
            Task.FromResult(Math.Sign(ReviewTask.Judge(answerA) - ReviewTask.Judge(answerB)) * 0.5 + 0.5);
    }

    /// <summary>The judge's score (−4..4) as a 1–5 rating.</summary>
    static int Rating(int score) => 1 + (int)Math.Round((Math.Clamp(score, -4, 4) + 4) / 2.0, MidpointRounding.AwayFromZero);

    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    static async Task<int> RunAsync(string[] args)
    {
        var total = Stopwatch.StartNew();
        int threads = args.Length > 0 && int.TryParse(args[0], out int t) ? t : Environment.ProcessorCount;
        int Argument(int index, int fallback) => args.Length <= index ? fallback
            : int.TryParse(args[index], out int value) && value > 0 ? value : throw new ArgumentException($"argument {index + 1} must be a positive integer, got '{args[index]}'");
        int promptsPerRound = Argument(1, 32), dpoSteps = Argument(2, 40), sftSteps = Argument(3, 40);
        using var compute = new ComputeContext(threads);
        string work = Path.Combine(Path.GetTempPath(), "loom-loop-bench");
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        var task = ReviewTask.Create();
        var tokenizer = task.Tokenizer;
        Console.WriteLine($"loop bench: {threads} threads; {promptsPerRound} new traffic prompts × {SamplesPerPrompt} answers per round (of {task.TrainPrompts.Count}), " +
            $"{AnnotatorsPerResponse} of {AnnotatorPool} simulated annotators per answer, label noise {LabelNoise:P0}; {task.HeldOutPrompts.Count} held-out prompts");

        // ---- round 0: the SFT model of the tuning bench, registered as v0 and served.
        var clock = Stopwatch.StartNew();
        var sft = new Transformer(task.ModelConfig(), seed: 7);
        SupervisedTuner.Run(sft, tokenizer, task.SftExamples, new TuneOptions
        {
            OutputFolder = Path.Combine(work, "sft"), Steps = 400, Batch = 8, LearningRate = 3e-3f, WarmupSteps = 20, Seed = 1, Compute = compute,
        });
        var registry = ModelRegistry.Init(Path.Combine(work, "home"), Path.Combine(work, "sft", TuningLoop.CheckpointFolderName));
        Console.WriteLine($"  round 0: SFT from scratch in {clock.Elapsed.TotalSeconds:F0} s; registered as {registry.Current}");

        using var store = SqliteFeedbackStore.Open(Path.Combine(work, "feedback.db"));
        var traffic = new TrafficFeedback(store);
        await using var versions = await ServedVersions.StartAsync(registry, new ServedVersionsOptions
        {
            ModelName = "reviews", Model = new LoomModelOptions { Compute = compute }, PollInterval = TimeSpan.FromMilliseconds(200),
        });
        await using var app = LoomServer.Build(new ServedModel(versions) { Feedback = traffic }, new ServerOptions { Port = 0 });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = LoomServer.Addresses(app)[0], Timeout = TimeSpan.FromMinutes(5) };

        int stopId = SequenceLogProbs.EndId(tokenizer);
        var heldIds = task.HeldOutPrompts.Select(p => ChatTemplate.Encode([new ChatTurn("user", p)], tokenizer, addGenerationPrompt: true).Ids).ToList();
        int[] Scores(string version) =>
        [
            .. new PolicySampler(Checkpoint.Load(registry.CheckpointOf(version)), compute)
                .Sample(heldIds, EvalSamples, ReviewTask.MaxNewTokens, 1f, stopId, new DeterministicRandom(101))
                .Select(ids => ReviewTask.Judge(tokenizer.Decode(ids, skipSpecialTokens: true))),
        ];
        var roundZero = Scores(registry.Current!);
        var noise = new DeterministicRandom(20261202);
        var rounds = new JsonArray();
        string[] plan = ["honest", "honest", "honest", "adversarial"];
        for (int round = 1; round <= plan.Length; round++)
        {
            clock.Restart();
            bool adversarial = plan[round - 1] == "adversarial";
            string served = registry.Current!;

            // ---- traffic: every train prompt, four sampled answers, through the OpenAI endpoint.
            var answers = new List<(string Id, string Text, string Version)>();
            foreach (string prompt in Enumerable.Range((round - 1) * promptsPerRound, promptsPerRound).Select(i => task.TrainPrompts[i % task.TrainPrompts.Count]))
            {
                var body = new JsonObject
                {
                    ["model"] = "reviews", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
                    ["n"] = SamplesPerPrompt, ["temperature"] = 1.0, ["max_tokens"] = ReviewTask.MaxNewTokens, ["seed"] = round * 1000 + answers.Count,
                };
                using var response = await http.PostAsJsonAsync("/v1/chat/completions", body);
                response.EnsureSuccessStatusCode();
                var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                string id = json["id"]!.GetValue<string>(), version = json["system_fingerprint"]!.GetValue<string>();
                foreach (var choice in json["choices"]!.AsArray())
                {
                    int index = choice!["index"]!.GetValue<int>();
                    answers.Add((index == 0 ? id : $"{id}-{index}", choice["message"]!["content"]!.GetValue<string>(), version));
                }
            }
            double trafficSeconds = clock.Elapsed.TotalSeconds;

            // ---- annotators: three of five per answer rate it through POST /v1/feedback; 20% of ratings are random.
            int posted = 0;
            foreach (var (id, text, _) in answers)
            {
                var who = TuningLoop.Shuffle(AnnotatorPool, noise).Take(AnnotatorsPerResponse);
                foreach (int annotator in who)
                {
                    int rating = Rating(ReviewTask.Judge(text));
                    if (adversarial) rating = 6 - rating;
                    if (noise.NextDouble() < LabelNoise) rating = 1 + (rating + (int)noise.NextInt64(4)) % 5;
                    using var response = await http.PostAsJsonAsync("/v1/feedback", new JsonObject { ["response_id"] = id, ["rating"] = rating, ["user"] = $"annotator-{annotator}" });
                    response.EnsureSuccessStatusCode();
                    posted++;
                }
            }
            double feedbackSeconds = clock.Elapsed.TotalSeconds - trafficSeconds;
            var agreement = await AgreementOfRound(store, traffic, answers.Select(a => a.Id).ToHashSet());

            // ---- improve: tune the deployed version on the feedback since it was trained; gate; promote.
            var report = await Improver.RunAsync(registry, store, new ImproveOptions
            {
                Judge = new ReviewJudge(), JudgeName = "review-score", HeldOutPrompts = [.. task.HeldOutPrompts.Select(p => new EvalTasks.PromptItem(p, []))], SftSteps = sftSteps, DpoSteps = dpoSteps, MinAgree = 2,
                Batch = 16, LearningRate = 1e-3f, Beta = 0.1f, Margin = 0.05, SamplesPerPrompt = 2, MaxNewTokens = ReviewTask.MaxNewTokens,
                Seed = (ulong)round, Compute = compute,
            }, CancellationToken.None);
            double improveSeconds = clock.Elapsed.TotalSeconds - trafficSeconds - feedbackSeconds;

            // ---- the server follows HOME/current; wait for it, then score candidate and served version against round 0.
            while (versions.Current != registry.Current) await Task.Delay(50);
            var (candidateWin, _) = report.Candidate is { } candidate ? ReviewTask.WinRate(Scores(candidate), roundZero) : (double.NaN, 0);
            var (servedWin, _) = ReviewTask.WinRate(Scores(registry.Current!), roundZero);
            string answeredBy = string.Join("+", answers.Select(a => a.Version).Distinct());
            Console.WriteLine($"  round {round} ({plan[round - 1]}): {answers.Count} answers by {answeredBy}, {posted} ratings, alpha {agreement:F3}; " +
                $"gate win rate {report.Evaluation?.WinRate:F3} vs {served} → {report.Decision} ({report.Reason}); " +
                $"candidate vs round 0 {candidateWin:F3}; serving {registry.Current} ({servedWin:F3} vs round 0); {clock.Elapsed.TotalSeconds:F0} s");
            rounds.Add(new JsonObject
            {
                ["round"] = round, ["feedback"] = plan[round - 1], ["served_before"] = served, ["answered_by"] = answeredBy, ["answers"] = answers.Count, ["ratings"] = posted,
                ["krippendorff_alpha_ordinal"] = agreement, ["pairs"] = report.Pairs, ["candidate"] = report.Candidate,
                ["gate_win_rate_vs_served"] = report.Evaluation?.WinRate, ["decision"] = report.Decision.ToString(), ["reason"] = report.Reason,
                ["candidate_win_rate_vs_round0"] = double.IsNaN(candidateWin) ? null : candidateWin, ["served_after"] = registry.Current,
                ["served_win_rate_vs_round0"] = servedWin,
                ["seconds"] = new JsonObject
                {
                    ["traffic"] = Math.Round(trafficSeconds, 1), ["feedback"] = Math.Round(feedbackSeconds, 1), ["improve"] = Math.Round(improveSeconds, 1),
                    ["total"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
                },
            });
        }
        await app.StopAsync();

        var result = new JsonObject
        {
            ["task"] = "product-review sentiment; judge = #positive - #negative words; ratings 1-5 from the judge's score, 20% replaced at random; win rate ties count half",
            ["cpu"] = BenchPaths.CpuModel(), ["threads"] = threads,
            ["settings"] = new JsonObject
            {
                ["prompts_per_round"] = promptsPerRound, ["answers_per_prompt"] = SamplesPerPrompt, ["annotators_per_answer"] = AnnotatorsPerResponse,
                ["annotator_pool"] = AnnotatorPool, ["label_noise"] = LabelNoise, ["min_agree"] = 2, ["sft_steps"] = sftSteps, ["dpo_steps"] = dpoSteps,
                ["margin"] = 0.05, ["eval_samples_per_held_out_prompt"] = EvalSamples,
            },
            ["rounds"] = rounds, ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
        string path = Path.Combine(BenchPaths.ResultsFolder(), "loop.json");
        AtomicFile.WriteAllText(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"total {total.Elapsed.TotalSeconds:F0} s; wrote {path}");
        return 0;
    }

    /// <summary>Krippendorff's alpha (ordinal) over this round's ratings: each answer a unit, its three ratings the values.</summary>
    static async Task<double?> AgreementOfRound(IFeedbackStore store, TrafficFeedback traffic, HashSet<string> responseIds)
    {
        var task = await store.GetTaskAsync(traffic.RatingTaskId, CancellationToken.None)
            ?? throw new InvalidOperationException($"task {traffic.RatingTaskId} missing after the ratings were posted");
        var items = (await store.ListItemsAsync(task.Id, CancellationToken.None)).Where(i => responseIds.Contains(i.Id[..i.Id.LastIndexOf('#')])).ToList();
        var ids = items.Select(i => i.Id).ToHashSet();
        var judgements = (await store.ListJudgementsAsync(new JudgementQuery { TaskId = task.Id }, CancellationToken.None)).Where(j => ids.Contains(j.ItemId)).ToList();
        return Agreement.ForTask(task, items, judgements).KrippendorffAlpha;
    }
}
