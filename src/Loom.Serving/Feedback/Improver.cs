using System.Diagnostics;
using System.Text.Json;
using Loom.Evaluation;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Serving.Feedback;

/// <summary>How a candidate learns from comparisons: DPO on the pairs, or a reward model trained on them and then GRPO.</summary>
public enum ImproveMethod { Dpo, Grpo }

/// <summary>What a round of <see cref="Improver"/> decided.</summary>
public enum ImproveDecision { NothingToDo, Promoted, Rejected }

/// <summary>Settings of one improvement round; null means the default.</summary>
public sealed record ImproveOptions
{
    /// <summary>Compares a candidate's answer with the served version's on each held-out prompt.</summary>
    public required IPairwiseJudge Judge { get; init; }
    /// <summary>The judge's name as recorded in the lineage (e.g. "contains", "reward:DIR").</summary>
    public string JudgeName { get; init; } = "judge";
    /// <summary>Prompts no feedback came from, with references for program judges.</summary>
    public required IReadOnlyList<EvalTasks.PromptItem> HeldOutPrompts { get; init; }
    /// <summary>Only items on which at least this many annotators agree become training data.</summary>
    public int MinAgree { get; init; } = 1;
    /// <summary>Fewer preference pairs than this (and no corrections) means there is nothing to train on.</summary>
    public int MinPairs { get; init; } = 1;
    /// <summary>Only judgements of this task; null = every task.</summary>
    public string? TaskId { get; init; }
    /// <summary>Take judgements with a larger id; null = after the largest id any registered version was trained on.</summary>
    public long? AfterId { get; init; }
    public ImproveMethod Method { get; init; } = ImproveMethod.Dpo;
    /// <summary>Supervised steps on the corrections (and the chosen answers, with <see cref="SftOnChosen"/>); skipped when there are none.</summary>
    public int SftSteps { get; init; } = 30;
    /// <summary>
    /// Also train the supervised stage on the chosen answer of every pair, so DPO starts from a model that already gives
    /// such answers; DPO alone only widens the gap and can lower the likelihood of both answers until the model says little.
    /// </summary>
    public bool SftOnChosen { get; init; } = true;
    /// <summary>DPO steps on the preference pairs.</summary>
    public int DpoSteps { get; init; } = 30;
    /// <summary>With <see cref="ImproveMethod.Grpo"/>: reward-model steps, then GRPO steps.</summary>
    public int RewardSteps { get; init; } = 30;
    public int GrpoSteps { get; init; } = 20;
    /// <summary>DPO β.</summary>
    public float Beta { get; init; } = 0.1f;
    public float LearningRate { get; init; } = 1e-4f;
    /// <summary>Rows (SFT), pairs (reward, DPO) or prompts (GRPO) per step.</summary>
    public int Batch { get; init; } = 8;
    /// <summary>Train LoRA adapters and merge them; null = every weight.</summary>
    public LoraOptions? Lora { get; init; }
    /// <summary>The candidate is promoted only when its win rate is at least 0.5 + Margin.</summary>
    public double Margin { get; init; } = 0.05;
    /// <summary>Answers each model samples per held-out prompt.</summary>
    public int SamplesPerPrompt { get; init; } = 4;
    public float Temperature { get; init; } = 1f;
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>Seeds training and sampling; both models sample with the same seed.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>The threads of training and sampling; null = <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }
    /// <summary>Told each stage as it starts and each tuning step's line.</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>Throws a one-line error naming the first bad setting.</summary>
    public ImproveOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(HeldOutPrompts.Count > 0, "ImproveOptions.HeldOutPrompts is empty");
        Check(MinAgree >= 1, $"ImproveOptions.MinAgree must be positive, got {MinAgree}");
        Check(MinPairs >= 1, $"ImproveOptions.MinPairs must be positive, got {MinPairs}");
        Check(AfterId is null or >= 0, $"ImproveOptions.AfterId must be ≥ 0, got {AfterId}");
        Check(SftSteps > 0, $"ImproveOptions.SftSteps must be positive, got {SftSteps}");
        Check(DpoSteps > 0, $"ImproveOptions.DpoSteps must be positive, got {DpoSteps}");
        Check(RewardSteps > 0, $"ImproveOptions.RewardSteps must be positive, got {RewardSteps}");
        Check(GrpoSteps > 0, $"ImproveOptions.GrpoSteps must be positive, got {GrpoSteps}");
        Check(Beta > 0 && float.IsFinite(Beta), $"ImproveOptions.Beta must be positive, got {Beta}");
        Check(LearningRate > 0 && float.IsFinite(LearningRate), $"ImproveOptions.LearningRate must be positive, got {LearningRate}");
        Check(Batch > 0, $"ImproveOptions.Batch must be positive, got {Batch}");
        Check(Margin is >= 0 and < 0.5, $"ImproveOptions.Margin must be in [0, 0.5), got {Margin}");
        Check(SamplesPerPrompt > 0, $"ImproveOptions.SamplesPerPrompt must be positive, got {SamplesPerPrompt}");
        Check(Temperature >= 0 && float.IsFinite(Temperature), $"ImproveOptions.Temperature must be ≥ 0, got {Temperature}");
        Check(MaxNewTokens > 0, $"ImproveOptions.MaxNewTokens must be positive, got {MaxNewTokens}");
        Lora?.Validate();
        return this;
    }
}

