using Loom.IO;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Bench;

/// <summary>
/// The tuning demonstration: a program stands in for human evaluators. The task is short product reviews;
/// the judge scores a response by (#positive − #negative words) from fixed word lists, a graded score with few
/// ties. The judge is used only to label preference pairs and to score final models, never inside a loss.
/// Pipeline (seeded, one process): synthetic mixed-sentiment reviews → BPE tokenizer → SFT of a tiny model from
/// scratch → SFT samples two per prompt, judged → DPO; the same judged samples → reward model; GRPO against the
/// reward model (not the judge); best-of-4 with the reward model. Reports win rates against the SFT model on
/// held-out prompts (ties count half), KL to the SFT model, reward-model held-out pairwise accuracy, and times.
/// </summary>
public static class TuningBench
{
    public static int Run(string[] args)
    {
        if (args.Length > 0 && args[0] == "lora") return LoraBench.Run(args[1..]);
        if (args.Length > 0 && args[0] == LoraBench.ChildCommand) return LoraBench.RunOne(args[1..]);
        var total = Stopwatch.StartNew();
        int threads = args.Length > 0 && int.TryParse(args[0], out int t) ? t : Environment.ProcessorCount;
        using var compute = new ComputeContext(threads);
        string work = Path.Combine(Path.GetTempPath(), "loom-tuning-bench");
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        var times = new JsonObject();
        var watch = Stopwatch.StartNew();
        void Stage(string name)
        {
            times[name] = Math.Round(watch.Elapsed.TotalSeconds, 1);
            Console.WriteLine($"  [{name}: {watch.Elapsed.TotalSeconds:F1} s]");
            watch.Restart();
        }

        // ---- data: prompts split into train and held-out; SFT corpus of mixed reviews for the train prompts.
        var task = ReviewTask.Create();
        var (tokenizer, trainPrompts, heldOut, sftExamples) = (task.Tokenizer, task.TrainPrompts, task.HeldOutPrompts, task.SftExamples);
        var config = task.ModelConfig();
        Console.WriteLine($"tuning bench: {threads} threads; vocab {tokenizer.VocabSize}, model {config.ParameterCount:N0} parameters, " +
            $"{trainPrompts.Count} train prompts, {heldOut.Count} held-out prompts, {sftExamples.Count} SFT examples");
        Stage("data_s");

        // ---- SFT from scratch.
        var sft = new Transformer(config, seed: 7);
        var sftResult = SupervisedTuner.Run(sft, tokenizer, sftExamples, new TuneOptions
        {
            OutputFolder = Path.Combine(work, "sft"), Steps = 400, Batch = 8, LearningRate = 3e-3f, WarmupSteps = 20, EvalEvery = 100, Seed = 1, Compute = compute,
        }, e => { if (e.Evaluation || e.Step % 100 == 0) Console.WriteLine("  sft " + e); });
        Stage("sft_s");
        int stopId = SequenceLogProbs.EndId(tokenizer);
        const int maxNew = ReviewTask.MaxNewTokens;
        IReadOnlyList<ChatTurn> Turns(string prompt) => [new ChatTurn("user", prompt)];
        int[] PromptIds(string prompt) => ChatTemplate.Encode(Turns(prompt), tokenizer, addGenerationPrompt: true).Ids;
        string Text(int[] ids) => tokenizer.Decode(ids, skipSpecialTokens: true).Trim();

        // ---- preference data: the SFT model's own samples, four per train prompt, judged; pairs with different scores.
        var sftSampler = new PolicySampler(sft, compute);
        var pairs = new List<PreferencePair>();
        int ties = 0;
        const int perPrompt = 8;
        var samples = sftSampler.Sample([.. trainPrompts.Select(PromptIds)], perPrompt, maxNew, 1f, stopId, new DeterministicRandom(11));
        var sampleScores = new List<int>();
        for (int p = 0; p < trainPrompts.Count; p++)
        {
            for (int k = 0; k < perPrompt; k += 2)
            {
                string a = Text(samples[p * perPrompt + k]), b = Text(samples[p * perPrompt + k + 1]);
                int sa = ReviewTask.Judge(a), sb = ReviewTask.Judge(b);
                sampleScores.Add(sa);
                sampleScores.Add(sb);
                if (sa == sb) { ties++; continue; }
                pairs.Add(sa > sb
                    ? new PreferencePair(Turns(trainPrompts[p]), a, b, $"judge:{p}:{k}")
                    : new PreferencePair(Turns(trainPrompts[p]), b, a, $"judge:{p}:{k}"));
            }
        }
        double sftPositiveShare = sampleScores.Count(s => s > 0) / (double)sampleScores.Count;
        double sftNegativeShare = sampleScores.Count(s => s < 0) / (double)sampleScores.Count;
        Console.WriteLine($"  preference data: {pairs.Count} pairs from {sampleScores.Count} SFT samples ({ties} tied pairs dropped); " +
            $"SFT samples positive {sftPositiveShare:P0}, negative {sftNegativeShare:P0}, mean judge score {sampleScores.Average():F2}");
        WritePairs(Path.Combine(work, "pairs.jsonl"), pairs);
        Stage("sample_and_judge_s");

        // ---- DPO from the SFT model.
        var dpo = TuningLoop.FrozenCopy(sft);
        foreach (var p in dpo.Parameters) p.RequiresGrad = true;
        var dpoResult = DpoTuner.Run(dpo, tokenizer, pairs, new TuneOptions
        {
            OutputFolder = Path.Combine(work, "dpo"), Steps = 150, Batch = 16, LearningRate = 1e-3f, WarmupSteps = 10, EvalEvery = 50, Seed = 2, Compute = compute,
        }, beta: 0.1f, maxNewTokens: maxNew, report: e => { if (e.Evaluation || e.Step % 50 == 0) Console.WriteLine("  dpo " + e); });
        Stage("dpo_s");

        // ---- reward model on the judge-labelled pairs, from the SFT model; held-out accuracy on pairs from held-out prompts.
        var rmBody = TuningLoop.FrozenCopy(sft);
        foreach (var p in rmBody.Parameters) p.RequiresGrad = true;
        var (rmResult, rewardModel) = RewardTuner.Run(rmBody, tokenizer, pairs, new TuneOptions
        {
            OutputFolder = Path.Combine(work, "rm"), Steps = 300, Batch = 16, LearningRate = 1e-3f, WarmupSteps = 10, EvalEvery = 100, EvalFraction = 0.1, Seed = 3, Compute = compute,
        }, e => { if (e.Evaluation || e.Step % 100 == 0) Console.WriteLine("  rm " + e); });
        var heldSamples = sftSampler.Sample([.. heldOut.Select(PromptIds)], 4, maxNew, 1f, stopId, new DeterministicRandom(13));
        var heldPairs = new List<(TokenSequence Chosen, TokenSequence Rejected)>();
        for (int p = 0; p < heldOut.Count; p++)
            for (int a = 0; a < 4; a++)
                for (int b = a + 1; b < 4; b++)
                {
                    string x = Text(heldSamples[p * 4 + a]), y = Text(heldSamples[p * 4 + b]);
                    int sx = ReviewTask.Judge(x), sy = ReviewTask.Judge(y);
                    if (sx == sy) continue;
                    var (chosen, rejected) = sx > sy ? (x, y) : (y, x);
                    heldPairs.Add((TokenSequence.FromResponse(Turns(heldOut[p]), chosen, tokenizer), TokenSequence.FromResponse(Turns(heldOut[p]), rejected, tokenizer)));
                }
        var (rmAccuracy, rmMargin) = RewardTuner.Accuracy(rewardModel, heldPairs, compute);
        Console.WriteLine($"  reward model: held-out pairwise accuracy {rmAccuracy:F3} on {heldPairs.Count} pairs from held-out prompts (mean margin {rmMargin:F2})");
        Stage("reward_model_s");

        // ---- GRPO against the reward model.
        var rl = TuningLoop.FrozenCopy(sft);
        foreach (var p in rl.Parameters) p.RequiresGrad = true;
        var rlResult = GrpoTuner.Run(rl, rewardModel, tokenizer, [.. trainPrompts.Select(Turns)], new TuneOptions
        {
            OutputFolder = Path.Combine(work, "rl"), Steps = 120, Batch = 4, LearningRate = 5e-4f, WarmupSteps = 5, Seed = 4, Compute = compute,
        }, new GrpoOptions { GroupSize = 8, MaxNewTokens = maxNew, KlCoefficient = 0.04f },
        report: e => { if (e.Step % 20 == 0) Console.WriteLine("  rl " + e); });
        Stage("rl_s");

        // ---- evaluation on held-out prompts: 5 samples per prompt from each model, sample k against SFT's sample k.
        const int evalSamples = 5;
        var heldIds = heldOut.Select(PromptIds).ToList();
        int[] JudgeAll(Transformer model, ulong seed) =>
            [.. new PolicySampler(model, compute).Sample(heldIds, evalSamples, maxNew, 1f, stopId, new DeterministicRandom(seed)).Select(s => ReviewTask.Judge(Text(s)))];
        var sftScores = JudgeAll(sft, 101);
        var dpoScores = JudgeAll(dpo, 102);
        var rlScores = JudgeAll(rl, 103);
        var bestOf = new BestOfN(sft, rewardModel, tokenizer, compute);
        var bestRandom = new DeterministicRandom(104);
        var bestScores = new List<int>();
        foreach (var prompt in heldOut)
            for (int k = 0; k < evalSamples; k++)
                bestScores.Add(ReviewTask.Judge(bestOf.Generate(Turns(prompt), 4, maxNew, 1f, bestRandom)[0].Response));
        var reference = TuningLoop.FrozenCopy(sft);
        float dpoKl = SequenceLogProbs.SampledKl(dpo, reference, [.. heldIds, .. heldIds], maxNew, stopId, 201, compute);
        float rlKl = SequenceLogProbs.SampledKl(rl, reference, [.. heldIds, .. heldIds], maxNew, stopId, 202, compute);
        Stage("evaluation_s");

        var (dpoWin, dpoTie) = ReviewTask.WinRate(dpoScores, sftScores);
        var (rlWin, rlTie) = ReviewTask.WinRate(rlScores, sftScores);
        var (bestWin, bestTie) = ReviewTask.WinRate([.. bestScores], sftScores);
        var (sftSelf, sftSelfTie) = ReviewTask.WinRate(JudgeAll(sft, 105), sftScores);
        double totalSeconds = total.Elapsed.TotalSeconds;

        Console.WriteLine();
        Console.WriteLine($"{"model",-22} {"judge score",12} {"win rate vs SFT",16} {"ties",6} {"KL to SFT (nats)",17}");
        void Row(string name, IReadOnlyList<int> scores, double? win, double? tie, double? kl) =>
            Console.WriteLine($"{name,-22} {scores.Average(),12:F2} {(win is double w ? w.ToString("F3", CultureInfo.InvariantCulture) : "-"),16} " +
                $"{(tie is double x ? x.ToString("P0", CultureInfo.InvariantCulture) : "-"),6} {(kl is double k ? k.ToString("F2", CultureInfo.InvariantCulture) : "-"),17}");
        Row("SFT", sftScores, sftSelf, sftSelfTie, 0);
        Row("DPO (beta 0.1)", dpoScores, dpoWin, dpoTie, dpoKl);
        Row("GRPO vs reward model", rlScores, rlWin, rlTie, rlKl);
        Row("SFT best-of-4 (RM)", bestScores, bestWin, bestTie, null);
        Console.WriteLine($"reward model held-out pairwise accuracy: {rmAccuracy:F3} ({heldPairs.Count} pairs)");
        Console.WriteLine($"total {totalSeconds:F0} s on {threads} threads");

        var result = new JsonObject
        {
            ["task"] = "product-review sentiment; judge = #positive - #negative words from fixed lists; win rate ties count half",
            ["threads"] = threads,
            ["model"] = new JsonObject { ["parameters"] = config.ParameterCount, ["layers"] = config.Layers, ["dim"] = config.Dim, ["vocab"] = config.VocabSize, ["context"] = config.MaxSeq },
            ["prompts"] = new JsonObject { ["train"] = trainPrompts.Count, ["held_out"] = heldOut.Count, ["samples_per_held_out_prompt"] = evalSamples },
            ["sft"] = new JsonObject
            {
                ["examples"] = sftExamples.Count, ["steps"] = sftResult.Steps, ["final_loss"] = sftResult.LastStep?["loss"], ["val_loss"] = sftResult.LastEvaluation?["val_loss"],
                ["judge_score"] = sftScores.Average(), ["samples_positive_share"] = sftPositiveShare, ["samples_negative_share"] = sftNegativeShare,
                ["self_win_rate"] = sftSelf,
            },
            ["preference_pairs"] = new JsonObject { ["pairs"] = pairs.Count, ["tied_dropped"] = ties },
            ["dpo"] = new JsonObject
            {
                ["beta"] = 0.1, ["steps"] = dpoResult.Steps, ["judge_score"] = dpoScores.Average(), ["win_rate_vs_sft"] = dpoWin, ["tie_rate"] = dpoTie, ["kl_to_sft_nats"] = dpoKl,
                ["train_reward_margin"] = dpoResult.LastStep?["reward_margin"], ["eval_accuracy"] = dpoResult.LastEvaluation?["accuracy"],
            },
            ["reward_model"] = new JsonObject
            {
                ["steps"] = rmResult.Steps, ["held_out_pairwise_accuracy"] = rmAccuracy, ["held_out_pairs"] = heldPairs.Count, ["held_out_margin"] = rmMargin,
                ["in_training_eval_accuracy"] = rmResult.LastEvaluation?["accuracy"],
            },
            ["grpo"] = new JsonObject
            {
                ["steps"] = rlResult.Steps, ["group_size"] = 8, ["kl_coefficient"] = 0.04, ["judge_score"] = rlScores.Average(), ["win_rate_vs_sft"] = rlWin, ["tie_rate"] = rlTie,
                ["kl_to_sft_nats"] = rlKl, ["final_rm_reward"] = rlResult.LastStep?["reward"],
            },
            ["best_of_4"] = new JsonObject { ["judge_score"] = bestScores.Average(), ["win_rate_vs_sft"] = bestWin, ["tie_rate"] = bestTie },
            ["seconds"] = times,
            ["total_seconds"] = Math.Round(totalSeconds, 1),
        };
        string path = Path.Combine(BenchPaths.ResultsFolder(), "tuning.json");
        AtomicFile.WriteAllText(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
        return 0;
    }

    static void WritePairs(string path, IEnumerable<PreferencePair> pairs)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var writer = new StreamWriter(path);
        foreach (var pair in pairs)
            writer.WriteLine(new JsonObject { ["prompt"] = pair.Prompt[0].Content, ["chosen"] = pair.Chosen, ["rejected"] = pair.Rejected }.ToJsonString());
    }
}

