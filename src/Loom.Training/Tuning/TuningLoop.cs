using System.Diagnostics;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>Settings shared by every tuning run (SFT, reward model, DPO, RL).</summary>
public sealed record TuneOptions
{
    /// <summary>Where checkpoint/ (or adapter/), metrics.jsonl and the plot go.</summary>
    public required string OutputFolder { get; init; }
    /// <summary>Optimizer steps; for SFT, <see cref="Epochs"/> overrides it when positive.</summary>
    public int Steps { get; init; } = 100;
    /// <summary>Passes over the data (SFT); 0 = use <see cref="Steps"/>.</summary>
    public int Epochs { get; init; }
    /// <summary>Rows (SFT), pairs (RM, DPO) or prompts (RL) per step.</summary>
    public int Batch { get; init; } = 8;
    /// <summary>Peak learning rate.</summary>
    public float LearningRate { get; init; } = 1e-4f;
    /// <summary>Floor of the cosine decay; null = a tenth of the peak.</summary>
    public float? MinLearningRate { get; init; }
    /// <summary>Steps of linear warmup.</summary>
    public int WarmupSteps { get; init; } = 5;
    /// <summary>AdamW weight decay (matrices only).</summary>
    public float WeightDecay { get; init; }
    /// <summary>Global gradient-norm clip; 0 = off.</summary>
    public float Clip { get; init; } = 1f;
    /// <summary>Steps between evaluations; 0 = at the end only.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Share of the data held out for evaluation (SFT loss, reward-model accuracy, DPO accuracy).</summary>
    public double EvalFraction { get; init; } = 0.1;
    /// <summary>Seeds shuffling, sampling and new weights.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>Train LoRA adapters instead of every weight; null = full fine-tuning.</summary>
    public LoraOptions? Lora { get; init; }
    /// <summary>The chat format examples are built in (an imported model's template); null means Loom's. A Jinja format is saved with the tuned checkpoint.</summary>
    public IChatFormat? ChatFormat { get; init; }
    /// <summary>With LoRA: also write the merged model to checkpoint/ (the adapter alone always goes to adapter/).</summary>
    public bool MergeLora { get; init; }
    /// <summary>Write metrics.jsonl (tests may turn it off).</summary>
    public bool WriteMetrics { get; init; } = true;
    /// <summary>The threads every kernel of the run uses; null means <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }

    /// <summary>Throws a one-line error naming the first bad setting.</summary>
    public TuneOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(Steps > 0, $"TuneOptions.Steps must be positive, got {Steps}");
        Check(Epochs >= 0, $"TuneOptions.Epochs must be ≥ 0, got {Epochs}");
        Check(Batch > 0, $"TuneOptions.Batch must be positive, got {Batch}");
        Check(WeightDecay >= 0, $"TuneOptions.WeightDecay must be ≥ 0, got {WeightDecay}");
        Check(Clip >= 0, $"TuneOptions.Clip must be ≥ 0, got {Clip}");
        Check(EvalEvery >= 0, $"TuneOptions.EvalEvery must be ≥ 0, got {EvalEvery}");
        Check(EvalFraction is >= 0 and < 1, $"TuneOptions.EvalFraction must be in [0, 1), got {EvalFraction}");
        new LearningRateSchedule(LearningRate, MinLearningRate ?? LearningRate / 10, WarmupSteps, Steps).Validate();
        Lora?.Validate();
        return this;
    }
}

/// <summary>One step or evaluation of a tuning run: its named metrics, in the order written to metrics.jsonl.</summary>
public sealed record TuneEvent(int Step, int Steps, bool Evaluation, IReadOnlyList<(string Name, float Value)> Metrics)
{
    /// <summary>The metric called <paramref name="name"/>, or NaN.</summary>
    public float this[string name] => Metrics.FirstOrDefault(m => m.Name == name) is var (n, v) && n == name ? v : float.NaN;

    public override string ToString() =>
        $"{(Evaluation ? "eval" : "step")} {Step}/{Steps}: " + string.Join(", ", Metrics.Select(m => $"{m.Name} {m.Value:G4}"));
}

/// <summary>What a tuning run did: the last step's and the last evaluation's metrics, and where the model went.</summary>
public sealed record TuneResult(int Steps, TuneEvent? LastStep, TuneEvent? LastEvaluation, string OutputFolder, TimeSpan Elapsed);

/// <summary>
/// The optimizer side shared by every tuning run: AdamW over the trainable tensors, warmup + cosine schedule,
/// gradient clipping, metrics.jsonl lines (the pretrainer's writer) and event reports.
/// </summary>
public sealed class TuningLoop : IDisposable
{
    public const string MetricsFileName = Pretrainer.MetricsFileName;
    public const string CheckpointFolderName = Pretrainer.CheckpointFolderName;
    public const string AdapterFolderName = "adapter";

    readonly TuneOptions options;
    readonly IReadOnlyList<Tensor> trainable;
    readonly AdamW optimizer;
    readonly LearningRateSchedule schedule;
    readonly StreamWriter? metrics;
    readonly Action<TuneEvent> report;
    readonly Stopwatch clock = Stopwatch.StartNew();

