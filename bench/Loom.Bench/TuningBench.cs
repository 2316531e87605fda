using Loom.IO;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
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