/// <summary>How long one stage of a round took.</summary>
public sealed record StageTime(string Stage, TimeSpan Elapsed);

/// <summary>
/// A candidate's answers against a baseline's under a judge: every pair compared in both orders (so a judge's position bias
/// cancels), each comparison scoring 1, ½ or 0 (and ¼, ¾ when the two orders disagree); the win rate is their mean.
/// </summary>
public sealed record PairwiseComparison(int Comparisons, int Wins, int Ties, int Losses, double WinRate);

/// <summary>What a round did: the feedback it took, the candidate it trained, the evaluation, the decision and why, and the time of each stage.</summary>
public sealed record ImproveReport
{
    /// <summary>The version served when the round started.</summary>
    public required string Parent { get; init; }
    /// <summary>The registered candidate; null when there was nothing to do.</summary>
    public string? Candidate { get; init; }
    public required ImproveDecision Decision { get; init; }
    public required string Reason { get; init; }
    /// <summary>Judgements read (ids above <see cref="AfterId"/>) and what they became.</summary>
    public long AfterId { get; init; }
    public int Judgements { get; init; }
    public int Pairs { get; init; }
    public int Corrections { get; init; }
    public long LastJudgementId { get; init; }
    public PairwiseComparison? Evaluation { get; init; }
    /// <summary>The win rate a candidate needs: 0.5 + margin.</summary>
    public double Threshold { get; init; }
    public IReadOnlyList<StageTime> Stages { get; init; } = [];
    public TimeSpan Elapsed => Stages.Aggregate(TimeSpan.Zero, (sum, s) => sum + s.Elapsed);
}

