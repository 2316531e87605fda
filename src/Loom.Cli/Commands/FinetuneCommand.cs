using System.CommandLine;
using Loom.Evaluation;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom finetune</c>: supervised fine-tuning (sft), reward models (reward), DPO (dpo), online RL with GRPO (rl),
/// merging LoRA adapters (merge) and best-of-n sampling with a reward model (sample).
/// </summary>
internal static class FinetuneCommand
{
    public const string PlotFileName = "curves.png";

    internal static Command Create()
    {
        var command = new Command("finetune", "Tune a model: supervised (SFT), reward model, DPO, online RL (GRPO); LoRA or full.");
        command.Subcommands.Add(Sft());
        command.Subcommands.Add(Reward());
        command.Subcommands.Add(Dpo());
        command.Subcommands.Add(Rl());
        command.Subcommands.Add(Merge());
        command.Subcommands.Add(Sample());
        return command;
    }

    /// <summary>The options every training subcommand shares.</summary>
    sealed class Common
    {
        public readonly Option<string> Model = new("--model") { Description = "Checkpoint folder to start from", Required = true };
        public readonly Option<string> Output = new("--out") { Description = "Output folder: checkpoint/ (or adapter/), metrics.jsonl, curves.png", Required = true };
        public readonly Option<int> Steps = new("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 100 };
        public readonly Option<int> Batch = new("--batch") { Description = "Rows (sft), pairs (reward, dpo) or prompts (rl) per step", DefaultValueFactory = _ => 8 };
        public readonly Option<float> LearningRate = new("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-4f };
        public readonly Option<float?> MinLearningRate = new("--min-lr") { Description = "End of the cosine decay (default: lr / 10)" };
        public readonly Option<int> Warmup = new("--warmup") { Description = "Linear warmup steps", DefaultValueFactory = _ => 5 };
        public readonly Option<float> WeightDecay = new("--weight-decay") { Description = "AdamW weight decay", DefaultValueFactory = _ => 0f };
        public readonly Option<float> Clip = new("--clip") { Description = "Gradient-norm clip (0 = off)", DefaultValueFactory = _ => 1f };
        public readonly Option<int> EvalEvery = new("--eval-every") { Description = "Steps between evaluations (0 = at the end)", DefaultValueFactory = _ => 0 };
        public readonly Option<double> EvalFraction = new("--eval-fraction") { Description = "Share of the data held out for evaluation", DefaultValueFactory = _ => 0.1 };
        public readonly Option<ulong> Seed = new("--seed") { Description = "Seed for shuffling, sampling and new weights", DefaultValueFactory = _ => 1UL };
        public readonly Option<int> Threads = SharedOptions.Threads();
        public readonly Option<int> LoraRank = new("--lora-rank") { Description = "Train LoRA adapters of this rank instead of all weights (0 = full fine-tuning)", DefaultValueFactory = _ => 0 };
        public readonly Option<float> LoraAlpha = new("--lora-alpha") { Description = "LoRA alpha (the update is scaled by alpha / rank)", DefaultValueFactory = _ => 16f };
        public readonly Option<string> LoraTargets = new("--lora-targets") { Description = "Comma-separated modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", DefaultValueFactory = _ => "q_proj,v_proj" };
        public readonly Option<bool> MergeLora = new("--merge") { Description = "With LoRA: also write the merged model to OUT/checkpoint" };
        public readonly Option<string> BaseType = new("--base-type") { Description = "With LoRA: hold the frozen base as f32, bf16, q8_0, q4_0 or q4_k (QLoRA); a quantised checkpoint stays as it is", DefaultValueFactory = _ => "f32" };
        public readonly Option<bool> Strict = new("--strict") { Description = "Stop at the first bad dataset line (default: skip and count)" };

        public void AddTo(Command command)
        {
            foreach (Option option in new Option[] { Model, Output, Steps, Batch, LearningRate, MinLearningRate, Warmup, WeightDecay, Clip, EvalEvery, EvalFraction, Seed, Threads, LoraRank, LoraAlpha, LoraTargets, MergeLora, BaseType, Strict })
                command.Options.Add(option);
        }

        /// <summary>A compute context with --threads threads; the command disposes it when the run ends.</summary>
        public ComputeContext Compute(ParseResult parse) => new(SharedOptions.ThreadCount(parse, Threads));

        public TuneOptions Options(ParseResult parse, ComputeContext compute, int epochs = 0)
        {
            int rank = parse.GetValue(LoraRank);
            if (rank < 0) throw new ArgumentException($"--lora-rank must be ≥ 0, got {rank}");
            var lora = rank == 0 ? null : new LoraOptions
            {
                Rank = rank,
                Alpha = parse.GetValue(LoraAlpha),
                Targets = [.. parse.GetValue(LoraTargets)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)],
            };
            if (lora is null && parse.GetValue(MergeLora)) throw new ArgumentException("--merge needs --lora-rank");
            return new TuneOptions
            {
                OutputFolder = parse.GetValue(Output)!,
                Steps = parse.GetValue(Steps),
                Epochs = epochs,
                Batch = parse.GetValue(Batch),
                LearningRate = parse.GetValue(LearningRate),
                MinLearningRate = parse.GetValue(MinLearningRate),
                WarmupSteps = parse.GetValue(Warmup),
                WeightDecay = parse.GetValue(WeightDecay),
                Clip = parse.GetValue(Clip),
                EvalEvery = parse.GetValue(EvalEvery),
                EvalFraction = parse.GetValue(EvalFraction),
                Seed = parse.GetValue(Seed),
                Lora = lora,
                MergeLora = parse.GetValue(MergeLora),
                Compute = compute,
                ChatFormat = ChatFormat.Load(Checkpoint.Resolve(parse.GetValue(Model)!)),
            }.Validate();
        }

        public (Transformer Model, ITokenizer Tokenizer, string Folder) Load(ParseResult parse)
        {
            string folder = Checkpoint.Resolve(parse.GetValue(Model)!);
            var model = Checkpoint.Load(folder);
            bool lora = parse.GetValue(LoraRank) > 0;
            string baseText = parse.GetValue(BaseType)!;
            var baseType = GgmlTypes.Parse(baseText) is { } parsed && parsed != GgmlType.F16 ? parsed
                : throw new ArgumentException($"--base-type must be f32, bf16, q8_0, q4_0 or q4_k, got '{baseText}'");
            if (model.QuantizedType is { } quantized)
            {
                if (!lora)
                    throw new ArgumentException($"{folder}: the weights are held quantised ({quantized}) and stay frozen; full fine-tuning needs float32 weights: tune LoRA adapters on it (--lora-rank) or tune the checkpoint it was quantised from");
                if (baseType != GgmlType.F32) throw new ArgumentException($"{folder}: the weights are held quantised ({quantized}) already; --base-type applies to a float32 checkpoint");
                Console.WriteLine($"frozen base: {quantized} as stored in {folder}; only the LoRA adapters train");
            }
            else if (baseType != GgmlType.F32)
            {
                if (!lora) throw new ArgumentException("--base-type needs --lora-rank (a BF16 or quantised base is frozen)");
                var counts = Lora.FreezeBase(model, baseType);
                Console.WriteLine($"frozen base: {string.Join(", ", counts.Select(c => $"{c.Value} matrices as {GgmlTypes.Name((uint)c.Key)}"))}; only the LoRA adapters train");
            }
            return (model, Tokenizer.Load(folder), folder);
        }

        public FeedbackData Read(ParseResult parse, Option<string> data)
        {
            var feedback = FeedbackDatasets.Read(parse.GetValue(data)!, parse.GetValue(Strict));
            ReportSkipped(feedback.Skipped);
            return feedback;
        }
    }

