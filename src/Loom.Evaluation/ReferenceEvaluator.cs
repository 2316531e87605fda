using Microsoft.Extensions.AI;
using Microsoft.Extensions.AI.Evaluation;

namespace Loom.Evaluation;

/// <summary>The answers a response is scored against, for <see cref="ReferenceEvaluator"/>.</summary>
public sealed class ReferenceContext(IReadOnlyList<string> references) : EvaluationContext(ContextName, string.Join("\n", references))
{
    public const string ContextName = "References (Loom)";

    public IReadOnlyList<string> References { get; } = references.Count > 0 ? references : throw new ArgumentException("ReferenceContext.References is empty", nameof(references));
}

/// <summary>
/// Loom's reference-based generation metrics (exact_match, f1, squad_f1, rouge_l, bleu, gleu) as a
/// Microsoft.Extensions.AI.Evaluation <see cref="IEvaluator"/>, so they run in that framework's reporting beside its own
/// evaluators; the references come in a <see cref="ReferenceContext"/>. Values are in [0, 1]; each metric's reason is
/// its explanation from <see cref="MetricCatalog"/>.
/// </summary>
public sealed class ReferenceEvaluator : IEvaluator
{
    public IReadOnlyCollection<string> EvaluationMetricNames => [.. MetricCatalog.OfKind(EvalTaskKind.Generate).Where(m => m != "schema_valid")];

    public ValueTask<EvaluationResult> EvaluateAsync(IEnumerable<ChatMessage> messages, ChatResponse modelResponse, ChatConfiguration? chatConfiguration = null,
        IEnumerable<EvaluationContext>? additionalContext = null, CancellationToken cancellationToken = default)
    {
        var context = additionalContext?.OfType<ReferenceContext>().FirstOrDefault();
        var metrics = new List<EvaluationMetric>();
        if (context is null)
        {
            foreach (string name in EvaluationMetricNames)
            {
                var metric = new NumericMetric(name);
                metric.AddDiagnostics(EvaluationDiagnostic.Error($"no {nameof(ReferenceContext)} in additionalContext"));
                metrics.Add(metric);
            }
            return ValueTask.FromResult(new EvaluationResult(metrics));
        }
        foreach (var (name, value) in EvalTasks.ScoreAnswer(modelResponse.Text, context.References))
            metrics.Add(new NumericMetric(name, value, MetricCatalog.Get(name).Explanation));
        return ValueTask.FromResult(new EvaluationResult(metrics));
    }
}
