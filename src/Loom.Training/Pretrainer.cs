using Loom.IO;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training;

/// <summary>Settings of a pretraining run; null or default means nanoGPT's shakespeare-char choice.</summary>
public sealed record PretrainOptions
{
    /// <summary>Token shards from <c>loom prepare</c> (train and validation splits, tokenizer.json).</summary>
    public required string DataFolder { get; init; }
    /// <summary>Where checkpoint/, metrics.jsonl and the loss plot go.</summary>
    public required string OutputFolder { get; init; }
    /// <summary>Architecture; its vocabulary size is replaced by the tokenizer's, MaxSeq is the block size.</summary>
    public LlamaConfig Model { get; init; } = LlamaConfig.Preset("shakespeare-char");
    /// <summary>Sequences per micro-batch.</summary>
    public int Batch { get; init; } = 12;
    /// <summary>Micro-batches whose gradients add up to one optimizer step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>Optimizer steps in the whole run (the cosine reaches its floor here).</summary>
    public int Steps { get; init; } = 2000;
    /// <summary>Peak learning rate, after warmup.</summary>
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Floor of the cosine decay.</summary>
    public float MinLearningRate { get; init; } = 1e-4f;
    /// <summary>Steps of linear warmup.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>AdamW's decoupled weight decay (matrices only).</summary>
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>AdamW's β₂ (nanoGPT uses 0.99 for its small character model).</summary>
    public float Beta2 { get; init; } = 0.99f;
    /// <summary>Global gradient-norm clip; 0 turns clipping off.</summary>
    public float Clip { get; init; } = 1f;
    /// <summary>Steps between validation runs; 0 = only at the end.</summary>
    public int EvalEvery { get; init; } = 250;
    /// <summary>Batches in each validation run (the same batches every time).</summary>
    public int EvalBatches { get; init; } = 20;
    /// <summary>Steps between checkpoints; 0 = only at the end.</summary>
    public int SaveEvery { get; init; } = 500;
    /// <summary>Seeds initialisation, batch sampling and the validation batches.</summary>
    public ulong Seed { get; init; } = 1337;
    /// <summary>Continue from OutputFolder/checkpoint (architecture and state from the checkpoint).</summary>
    public bool Resume { get; init; }
    /// <summary>Peak FLOP/s for MFU; null measures Loom's GEMM at startup and again at each evaluation, keeping the best.</summary>
    public double? PeakFlops { get; init; }
    /// <summary>Also write metrics.jsonl (tests turn it off to compare runs in memory).</summary>
    public bool WriteMetrics { get; init; } = true;
    /// <summary>The threads every kernel of the run uses; null means <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }

    /// <summary>Throws a one-line error naming the first bad setting.</summary>
    public PretrainOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(Batch > 0, $"PretrainOptions.Batch must be positive, got {Batch}");
        Check(GradientAccumulation > 0, $"PretrainOptions.GradientAccumulation must be positive, got {GradientAccumulation}");
        Check(Steps > 0, $"PretrainOptions.Steps must be positive, got {Steps}");
        Check(WeightDecay >= 0, $"PretrainOptions.WeightDecay must be ≥ 0, got {WeightDecay}");
        Check(Clip >= 0, $"PretrainOptions.Clip must be ≥ 0, got {Clip}");
        Check(EvalEvery >= 0, $"PretrainOptions.EvalEvery must be ≥ 0, got {EvalEvery}");
        Check(EvalBatches > 0, $"PretrainOptions.EvalBatches must be positive, got {EvalBatches}");
        Check(SaveEvery >= 0, $"PretrainOptions.SaveEvery must be ≥ 0, got {SaveEvery}");
        new LearningRateSchedule(LearningRate, MinLearningRate, WarmupSteps, Steps).Validate();
        return this;
    }
}

/// <summary>Something the loop reports, in order, on the training thread.</summary>
public abstract record PretrainEvent;

/// <summary>The run is set up: model size, tokens per step, the peak FLOP/s used for MFU.</summary>
public sealed record StartEvent(LlamaConfig Config, long Parameters, int StartStep, int Steps, long TokensPerStep, double PeakFlops, bool Resumed) : PretrainEvent;