    static void ReportSkipped(List<string> skipped)
    {
        if (skipped.Count == 0) return;
        Console.Error.WriteLine($"skipped {skipped.Count} bad line(s); first: {skipped[0]}");
    }

    static Command Sft()
    {
        var common = new Common();
        var data = new Option<string>("--data") { Description = "JSONL: {\"messages\":[...]}, {\"prompt\",\"completion\"} or corrections", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the data (overrides --steps when positive)", DefaultValueFactory = _ => 0 };
        var command = new Command("sft", "Supervised fine-tuning: loss on assistant/completion tokens only, examples packed into the context.");
        common.AddTo(command);
        command.Options.Add(data);
        command.Options.Add(epochs);
        command.SetAction(parse => UserErrors.Run(() =>
        {
            using var compute = common.Compute(parse);
            var options = common.Options(parse, compute, parse.GetValue(epochs));
            var (model, tokenizer, folder) = common.Load(parse);
            var feedback = common.Read(parse, data);
            if (feedback.Supervised.Count == 0) throw new InvalidDataException($"{parse.GetValue(data)}: no supervised examples (messages, prompt/completion or corrections)");
            var result = Report(options, report => SupervisedTuner.Run(model, tokenizer, feedback.Supervised, options, report, folder), ["loss", "val_loss"]);
            return Done(result, options);
        }));
        return command;
    }

    static Command Reward()
    {
        var common = new Common();
        var data = new Option<string>("--data") { Description = "JSONL preference data: comparisons, rankings, ratings or corrections", Required = true };
        var command = new Command("reward", "Train a reward model (Bradley–Terry on preference pairs; scalar head score.weight on the last token).");
        common.AddTo(command);
        command.Options.Add(data);
        command.SetAction(parse => UserErrors.Run(() =>
        {
            using var compute = common.Compute(parse);
            var options = common.Options(parse, compute);
            var (model, tokenizer, _) = common.Load(parse);
            var feedback = common.Read(parse, data);
            if (feedback.Pairs.Count < 2) throw new InvalidDataException($"{parse.GetValue(data)}: {feedback.Pairs.Count} preference pair(s); a reward model needs at least 2");
            var result = Report(options, report => RewardTuner.Run(model, tokenizer, feedback.Pairs, options, report).Result, ["loss", "accuracy", "margin"]);
            return Done(result, options);
        }));
        return command;
    }

    static Command Dpo()
    {
        var common = new Common();
        var data = new Option<string>("--data") { Description = "JSONL preference data: comparisons, rankings, ratings or corrections", Required = true };
        var beta = new Option<float>("--beta") { Description = "DPO β (strength of the tie to the reference)", DefaultValueFactory = _ => 0.1f };
        var command = new Command("dpo", "Direct Preference Optimization against a frozen copy of the starting model.");
        common.AddTo(command);
        command.Options.Add(data);
        command.Options.Add(beta);
        command.SetAction(parse => UserErrors.Run(() =>
        {
            using var compute = common.Compute(parse);
            var options = common.Options(parse, compute);
            var (model, tokenizer, folder) = common.Load(parse);
            var feedback = common.Read(parse, data);
            if (feedback.Pairs.Count == 0) throw new InvalidDataException($"{parse.GetValue(data)}: no preference pairs");
            var result = Report(options, report => DpoTuner.Run(model, tokenizer, feedback.Pairs, options, parse.GetValue(beta), report: report, baseModel: folder),
                ["loss", "reward_margin", "accuracy", "kl"]);
            return Done(result, options);
        }));
        return command;
    }

    static Command Rl()
    {
        var common = new Common();
        var rewardModel = new Option<string>("--reward-model") { Description = "Reward-model folder from `loom finetune reward`", Required = true };
        var prompts = new Option<string>("--prompts") { Description = "JSONL with a \"prompt\" field per line", Required = true };
        var group = new Option<int>("--group-size") { Description = "Samples per prompt (GRPO's G)", DefaultValueFactory = _ => 8 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest sampled response", DefaultValueFactory = _ => 48 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature of rollouts", DefaultValueFactory = _ => 1f };
        var kl = new Option<float>("--kl") { Description = "KL penalty coefficient to the frozen starting model", DefaultValueFactory = _ => 0.04f };
        var clipEpsilon = new Option<float>("--clip-epsilon") { Description = "PPO/GRPO ratio clip ε", DefaultValueFactory = _ => 0.2f };
        var command = new Command("rl", "Online RL with GRPO: sample groups from the policy, score with the reward model, clipped policy loss + KL.");
        common.AddTo(command);
        foreach (Option option in new Option[] { rewardModel, prompts, group, maxNew, temperature, kl, clipEpsilon }) command.Options.Add(option);
        command.SetAction(parse => UserErrors.Run(() =>
        {
            using var compute = common.Compute(parse);
            var options = common.Options(parse, compute);
            var grpo = new GrpoOptions
            {
                GroupSize = parse.GetValue(group), MaxNewTokens = parse.GetValue(maxNew), Temperature = parse.GetValue(temperature),
                KlCoefficient = parse.GetValue(kl), ClipEpsilon = parse.GetValue(clipEpsilon),
            }.Validate();
            var (model, tokenizer, folder) = common.Load(parse);
            var skipped = new List<string>();
            var promptList = FeedbackDatasets.ReadPrompts(parse.GetValue(prompts)!, skipped, parse.GetValue(common.Strict));
            ReportSkipped(skipped);
            if (promptList.Count == 0) throw new InvalidDataException($"{parse.GetValue(prompts)}: no prompts");
            var reward = RewardModel.Load(parse.GetValue(rewardModel)!);
            var result = Report(options, report => GrpoTuner.Run(model, reward, tokenizer, promptList, options, grpo, report, folder), ["loss", "reward", "kl"]);
            return Done(result, options);
        }));
        return command;
    }

    static Command Merge()
    {
        var model = new Option<string>("--model") { Description = "Base checkpoint folder", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "LoRA adapter folder (adapter_config.json + adapter_model.safetensors)", Required = true };
        var output = new Option<string>("--out") { Description = "Where the merged checkpoint goes", Required = true };
        var command = new Command("merge", "Merge a LoRA adapter into its base model (W += alpha/r · B·A) and save a plain checkpoint.") { model, adapter, output };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            string folder = Checkpoint.Resolve(parse.GetValue(model)!);
            var transformer = Checkpoint.Load(folder);
            var quantized = transformer.QuantizedType;
            var tokenizer = Tokenizer.Load(folder);
            string adapterFolder = parse.GetValue(adapter)!;
            if (!Directory.Exists(adapterFolder)) throw new DirectoryNotFoundException($"{adapterFolder}: adapter folder not found");
            Lora.Load(adapterFolder, transformer);
            var merged = Lora.MergedFloat(transformer);
            Checkpoint.Save(parse.GetValue(output)!, merged, tokenizer.Save);
            Console.WriteLine($"merged {adapterFolder} into {folder}" +
                (quantized is { } type ? $" (dequantised from {GgmlTypes.Name((uint)type)}: the adapter is merged into the float32 values of the quantised weights)" : "") +
                $"; wrote {parse.GetValue(output)} in float32");
            return 0;
        }));
        return command;
    }

    static Command Sample()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder of the policy", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "The user's message", Required = true };
        var bestOf = new Option<int>("--best-of") { Description = "Sample N responses and return the reward model's favourite", DefaultValueFactory = _ => 1 };
        var rewardModel = new Option<string?>("--reward-model") { Description = "Reward-model folder (needed when --best-of > 1)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest response", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature (0 = greedy)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1UL };
        var threads = SharedOptions.Threads();
        var command = new Command("sample", "Sample a response; with --best-of N and --reward-model, the best of N by the reward model.")
        {
            model, prompt, bestOf, rewardModel, maxNew, temperature, seed, threads,
        };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            int n = parse.GetValue(bestOf);
            if (n < 1) throw new ArgumentException($"--best-of must be positive, got {n}");
            if (n > 1 && parse.GetValue(rewardModel) is null) throw new ArgumentException("--best-of needs --reward-model");
            if (parse.GetValue(maxNew) < 1) throw new ArgumentException($"--max-new-tokens must be positive, got {parse.GetValue(maxNew)}");
            using var compute = new ComputeContext(SharedOptions.ThreadCount(parse, threads));
            string folder = Checkpoint.Resolve(parse.GetValue(model)!);
            var policy = Checkpoint.Load(folder);
            var tokenizer = Tokenizer.Load(folder);
            var format = ChatFormat.Load(folder);
            var random = new DeterministicRandom(parse.GetValue(seed));
            IReadOnlyList<ChatTurn> turns = [new ChatTurn("user", parse.GetValue(prompt)!)];
            if (parse.GetValue(rewardModel) is string rmFolder)
            {
                var reward = RewardModel.Load(rmFolder);
                var ranked = new BestOfN(policy, reward, tokenizer, compute, format).Generate(turns, n, parse.GetValue(maxNew), parse.GetValue(temperature), random);
                Console.WriteLine(ranked[0].Response);
                foreach (var (response, score) in ranked) Console.Error.WriteLine($"reward {score:F3}: {response.ReplaceLineEndings(" ")}");
                return 0;
            }
            var (ids, _) = format.Encode(turns, tokenizer, addGenerationPrompt: true);
            var sample = new PolicySampler(policy, compute).Sample([ids], 1, parse.GetValue(maxNew), parse.GetValue(temperature), SequenceLogProbs.EndId(tokenizer, format), random)[0];
            Console.WriteLine(tokenizer.Decode(sample, skipSpecialTokens: true));
            return 0;
        }));
        return command;
    }

    /// <summary>Runs a tuning job, printing steps and evaluations and drawing the chosen curves to OUT/curves.png.</summary>
    static TuneResult Report(TuneOptions options, Func<Action<TuneEvent>, TuneResult> run, string[] plotted)
    {
        var series = plotted.ToDictionary(name => name, _ => new List<(int, float)>());
        var evalSeries = plotted.ToDictionary(name => name, _ => new List<(int, float)>());
        var result = run(e =>
        {
            foreach (var (name, value) in e.Metrics)
                if ((e.Evaluation ? evalSeries : series).TryGetValue(name, out var list)) list.Add((e.Step, value));
            if (e.Evaluation || e.Step <= 5 || e.Step % 10 == 0 || e.Step == e.Steps) Console.WriteLine(e.ToString());
        });
        var curves = new List<(string, IReadOnlyList<(int, float)>)>();
        foreach (var name in plotted)
        {
            if (series[name].Count > 0) curves.Add((name, series[name]));
            if (evalSeries[name].Count > 0) curves.Add(($"{name} (eval)", evalSeries[name]));
        }
        MetricsPlot.Save(Path.Combine(options.OutputFolder, PlotFileName), curves);
        return result;
    }

    static int Done(TuneResult result, TuneOptions options)
    {
        Console.WriteLine($"done: {result.Steps} steps in {result.Elapsed.TotalSeconds:F0} s; wrote {options.OutputFolder} " +
            $"({(options.Lora is null ? "checkpoint/" : options.MergeLora ? "adapter/ and merged float32 checkpoint/" : "adapter/")}, {TuningLoop.MetricsFileName}, {PlotFileName})");
        return 0;
    }
}