    public TuningLoop(TuneOptions options, int steps, IReadOnlyList<Tensor> trainable, Action<TuneEvent>? report)
    {
        this.options = options;
        this.trainable = trainable;
        Steps = steps;
        this.report = report ?? (_ => { });
        Compute = options.Compute ?? ComputeContext.Default;
        Tape = new Tape(Compute);
        optimizer = new AdamW(trainable, new AdamWOptions(options.LearningRate, 0.9f, 0.999f, 1e-8f, options.WeightDecay) { Compute = Compute });
        schedule = new LearningRateSchedule(options.LearningRate, options.MinLearningRate ?? options.LearningRate / 10, Math.Min(options.WarmupSteps, steps), steps).Validate();
        Directory.CreateDirectory(options.OutputFolder);
        if (options.WriteMetrics) metrics = Pretrainer.OpenMetrics(Path.Combine(options.OutputFolder, MetricsFileName), 0);
    }

    /// <summary>Optimizer steps in the run.</summary>
    public int Steps { get; }

    /// <summary>The threads of the run (<see cref="TuneOptions.Compute"/>, or the default context).</summary>
    public ComputeContext Compute { get; }

    /// <summary>The tape of the trainable forward passes, on <see cref="Compute"/>.</summary>
    public Tape Tape { get; }

    public TuneEvent? LastStep { get; private set; }
    public TuneEvent? LastEvaluation { get; private set; }
    public TimeSpan Elapsed => clock.Elapsed;

    /// <summary>Backpropagates <paramref name="loss"/>, clips, takes an AdamW step at the scheduled rate; returns (learning rate, gradient norm).</summary>
    public (float LearningRate, float GradientNorm) Optimize(int step, Tensor loss)
    {
        optimizer.ZeroGrad();
        Tape.Backward(loss);
        float norm = GradientClipping.ClipGradientNorm(trainable, options.Clip > 0 ? options.Clip : float.PositiveInfinity, Compute);
        float learningRate = schedule.At(step);
        optimizer.Step(learningRate);
        return (learningRate, norm);
    }

    /// <summary>Writes one metrics.jsonl line (with the step and elapsed seconds) and reports it.</summary>
    public TuneEvent Log(int step, bool evaluation, params (string Name, float Value)[] values)
    {
        var fields = new List<(string, float)> { ("step", step) };
        if (evaluation) fields.Add(("eval", 1));
        fields.AddRange(values);
        fields.Add(("elapsed_s", (float)clock.Elapsed.TotalSeconds));
        metrics?.WriteLine(Pretrainer.Json([.. fields]));
        metrics?.Flush();
        var e = new TuneEvent(step, Steps, evaluation, values);
        if (evaluation) LastEvaluation = e;
        else LastStep = e;
        report(e);
        return e;
    }

    /// <summary>Whether an evaluation is due after <paramref name="stepsDone"/> steps.</summary>
    public bool EvaluationDue(int stepsDone) => stepsDone == Steps || (options.EvalEvery > 0 && stepsDone % options.EvalEvery == 0);

    public TuneResult Result(int stepsDone) => new(stepsDone, LastStep, LastEvaluation, options.OutputFolder, clock.Elapsed);

    public void Dispose() => metrics?.Dispose();

    /// <summary>
    /// The trainable tensors of a policy: every parameter, or (with LoRA) fresh adapters attached to it. A base held in
    /// BF16 or a quantised type stays frozen, so it trains only with LoRA.
    /// </summary>
    public static IReadOnlyList<Tensor> Trainable(Transformer model, TuneOptions options)
    {
        if (options.Lora is LoraOptions lora) return Lora.Attach(model, lora, options.Seed);
        if (model.QuantizedType is { } type)
            throw new ArgumentException($"TuneOptions.Lora is not set (full fine-tuning), but the weights are held as {type} and stay frozen: only LoRA adapters train on such a base");
        return model.Parameters;
    }

    /// <summary>
    /// Saves a tuned policy: checkpoint/ in the pretraining layout (full fine-tuning), or adapter/ in PEFT's layout
    /// (LoRA), plus checkpoint/ with the adapters merged when <see cref="TuneOptions.MergeLora"/> is set (a float32 base is then
    /// merged in place; a BF16 or quantised base is dequantised into a float32 checkpoint: <see cref="Lora.MergedFloat"/>).
    /// </summary>
    public static void SavePolicy(Transformer model, ITokenizer tokenizer, TuneOptions options, string? baseModel = null)
    {
        if (options.Lora is LoraOptions lora)
        {
            Lora.Save(Path.Combine(options.OutputFolder, AdapterFolderName), model, lora, baseModel);
            if (!options.MergeLora) return;
            model = Lora.MergedFloat(model);
        }
        Checkpoint.Save(Path.Combine(options.OutputFolder, CheckpointFolderName), model, folder =>
        {
            tokenizer.Save(folder);
            if (options.ChatFormat is JinjaChatFormat template) template.Save(folder);
        });
    }

    /// <summary>A frozen copy (no tensor requires a gradient): the reference model of DPO and RL.</summary>
    public static Transformer FrozenCopy(Transformer model)
    {
        var copy = Transformer.FromTensors(model.Config, model.Parameters.ToDictionary(p => p.Name!, p => p), "reference copy");
        foreach (var p in copy.Parameters) p.RequiresGrad = false;
        return copy;
    }

    /// <summary>A seeded permutation of 0..count-1 (Fisher–Yates).</summary>
    public static int[] Shuffle(int count, DeterministicRandom random)
    {
        var order = Enumerable.Range(0, count).ToArray();
        for (int i = count - 1; i > 0; i--)
        {
            int j = (int)random.NextInt64(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