/// <summary>One optimizer step finished. Step counts from 1.</summary>
public sealed record StepEvent(int Step, int Steps, float Loss, float LearningRate, float GradientNorm,
    double TokensPerSecond, double Mfu, TimeSpan Elapsed, TimeSpan Remaining) : PretrainEvent;

/// <summary>A validation run finished: mean loss over the fixed validation batches, and the mean training loss since the previous one.</summary>
public sealed record EvalEvent(int Step, float TrainLoss, float ValidationLoss) : PretrainEvent;

/// <summary>A checkpoint was written.</summary>
public sealed record CheckpointEvent(int Step, string Folder) : PretrainEvent;

/// <summary>What a run did.</summary>
public sealed record PretrainResult(int StepsDone, float LastLoss, float? LastValidationLoss, bool Interrupted, string CheckpointFolder);

/// <summary>
/// Next-token pretraining of a <see cref="Transformer"/> on token shards, in the manner of nanoGPT's
/// train.py: random windows of the train split, gradient accumulation, AdamW with warmup and cosine
/// decay, gradient clipping, validation on fixed batches, periodic checkpoints, exact resume.
/// </summary>
public static class Pretrainer
{
    public const string CheckpointFolderName = "checkpoint";
    public const string MetricsFileName = "metrics.jsonl";