/// <summary>
/// <c>bench tuning lora</c>: LoRA SFT on an imported model in SmolLM2-135M's shape (30 layers, 576 channels, 9 heads, 3 kv heads,
/// SwiGLU 1536, vocabulary 49152, tied), random weights written by the bench as a Hugging Face folder and imported with
/// <see cref="HuggingFaceFolder.Import"/>. Each base type (F32, BF16, Q8_0, Q4_K) runs in a child process of its own, so each peak
/// resident memory (VmHWM) is its own: the child loads the float32 checkpoint, freezes the base in the type
/// (<see cref="Lora.FreezeBase"/>), measures the held-out loss, runs a short SFT with rank-8 adapters on the attention
/// projections, and measures the held-out loss again. Options: --steps N (40), --layers N (30), --bases f32,bf16,q8_0,q4_k, --threads N.
/// </summary>
static class LoraBench
{
    public const string ChildCommand = "lora-one";

    static readonly string[] Colors = ["red", "green", "blue", "amber", "violet", "teal", "ochre"];

    static LlamaConfig Config(int layers) => new()
    {
        VocabSize = 49152, Dim = 576, Layers = layers, Heads = 9, KvHeads = 3, HiddenDim = 1536, MaxSeq = 128,
        RopeTheta = 100000f, NormEps = 1e-5f, TiedEmbeddings = true,
    };

