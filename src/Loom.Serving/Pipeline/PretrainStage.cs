using Loom.Evaluation;
using Loom.Training;

namespace Loom.Serving.Pipeline;

/// <summary>How pretraining runs inside a pipeline; null means the default.</summary>
public sealed record PretrainStageOptions
{
    /// <summary>The pretraining run itself (data, output, model, schedule).</summary>
    public required PretrainOptions Pretrain { get; init; }
    /// <summary>Wall-clock budget; the run stops at the first step past it and still saves. Null: no budget.</summary>
    public TimeSpan? TimeBudget { get; init; }
    /// <summary>Where the loss curve is drawn as PNG; null: no plot.</summary>
    public string? PlotPath { get; init; }
}

/// <summary>The pretrained checkpoint and its curves.</summary>
/// <param name="Training">Steps done, last losses, whether the budget stopped it.</param>
/// <param name="CheckpointFolder">The checkpoint folder (config.json, model.safetensors, tokenizer.json).</param>
/// <param name="TrainCurve">Train loss per step.</param>
/// <param name="ValidationCurve">Validation loss per evaluation.</param>
/// <param name="PlotPath">The loss plot, when one was asked for.</param>
public sealed record PretrainStageResult(PretrainResult Training, string CheckpointFolder,
    IReadOnlyList<(int Step, float Loss)> TrainCurve, IReadOnlyList<(int Step, float Loss)> ValidationCurve, string? PlotPath);

/// <summary>Stage 3: pretrain a model on the token shards.</summary>
public static class PretrainStage
{
    public static PretrainStageResult Run(PretrainStageOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (options.TimeBudget is { } budget)
        {
            limit.CancelAfter(budget);
            progress?.Report($"budget {budget.TotalSeconds:F0} s for at most {options.Pretrain.Steps} steps");
        }
        var curve = new List<(int Step, float Loss)>();
        var validationCurve = new List<(int Step, float Loss)>();
        var result = Pretrainer.Run(options.Pretrain, e =>
        {
            switch (e)
            {
                case StartEvent s:
                    progress?.Report($"{s.Parameters:N0} parameters ({s.Config.Layers} layers, dim {s.Config.Dim}, vocab {s.Config.VocabSize}, context {s.Config.MaxSeq}), {s.TokensPerStep:N0} tokens/step");
                    break;
                case StepEvent s:
                    curve.Add((s.Step, s.Loss));
                    if (s.Step == 1 || s.Step % 10 == 0)
                        progress?.Report($"step {s.Step}/{s.Steps}: loss {s.Loss:F3}, {s.TokensPerSecond:N0} tok/s");
                    break;
                case EvalEvent s:
                    validationCurve.Add((s.Step, s.ValidationLoss));
                    progress?.Report($"step {s.Step}: validation loss {s.ValidationLoss:F3}");
                    break;
            }
        }, limit.Token);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report($"{result.StepsDone} steps{(result.Interrupted ? " (time budget reached)" : "")}, loss {result.LastLoss:F3}");
        if (options.PlotPath is not null) LossPlot.Save(options.PlotPath, curve, validationCurve);
        return new PretrainStageResult(result, result.CheckpointFolder, curve, validationCurve, options.PlotPath);
    }
}