    /// <summary>
    /// Runs (or resumes) training. Cancelling <paramref name="cancellationToken"/> stops at the next step
    /// boundary, writes a checkpoint and returns with <see cref="PretrainResult.Interrupted"/> set.
    /// </summary>
    public static PretrainResult Run(PretrainOptions options, Action<PretrainEvent>? report = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        report ??= _ => { };
        var compute = options.Compute ?? ComputeContext.Default;

        // ---- data: the train split is sampled at random offsets, validation at fixed ones.
        using var shards = TokenShards.Open(options.DataFolder);
        ITokenizer tokenizer = shards.Tokenizer;
        TokenStream train = shards.Train, validation = shards.Validation;

        // ---- model and optimizer: fresh, or exactly as the checkpoint left them.
        string checkpointFolder = Path.Combine(options.OutputFolder, CheckpointFolderName);
        Transformer model;
        TrainingState? resumed = null;
        if (options.Resume)
        {
            if (!File.Exists(Path.Combine(checkpointFolder, Checkpoint.ConfigFileName)))
                throw new FileNotFoundException($"{checkpointFolder}: no checkpoint to resume from");
            model = Checkpoint.Load(checkpointFolder);
            if (model.Config.VocabSize != tokenizer.VocabSize)
                throw new InvalidDataException($"{checkpointFolder}: vocab_size {model.Config.VocabSize} differs from the data's tokenizer ({tokenizer.VocabSize} tokens)");
        }
        else
        {
            var fresh = options.Model with
            {
                VocabSize = tokenizer.VocabSize,
                BosId = tokenizer.BosId ?? -1,
                EosId = tokenizer.EosId ?? -1,
            };
            model = new Transformer(fresh.Validate(), options.Seed);
        }
        var config = model.Config;
        int batch = options.Batch, block = config.MaxSeq, accumulation = options.GradientAccumulation;
        if (train.Length < block + 1) throw new InvalidDataException($"{options.DataFolder}: the train split has {train.Length} tokens, fewer than block size + 1 = {block + 1}");
        if (validation.Length < block + 1) throw new InvalidDataException($"{options.DataFolder}: the validation split has {validation.Length} tokens, fewer than block size + 1 = {block + 1}");

        Directory.CreateDirectory(options.OutputFolder);

        var parameters = model.Parameters;
        var optimizer = new AdamW(parameters, new AdamWOptions(options.LearningRate, Beta1: 0.9f, Beta2: options.Beta2, Epsilon: 1e-8f, WeightDecay: options.WeightDecay) { Compute = compute });
        var schedule = new LearningRateSchedule(options.LearningRate, options.MinLearningRate, options.WarmupSteps, options.Steps);
        var sampler = new DeterministicRandom(options.Seed);
        int startStep = 0;
        if (options.Resume)
        {
            resumed = TrainingState.Load(Path.Combine(checkpointFolder, Checkpoint.TrainingStateFolderName), optimizer);
            sampler.State = resumed.RandomState;
            startStep = resumed.Step;
        }

        // The validation batches are drawn once from their own generator, so every evaluation
        // (and every resumed run) measures the same tokens.
        var evalRandom = new DeterministicRandom((resumed?.Seed ?? options.Seed) ^ 0x5EED_0F_E7A1UL);
        var evalOffsets = new long[options.EvalBatches * batch];
        for (int i = 0; i < evalOffsets.Length; i++) evalOffsets[i] = evalRandom.NextInt64(validation.Length - block);

        // ---- buffers reused by every step: after the first step nothing is allocated.
        var ids = new int[batch * block];     // [batch, block]
        var targets = new int[batch * block]; // [batch, block], ids shifted left by one
        var window = new int[block + 1];
        var tape = new Tape(compute);
        var evalTape = new Tape(compute) { Recording = false };
        // With more than one thread each thread takes whole rows of the batch through a replica of the model.
        using var rows = DataParallelLoss.Applies(compute, batch) ? new DataParallelLoss(model, compute) : null;

        long tokensPerStep = (long)batch * block * accumulation;
        double flopsPerStep = (double)config.FlopsPerTokenAt(block) * tokensPerStep;
        double peak = options.PeakFlops ?? PeakFlops.Measure(minimumTime: TimeSpan.FromSeconds(1), compute: compute); // best of many: the shared cores swing
        report(new StartEvent(config, config.ParameterCount, startStep, options.Steps, tokensPerStep, peak, resumed is not null));

        string metricsPath = Path.Combine(options.OutputFolder, MetricsFileName);
        using var metrics = options.WriteMetrics ? OpenMetrics(metricsPath, startStep) : null;

        void Save(int stepsDone, float learningRate)
        {
            var state = new TrainingState(stepsDone, optimizer.StepCount, sampler.State, resumed?.Seed ?? options.Seed, learningRate);
            Checkpoint.Save(checkpointFolder, model, tokenizer.Save, folder => state.Save(folder, optimizer));
            report(new CheckpointEvent(stepsDone, checkpointFolder));
        }

        float Evaluate()
        {
            double total = 0;
            for (int b = 0; b < options.EvalBatches; b++)
            {
                for (int row = 0; row < batch; row++)
                    ReadWindow(validation, evalOffsets[b * batch + row], window, ids, targets, row, block);
                evalTape.Reset();
                total += model.Loss(evalTape, ids, targets, batch, block).Scalar();
            }
            return (float)(total / options.EvalBatches);
        }

        // ---- the loop
        var clock = Stopwatch.StartNew();
        double trainLossSum = 0;
        int trainLossCount = 0, stepsDone = startStep;
        float lastLoss = float.NaN, learningRate = schedule.At(startStep);
        float? lastValidation = null;
        bool interrupted = false;
        for (int step = startStep; step < options.Steps; step++)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                interrupted = true;
                break;
            }
            long stepStart = Stopwatch.GetTimestamp();
            learningRate = schedule.At(step);

            // Forward and backward over the micro-batches; the 1/accumulation seed makes the summed
            // gradients the gradient of the mean loss, as one big batch would give.
            optimizer.ZeroGrad();
            double lossSum = 0;
            for (int micro = 0; micro < accumulation; micro++)
            {
                for (int row = 0; row < batch; row++)
                    ReadWindow(train, sampler.NextInt64(train.Length - block), window, ids, targets, row, block);
                if (rows is not null)
                {
                    lossSum += rows.ForwardBackward(ids, targets, batch, block, 1f / accumulation);
                    continue;
                }
                tape.Reset();
                var loss = model.Loss(tape, ids, targets, batch, block); // [1]
                lossSum += loss.Scalar();
                tape.Backward(loss, 1f / accumulation);
            }
            rows?.CollectGradients();
            float gradientNorm = options.Clip > 0
                ? GradientClipping.ClipGradientNorm(parameters, options.Clip, compute)
                : GradientClipping.ClipGradientNorm(parameters, float.PositiveInfinity, compute);
            optimizer.Step(learningRate);
            stepsDone = step + 1;