    static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>Item k's colour is fixed by k, so the held-out items share the rule (and the format) with the training items.</summary>
    static SupervisedExample Example(int k) =>
        new([new ChatTurn("user", $"Which colour is item {k}?"), new ChatTurn("assistant", $"Item {k} is {Colors[k % Colors.Length]}.")], $"item:{k}");

    public static int Run(string[] args)
    {
        int steps = int.Parse(Option(args, "--steps", "40"), CultureInfo.InvariantCulture);
        int layers = int.Parse(Option(args, "--layers", "30"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Option(args, "--threads", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        var bases = Option(args, "--bases", "f32,bf16,q8_0,q4_k").Split(',');
        string work = Path.Combine(Path.GetTempPath(), "loom-lora-bench");
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        var config = Config(layers);

        // A Hugging Face folder of random weights (normal, std 0.02) with a character tokenizer, imported as a Loom checkpoint.
        var watch = Stopwatch.StartNew();
        string hf = Path.Combine(work, "hf"), checkpoint = Path.Combine(work, "checkpoint");
        HuggingFaceFolder.Export(hf, new Transformer(config, seed: 1), checkpoint: null);
        CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c)]) + "\n"]).Save(hf);
        HuggingFaceFolder.Import(hf, checkpoint);
        Console.WriteLine($"lora bench: {config.ParameterCount:N0} parameters ({layers} layers, SmolLM2-135M shape), imported in {watch.Elapsed.TotalSeconds:F0} s; {steps} steps, {threads} threads");

        var rows = new JsonArray();
        Console.WriteLine($"{"base",-6} {"held-out before",16} {"after",8} {"s/step",8} {"peak MB",8} {"steady MB",10} {"base MB",8}");
        foreach (string type in bases)
        {
            string host = Environment.ProcessPath!;
            var start = new ProcessStartInfo(host) { RedirectStandardOutput = true, UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(host) == "dotnet") start.ArgumentList.Add(typeof(LoraBench).Assembly.Location);
            foreach (string a in new[] { "tuning", ChildCommand, "--checkpoint", checkpoint, "--base", type, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture) })
                start.ArgumentList.Add(a);
            using var child = Process.Start(start)!;
            string outputText = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            if (child.ExitCode != 0) throw new InvalidOperationException($"the {type} run failed ({child.ExitCode}): {outputText}");
            var row = JsonNode.Parse(outputText.Trim().Split('\n')[^1])!;
            Console.WriteLine($"{type,-6} {row["held_out_before"]!.GetValue<double>(),16:F3} {row["held_out_after"]!.GetValue<double>(),8:F3} {row["seconds_per_step"]!.GetValue<double>(),8:F2} " +
                $"{row["peak_mb"]!.GetValue<double>(),8:F0} {row["steady_mb"]!.GetValue<double>(),10:F0} {row["base_mb"]!.GetValue<double>(),8:F0}");
            rows.Add(row);
        }
        var result = new JsonObject
        {
            ["model"] = new JsonObject { ["shape"] = "SmolLM2-135M", ["parameters"] = config.ParameterCount, ["layers"] = layers, ["dim"] = config.Dim, ["vocab"] = config.VocabSize },
            ["steps"] = steps,
            ["threads"] = threads,
            ["runs"] = rows,
        };
        string path = Path.Combine(BenchPaths.ResultsFolder(), "tuning-lora.json");
        AtomicFile.WriteAllText(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
        return 0;
    }

    /// <summary>One base type in this process: load, freeze, held-out loss, SFT, held-out loss; prints one JSON line.</summary>
    public static int RunOne(string[] args)
    {
        string checkpoint = Option(args, "--checkpoint", "");
        string typeName = Option(args, "--base", "f32");
        int steps = int.Parse(Option(args, "--steps", "40"), CultureInfo.InvariantCulture);
        using var compute = new ComputeContext(int.Parse(Option(args, "--threads", "1"), CultureInfo.InvariantCulture));
        var type = GgmlTypes.Parse(typeName) ?? throw new ArgumentException($"unknown base type '{typeName}'");
        var model = Checkpoint.Load(checkpoint);
        var tokenizer = Tokenizer.Load(checkpoint);
        Lora.FreezeBase(model, type);
        GC.Collect();
        long baseBytes = model.Parameters.Sum(p => p.Quantized?.ByteCount ?? (long)p.Length * sizeof(float));

        var train = Enumerable.Range(0, 160).Select(Example).ToList();
        var heldOut = Enumerable.Range(1000, 32).Select(Example).ToList();
        var heldBatches = TokenBatch.Pack([.. heldOut.Select(e => TokenSequence.FromTurns(e.Turns, tokenizer))], model.Config.MaxSeq, 4);
        double HeldOutLoss()
        {
            var tape = new Tape(compute) { Recording = false };
            double total = 0;
            foreach (var b in heldBatches)
            {
                tape.Reset();
                total += model.Loss(tape, b.Ids, b.Targets, b.Batch, b.Tokens).Scalar();
            }
            return total / heldBatches.Count;
        }
        double before = HeldOutLoss();
        var watch = Stopwatch.StartNew();
        var lora = new LoraOptions { Rank = 8, Alpha = 16, Targets = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        SupervisedTuner.Run(model, tokenizer, train, new TuneOptions
        {
            OutputFolder = Path.Combine(Path.GetDirectoryName(checkpoint)!, "run-" + typeName), Steps = steps, Batch = 2, LearningRate = 2e-3f, WarmupSteps = 3,
            EvalFraction = 0, Seed = 1, Lora = lora, Compute = compute,
        });
        double secondsPerStep = watch.Elapsed.TotalSeconds / steps;
        double after = HeldOutLoss();
        var status = File.ReadAllLines("/proc/self/status");
        double Megabytes(string key) => double.Parse(status.First(l => l.StartsWith(key, StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        Console.WriteLine(new JsonObject
        {
            ["base"] = typeName,
            ["held_out_before"] = Math.Round(before, 4),
            ["held_out_after"] = Math.Round(after, 4),
            ["seconds_per_step"] = Math.Round(secondsPerStep, 3),
            ["peak_mb"] = Math.Round(Megabytes("VmHWM:")),
            ["steady_mb"] = Math.Round(Megabytes("VmRSS:")),
            ["base_mb"] = Math.Round(baseBytes / 1048576.0),
            ["adapter_parameters"] = Lora.Adapters(model).Sum(a => (long)a.A.Length + a.B.Length),
        }.ToJsonString());
        return 0;
    }
}