/// <summary>
/// One round of the closed loop: the feedback judged since the served version was trained → training data (SFT on
/// corrections, then DPO on comparisons, or a reward model and GRPO) → a candidate trained from the served checkpoint →
/// candidate against served on held-out prompts under a judge → the candidate registered with its lineage, and promoted
/// only when it wins by the margin.
/// </summary>
public static class Improver
{
    public static async Task<ImproveReport> RunAsync(ModelRegistry registry, IFeedbackStore store, ImproveOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var stages = new List<StageTime>();
        var clock = Stopwatch.StartNew();
        void Stage(string name)
        {
            stages.Add(new StageTime(name, clock.Elapsed));
            clock.Restart();
        }
        void Tell(string line) => options.Progress?.Invoke(line);

        string parent = registry.Current ?? throw new ArgumentException($"{registry.CurrentFile}: no version is served; initialise the registry first", nameof(registry));
        long after = options.AfterId ?? registry.Versions().Select(v => v.Lineage.LastJudgementId).DefaultIfEmpty(0).Max();
        double threshold = 0.5 + options.Margin;
        Tell($"feedback: judgements after id {after} (served version {parent})");
        var judgements = await store.ListJudgementsAsync(new JudgementQuery { TaskId = options.TaskId, AfterId = after }, cancellationToken);
        var items = new List<FeedbackItem>();
        foreach (var itemId in judgements.Select(j => j.ItemId).Distinct(StringComparer.Ordinal))
            if (await store.GetItemAsync(itemId, cancellationToken) is FeedbackItem item) items.Add(item);
        var export = FeedbackExport.ToData(items, judgements, new ExportOptions { MinAgree = options.MinAgree });
        var data = export.Data;
        long last = judgements.Count > 0 ? judgements.Max(j => j.Id) : after;
        int corrections = export.Corrections;
        Stage("feedback");
        var report = new ImproveReport
        {
            Parent = parent, Decision = ImproveDecision.NothingToDo, Reason = "", AfterId = after, Judgements = judgements.Count,
            Pairs = data.Pairs.Count, Corrections = corrections, LastJudgementId = last, Threshold = threshold,
        };
        if (data.Pairs.Count < options.MinPairs && data.Supervised.Count == 0)
        {
            Stage("done");
            return report with
            {
                Stages = stages,
                Reason = $"nothing to do: {judgements.Count} judgement(s) after id {after} gave {data.Pairs.Count} preference pair(s) and no corrections " +
                    $"(ImproveOptions.MinPairs is {options.MinPairs}, ImproveOptions.MinAgree {options.MinAgree})",
            };
        }

        string name = registry.NextName();
        string work = Path.Combine(registry.Home, ".work", $"{name}.{Guid.NewGuid():N}");
        try
        {
            var (checkpoint, method, metrics) = Train(registry.CheckpointOf(parent), data, options, work, Tell, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested(); // a tuner stops early when cancelled; its half-trained model is not a candidate
            Stage("train");

            Tell($"evaluate: {name} against {parent} on {options.HeldOutPrompts.Count} held-out prompt(s)");
            var evaluation = await CompareAsync(checkpoint, registry.CheckpointOf(parent), options, cancellationToken);
            Stage("evaluate");

            bool promote = evaluation.WinRate >= threshold;
            string reason = promote
                ? $"win rate {evaluation.WinRate:F3} ≥ {threshold:F3} (0.5 + margin {options.Margin:G3}) against {parent}"
                : $"win rate {evaluation.WinRate:F3} < {threshold:F3} (0.5 + margin {options.Margin:G3}) against {parent}; {parent} stays served";
            var lineage = new VersionLineage
            {
                Version = name, Parent = parent, Created = DateTimeOffset.UtcNow, Method = method,
                JudgementIds = export.JudgementIds, LastJudgementId = last,
                Data = new LineageData(judgements.Count, data.Pairs.Count, corrections, Supervised(data, options).Count, data.Skipped.Count),
                Training = new LineageTraining
                {
                    SftSteps = Supervised(data, options).Count > 0 ? options.SftSteps : 0,
                    DpoSteps = options.Method == ImproveMethod.Dpo && data.Pairs.Count > 0 ? options.DpoSteps : 0,
                    RewardSteps = options.Method == ImproveMethod.Grpo && data.Pairs.Count > 0 ? options.RewardSteps : 0,
                    GrpoSteps = options.Method == ImproveMethod.Grpo && data.Pairs.Count > 0 ? options.GrpoSteps : 0,
                    Beta = options.Beta, LearningRate = options.LearningRate, Batch = options.Batch, LoraRank = options.Lora?.Rank ?? 0, Seed = options.Seed,
                    Metrics = metrics,
                },
                Evaluation = new LineageEvaluation(options.JudgeName, options.HeldOutPrompts.Count, options.SamplesPerPrompt, evaluation.Comparisons,
                    evaluation.Wins, evaluation.Ties, evaluation.Losses, evaluation.WinRate, options.Margin, promote ? "promoted" : "rejected", reason),
            };
            registry.Add(name, checkpoint, lineage);
            if (promote) registry.Promote(name, reason);
            await registry.MirrorAsync(store, cancellationToken);
            Tell($"{name}: {reason}");
            Stage("register");
            return report with
            {
                Candidate = name, Decision = promote ? ImproveDecision.Promoted : ImproveDecision.Rejected, Reason = reason, Evaluation = evaluation, Stages = stages,
            };
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// Trains the candidate from <paramref name="parentCheckpoint"/> in stages under <paramref name="work"/>; returns the last
    /// stage's checkpoint, the method ("sft+dpo", "dpo", "reward+grpo"…) and each stage's last metrics ("dpo.loss", …).
    /// </summary>
    static (string Checkpoint, string Method, Dictionary<string, float> Metrics) Train(string parentCheckpoint, FeedbackData data, ImproveOptions options,
        string work, Action<string> tell, CancellationToken cancellationToken)
    {
        var model = Checkpoint.Load(parentCheckpoint);
        var tokenizer = Tokenizer.Load(parentCheckpoint);
        var format = ChatFormat.Load(parentCheckpoint);
        var stages = new List<string>();
        var metrics = new Dictionary<string, float>(StringComparer.Ordinal);
        string? output = null;
        TuneOptions Tune(string stage, int steps) => new TuneOptions
        {
            OutputFolder = output = Path.Combine(work, stage), Steps = steps, Batch = options.Batch, LearningRate = options.LearningRate,
            Seed = options.Seed, Lora = options.Lora, MergeLora = options.Lora is not null, Compute = options.Compute, ChatFormat = format,
        }.Validate();
        Action<TuneEvent> Report(string stage) => e =>
        {
            if (e.Evaluation || e.Step == 1 || e.Step % 10 == 0 || e.Step == e.Steps) tell($"{stage} {e}");
        };
        void Keep(string stage, TuneResult result)
        {
            stages.Add(stage);
            foreach (var (metric, value) in (result.LastStep?.Metrics ?? []).Concat(result.LastEvaluation?.Metrics.Select(m => ("eval_" + m.Name, m.Value)) ?? []))
                metrics[$"{stage}.{metric}"] = value;
        }

        var supervised = Supervised(data, options);
        if (supervised.Count > 0)
            Keep("sft", SupervisedTuner.Run(model, tokenizer, supervised, Tune("sft", options.SftSteps), Report("sft"), cancellationToken: cancellationToken));
        if (data.Pairs.Count > 0 && options.Method == ImproveMethod.Dpo)
            Keep("dpo", DpoTuner.Run(model, tokenizer, data.Pairs, Tune("dpo", options.DpoSteps), options.Beta, maxNewTokens: options.MaxNewTokens,
                report: Report("dpo"), cancellationToken: cancellationToken));
        if (data.Pairs.Count > 0 && options.Method == ImproveMethod.Grpo)
        {
            // The reward model starts from the served checkpoint, as the policy did.
            var (rewardResult, reward) = RewardTuner.Run(Checkpoint.Load(parentCheckpoint), tokenizer, data.Pairs, Tune("reward", options.RewardSteps), Report("reward"));
            Keep("reward", rewardResult);
            var prompts = data.Pairs.Select(p => p.Prompt).DistinctBy(p => JsonSerializer.Serialize(p)).ToList();
            Keep("grpo", GrpoTuner.Run(model, reward, tokenizer, prompts, Tune("grpo", options.GrpoSteps),
                new GrpoOptions { MaxNewTokens = options.MaxNewTokens, Temperature = Math.Max(options.Temperature, 0.1f) }.Validate(), Report("grpo")));
        }
        return (Path.Combine(output!, TuningLoop.CheckpointFolderName), string.Join('+', stages), metrics);
    }

    /// <summary>The supervised stage's examples: the corrections, and (with <see cref="ImproveOptions.SftOnChosen"/>) each pair's chosen answer.</summary>
    static List<SupervisedExample> Supervised(FeedbackData data, ImproveOptions options) =>
        [.. data.Supervised, .. options.SftOnChosen ? data.Pairs.Select(p => new SupervisedExample([.. p.Prompt, new ChatTurn("assistant", p.Chosen)], p.Origin)) : []];

    /// <summary>
    /// The candidate checkpoint's answers against the baseline's on <see cref="ImproveOptions.HeldOutPrompts"/>: both sample
    /// <see cref="ImproveOptions.SamplesPerPrompt"/> answers per prompt from the same seed, and the judge compares each pair
    /// in both orders.
    /// </summary>
    public static async Task<PairwiseComparison> CompareAsync(string candidateCheckpoint, string baselineCheckpoint, ImproveOptions options,
        CancellationToken cancellationToken = default)
    {
        var prompts = options.HeldOutPrompts;
        var candidate = Answers(candidateCheckpoint, options);
        var baseline = Answers(baselineCheckpoint, options);
        int wins = 0, ties = 0, losses = 0;
        double total = 0;
        for (int i = 0; i < candidate.Length; i++)
        {
            var item = prompts[i / options.SamplesPerPrompt];
            double straight = await options.Judge.CompareAsync(item.Prompt, candidate[i], baseline[i], item.References, cancellationToken);
            double swapped = await options.Judge.CompareAsync(item.Prompt, baseline[i], candidate[i], item.References, cancellationToken);
            double score = (straight + 1 - swapped) / 2;
            total += score;
            if (score > 0.5) wins++;
            else if (score < 0.5) losses++;
            else ties++;
        }
        return new PairwiseComparison(candidate.Length, wins, ties, losses, total / candidate.Length);
    }

    /// <summary>A checkpoint's sampled answers, prompt by prompt, <see cref="ImproveOptions.SamplesPerPrompt"/> each.</summary>
    static string[] Answers(string checkpoint, ImproveOptions options)
    {
        var model = Checkpoint.Load(checkpoint);
        var tokenizer = Tokenizer.Load(checkpoint);
        var format = ChatFormat.Load(checkpoint);
        var ids = options.HeldOutPrompts.Select(p => format.Encode([new ChatTurn("user", p.Prompt)], tokenizer, addGenerationPrompt: true).Ids).ToList();
        var samples = new PolicySampler(model, options.Compute).Sample(ids, options.SamplesPerPrompt, options.MaxNewTokens, options.Temperature,
            SequenceLogProbs.EndId(tokenizer, format), new DeterministicRandom(options.Seed));
        return [.. samples.Select(s => tokenizer.Decode(s, skipSpecialTokens: true).Trim())];
    }

    /// <summary>Held-out prompts from JSONL: {"prompt": …} with an optional "reference" or "references" for program judges.</summary>
    public static IReadOnlyList<EvalTasks.PromptItem> ReadHeldOut(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such held-out prompts file", path);
        var items = new List<EvalTasks.PromptItem>();
        int number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument document;
            try { document = JsonDocument.Parse(line); }
            catch (JsonException) { throw new InvalidDataException($"{path}:{number}: malformed JSON"); }
            using var owner = document;
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{path}:{number}: missing string \"prompt\"");
            var references = new List<string>();
            if (root.TryGetProperty("reference", out var reference))
                references.Add(reference.ValueKind == JsonValueKind.String ? reference.GetString()! : throw new InvalidDataException($"{path}:{number}: \"reference\" must be a string"));
            if (root.TryGetProperty("references", out var list))
            {
                if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                    throw new InvalidDataException($"{path}:{number}: \"references\" must be an array of strings");
                references.AddRange(list.EnumerateArray().Select(r => r.GetString()!));
            }
            items.Add(new EvalTasks.PromptItem(prompt.GetString()!, references));
        }
        return items.Count > 0 ? items : throw new InvalidDataException($"{path}: no held-out prompts");
    }
}
