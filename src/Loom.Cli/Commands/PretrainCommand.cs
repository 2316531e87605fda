using System.CommandLine;
using Loom.Evaluation;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;
using Spectre.Console;

namespace Loom.Cli.Commands;

/// <summary><c>loom pretrain</c>: next-token pretraining on token shards from <c>loom prepare</c>.</summary>
internal static class PretrainCommand
{
    public const string PlotFileName = "loss.png";

    internal static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Token shards folder written by `loom prepare`", Required = true };
        var output = new Option<string>("--out") { Description = "Output folder: checkpoint/, metrics.jsonl, loss.png", Required = true };
        var preset = new Option<string>("--preset") { Description = $"Architecture preset ({string.Join(", ", LlamaConfig.Presets.Keys)})", DefaultValueFactory = _ => "shakespeare-char" };
        var layers = new Option<int?>("--layers") { Description = "Transformer blocks" };
        var dim = new Option<int?>("--dim") { Description = "Residual width (hidden_size); --hidden-dim defaults to 3×dim when only this is given" };
        var heads = new Option<int?>("--heads") { Description = "Attention heads; --kv-heads defaults to this when only this is given" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads (grouped-query attention)" };
        var hiddenDim = new Option<int?>("--hidden-dim") { Description = "SwiGLU width (intermediate_size)" };
        var block = new Option<int?>("--block") { Description = "Tokens per training sequence (and the model's context)" };
        var batch = new Option<int>("--batch") { Description = "Sequences per micro-batch", DefaultValueFactory = _ => 12 };
        var accumulation = new Option<int>("--grad-accum") { Description = "Micro-batches per optimizer step", DefaultValueFactory = _ => 1 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 2000 };
        var learningRate = new Option<float>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-3f };
        var minLearningRate = new Option<float>("--min-lr") { Description = "Learning rate at the end of the cosine decay", DefaultValueFactory = _ => 1e-4f };
        var warmup = new Option<int>("--warmup") { Description = "Linear warmup steps", DefaultValueFactory = _ => 100 };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW weight decay (matrices only)", DefaultValueFactory = _ => 0.1f };
        var clip = new Option<float>("--clip") { Description = "Gradient-norm clip (0 = off)", DefaultValueFactory = _ => 1f };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between validation runs (0 = at the end only)", DefaultValueFactory = _ => 250 };
        var evalBatches = new Option<int>("--eval-batches") { Description = "Batches per validation run", DefaultValueFactory = _ => 20 };
        var saveEvery = new Option<int>("--save-every") { Description = "Steps between checkpoints (0 = at the end only)", DefaultValueFactory = _ => 500 };
        var threads = SharedOptions.Threads();
        var seed = new Option<ulong>("--seed") { Description = "Seed for initialisation and batch sampling", DefaultValueFactory = _ => 1337UL };
        var resume = new Option<bool>("--resume") { Description = "Continue from OUT/checkpoint exactly where it stopped (the architecture comes from the checkpoint)" };

        var command = new Command("pretrain", "Pretrain a Llama-architecture model on token shards (next-token prediction).")
        {
            data, output, preset, layers, dim, heads, kvHeads, hiddenDim, block, batch, accumulation, steps, learningRate, minLearningRate,
            warmup, weightDecay, clip, evalEvery, evalBatches, saveEvery, threads, seed, resume,
        };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var model = LlamaConfig.Preset(parseResult.GetValue(preset)!);
            if (parseResult.GetValue(dim) is int d) model = model with { Dim = d, HiddenDim = parseResult.GetValue(hiddenDim) ?? 3 * d };
            if (parseResult.GetValue(heads) is int h) model = model with { Heads = h, KvHeads = parseResult.GetValue(kvHeads) ?? h };
            if (parseResult.GetValue(layers) is int l) model = model with { Layers = l };
            if (parseResult.GetValue(kvHeads) is int kv) model = model with { KvHeads = kv };
            if (parseResult.GetValue(hiddenDim) is int hd) model = model with { HiddenDim = hd };
            if (parseResult.GetValue(block) is int b) model = model with { MaxSeq = b };
            using var compute = new ComputeContext(SharedOptions.ThreadCount(parseResult, threads));

