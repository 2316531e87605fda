using Loom.Evaluation;
using Loom.Models;
using Loom.Text;
using Loom.Training;
using Loom.Training.Tuning;

namespace Loom.Serving.Pipeline;

/// <summary>How supervised tuning runs inside a pipeline; null means the default.</summary>
public sealed record TuneStageOptions
{
    /// <summary>The tuning run itself (output, schedule, LoRA).</summary>
    public required TuneOptions Tune { get; init; }
    /// <summary>The checkpoint the model was loaded from, recorded as the tuned model's base; null: none recorded.</summary>
    public string? BaseCheckpoint { get; init; }
    /// <summary>Wall-clock budget; tuning stops at the first step past it and still saves. Null: no budget.</summary>
    public TimeSpan? TimeBudget { get; init; }
    /// <summary>Where the tuning loss curve is drawn as PNG; null: no plot.</summary>
    public string? PlotPath { get; init; }
}

/// <summary>The tuned checkpoint and its curve.</summary>
/// <param name="Tuning">Steps done, last metrics, elapsed time.</param>
/// <param name="CheckpointFolder">The tuned checkpoint folder.</param>
/// <param name="Curve">Tuning loss per step.</param>
/// <param name="PlotPath">The loss plot, when one was asked for.</param>
public sealed record TuneStageResult(TuneResult Tuning, string CheckpointFolder, IReadOnlyList<(int Step, float Value)> Curve, string? PlotPath);

/// <summary>Stage 4: supervised tuning of the model in place on instruction examples.</summary>
public static class TuneStage
{
    public static TuneStageResult Run(Transformer model, ITokenizer tokenizer, IReadOnlyList<SupervisedExample> examples, TuneStageOptions options,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (options.TimeBudget is { } budget)
        {
            limit.CancelAfter(budget);
            progress?.Report($"budget {budget.TotalSeconds:F0} s for at most {options.Tune.Steps} steps");
        }
        var curve = new List<(int Step, float Value)>();
        var result = SupervisedTuner.Run(model, tokenizer, examples, options.Tune, e =>
        {
            if (e.Evaluation)
            {
                progress?.Report($"step {e.Step}: validation loss {e["val_loss"]:F3}");
                return;
            }
            curve.Add((e.Step, e["loss"]));
            if (e.Step == 1 || e.Step % 10 == 0) progress?.Report($"step {e.Step}/{e.Steps}: loss {e["loss"]:F3}");
        }, options.BaseCheckpoint is null ? null : Path.GetFullPath(options.BaseCheckpoint), limit.Token);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report($"{result.Steps} steps{(result.Steps < options.Tune.Steps ? " (time budget reached)" : "")}, loss {result.LastStep?["loss"]:F3}");
        if (options.PlotPath is not null) MetricsPlot.Save(options.PlotPath, [("tuning loss", curve)]);
        return new TuneStageResult(result, Path.Combine(result.OutputFolder, Pretrainer.CheckpointFolderName), curve, options.PlotPath);
    }
}