            lastLoss = (float)(lossSum / accumulation);
            trainLossSum += lastLoss;
            trainLossCount++;
            double seconds = Stopwatch.GetElapsedTime(stepStart).TotalSeconds;
            double tokensPerSecond = tokensPerStep / seconds;
            double mfu = flopsPerStep / seconds / peak;
            var remaining = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / (stepsDone - startStep) * (options.Steps - stepsDone));
            report(new StepEvent(stepsDone, options.Steps, lastLoss, learningRate, gradientNorm, tokensPerSecond, mfu, clock.Elapsed, remaining));
            metrics?.WriteLine(Json(("step", stepsDone), ("loss", lastLoss), ("lr", learningRate), ("grad_norm", gradientNorm),
                ("tokens_per_second", (float)tokensPerSecond), ("mfu", (float)mfu), ("elapsed_s", (float)clock.Elapsed.TotalSeconds)));

            if ((options.EvalEvery > 0 && stepsDone % options.EvalEvery == 0) || stepsDone == options.Steps)
            {
                float validationLoss = Evaluate();
                float trainLoss = (float)(trainLossSum / trainLossCount);
                trainLossSum = 0;
                trainLossCount = 0;
                lastValidation = validationLoss;
                report(new EvalEvent(stepsDone, trainLoss, validationLoss));
                // A peak measured while other work held the cores is too low (MFU then reads over 100%);
                // each evaluation measures again and the best rate so far is the peak from here on.
                if (options.PeakFlops is null)
                    peak = Math.Max(peak, PeakFlops.Measure(compute: compute));
                metrics?.WriteLine(Json(("step", stepsDone), ("train_loss", trainLoss), ("val_loss", validationLoss)));
            }
            metrics?.Flush();
            if ((options.SaveEvery > 0 && stepsDone % options.SaveEvery == 0) || stepsDone == options.Steps)
                Save(stepsDone, learningRate);
        }
        if (interrupted) Save(stepsDone, learningRate);
        return new PretrainResult(stepsDone, lastLoss, lastValidation, interrupted, checkpointFolder);
    }

    /// <summary>Reads tokens [offset, offset + block] into row <paramref name="row"/> of ids and, shifted by one, of targets.</summary>
    static void ReadWindow(TokenStream stream, long offset, int[] window, int[] ids, int[] targets, int row, int block)
    {
        stream.Read(offset, window);
        Array.Copy(window, 0, ids, row * block, block);
        Array.Copy(window, 1, targets, row * block, block);
    }

    /// <summary>Opens metrics.jsonl for appending, first dropping records past <paramref name="startStep"/> (left by a run that went on after its last checkpoint).</summary>
    internal static StreamWriter OpenMetrics(string path, int startStep)
    {
        if (File.Exists(path))
        {
            var kept = new StringBuilder();
            foreach (var line in File.ReadLines(path))
            {
                int step = StepOf(line);
                if (step >= 0 && step <= startStep) kept.Append(line).Append('\n');
            }
            AtomicFile.WriteAllText(path, kept.ToString());
        }
        return new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false)) { NewLine = "\n" };
    }

    static int StepOf(string line)
    {
        try { return System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("step").GetInt32(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException) { return -1; }
    }

    /// <summary>One JSON object from name/value pairs (floats in round-trip form).</summary>
    internal static string Json(params ReadOnlySpan<(string Name, float Value)> fields)
    {
        var text = new StringBuilder("{");
        for (int i = 0; i < fields.Length; i++)
        {
            if (i > 0) text.Append(',');
            text.Append('"').Append(fields[i].Name).Append("\":");
            float v = fields[i].Value;
            text.Append(float.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null");
        }
        return text.Append('}').ToString();
    }
}