            var options = new PretrainOptions
            {
                DataFolder = parseResult.GetValue(data)!,
                OutputFolder = parseResult.GetValue(output)!,
                Model = model,
                Batch = parseResult.GetValue(batch),
                GradientAccumulation = parseResult.GetValue(accumulation),
                Steps = parseResult.GetValue(steps),
                LearningRate = parseResult.GetValue(learningRate),
                MinLearningRate = parseResult.GetValue(minLearningRate),
                WarmupSteps = parseResult.GetValue(warmup),
                WeightDecay = parseResult.GetValue(weightDecay),
                Clip = parseResult.GetValue(clip),
                EvalEvery = parseResult.GetValue(evalEvery),
                EvalBatches = parseResult.GetValue(evalBatches),
                SaveEvery = parseResult.GetValue(saveEvery),
                Seed = parseResult.GetValue(seed),
                Resume = parseResult.GetValue(resume),
                Compute = compute,
            };
            if (!Directory.Exists(options.DataFolder)) throw new DirectoryNotFoundException($"{options.DataFolder}: data folder not found (run `loom prepare` first)");
            if (options.Resume)
            {
                // The checkpoint decides the architecture; a flag that says otherwise is a mistake, not a wish.
                var given = new (string Flag, int? Value, Func<LlamaConfig, int> Stored)[]
                {
                    ("--layers", parseResult.GetValue(layers), config => config.Layers), ("--dim", parseResult.GetValue(dim), config => config.Dim),
                    ("--heads", parseResult.GetValue(heads), config => config.Heads), ("--kv-heads", parseResult.GetValue(kvHeads), config => config.KvHeads),
                    ("--hidden-dim", parseResult.GetValue(hiddenDim), config => config.HiddenDim), ("--block", parseResult.GetValue(block), config => config.MaxSeq),
                };
                string configPath = Path.Combine(options.OutputFolder, Pretrainer.CheckpointFolderName, Checkpoint.ConfigFileName);
                if (given.Any(item => item.Value is not null) && File.Exists(configPath))
                {
                    var stored = LlamaConfig.Load(configPath);
                    foreach (var (flag, value, read) in given)
                        if (value is int wanted && wanted != read(stored))
                            throw new ArgumentException($"{flag} {wanted} differs from the checkpoint's {read(stored)} ({configPath}); --resume keeps the checkpoint's architecture: drop the flag, or train anew in another --out");
                }
            }
            return Run(options);
        }));
        return command;
    }

    /// <summary>Runs training with a live display (or plain lines when output is redirected); Ctrl-C saves and stops.</summary>
    static int Run(PretrainOptions options)
    {
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // let the loop finish its step and save
            cancellation.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        var train = new List<(int Step, float Loss)>();
        var validation = new List<(int Step, float Loss)>();
        string plotPath = Path.Combine(options.OutputFolder, PlotFileName);
        PretrainResult result;
        try
        {
            if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            {
                result = Pretrainer.Run(options, e => PrintPlain(e, train, validation, plotPath), cancellation.Token);
            }
            else
            {
                result = AnsiConsole.Progress()
                    .AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(context =>
                    {
                        var task = context.AddTask("starting", maxValue: options.Steps);
                        float? lastValidation = null;
                        return Pretrainer.Run(options, e =>
                        {
                            Record(e, train, validation, plotPath);
                            switch (e)
                            {
                                case StartEvent s:
                                    AnsiConsole.MarkupLine(Markup.Escape(Describe(s)));
                                    task.Value = s.StartStep;
                                    break;
                                case StepEvent s:
                                    task.Value = s.Step;
                                    task.Description = Markup.Escape(
                                        $"step {s.Step}/{s.Steps} loss {s.Loss:F4} val {(lastValidation is float v ? v.ToString("F4") : "-")} " +
                                        $"{s.TokensPerSecond:N0} tok/s MFU {s.Mfu:P1}");
                                    break;
                                case EvalEvent s:
                                    lastValidation = s.ValidationLoss;
                                    AnsiConsole.MarkupLine(Markup.Escape($"step {s.Step}: train loss {s.TrainLoss:F4}, val loss {s.ValidationLoss:F4}"));
                                    break;
                                case CheckpointEvent s:
                                    AnsiConsole.MarkupLine(Markup.Escape($"step {s.Step}: saved {s.Folder}"));
                                    break;
                            }
                        }, cancellation.Token);
                    });
            }
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (train.Count > 0) LossPlot.Save(plotPath, train, validation);
        if (result.Interrupted)
        {
            Console.Error.WriteLine($"interrupted at step {result.StepsDone}; checkpoint saved to {result.CheckpointFolder} (continue with --resume)");
            return 130;
        }
        Console.WriteLine($"done: {result.StepsDone} steps, loss {result.LastLoss:F4}" +
            (result.LastValidationLoss is float val ? $", val loss {val:F4}" : "") + $"; checkpoint {result.CheckpointFolder}");
        return 0;
    }

    static string Describe(StartEvent s) =>
        $"{(s.Resumed ? "resuming at step " + s.StartStep : "training")}: {s.Parameters:N0} parameters " +
        $"({s.Config.Layers} layers, {s.Config.Dim} dim, {s.Config.Heads} heads, {s.Config.KvHeads} kv heads, vocab {s.Config.VocabSize}, block {s.Config.MaxSeq}), " +
        $"{s.TokensPerStep:N0} tokens/step, peak {s.PeakFlops / 1e9:F1} GFLOP/s (Loom GEMM)";

    /// <summary>Keeps the curve for the plot; redraws it at each checkpoint.</summary>
    static void Record(PretrainEvent e, List<(int, float)> train, List<(int, float)> validation, string plotPath)
    {
        switch (e)
        {
            case StepEvent s: train.Add((s.Step, s.Loss)); break;
            case EvalEvent s: validation.Add((s.Step, s.ValidationLoss)); break;
            case CheckpointEvent: LossPlot.Save(plotPath, train, validation); break;
        }
    }

    static void PrintPlain(PretrainEvent e, List<(int, float)> train, List<(int, float)> validation, string plotPath)
    {
        Record(e, train, validation, plotPath);
        switch (e)
        {
            case StartEvent s:
                Console.WriteLine(Describe(s));
                break;
            case StepEvent s when s.Step <= 10 || s.Step % 10 == 0 || s.Step == s.Steps:
                Console.WriteLine($"step {s.Step}/{s.Steps}: loss {s.Loss:F4}, lr {s.LearningRate:E2}, grad norm {s.GradientNorm:F3}, " +
                    $"{s.TokensPerSecond:N0} tok/s, MFU {s.Mfu:P1}, ETA {s.Remaining:hh\\:mm\\:ss}");
                break;
            case EvalEvent s:
                Console.WriteLine($"step {s.Step}: train loss {s.TrainLoss:F4}, val loss {s.ValidationLoss:F4}");
                break;
            case CheckpointEvent s:
                Console.WriteLine($"step {s.Step}: saved {s.Folder}");
                break;
        }
    }
}
