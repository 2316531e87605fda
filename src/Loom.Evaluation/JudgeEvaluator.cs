using Microsoft.Extensions.AI;
using Microsoft.Extensions.AI.Evaluation;

namespace Loom.Evaluation;

/// <summary>The retrieved text an answer should rest on, for <see cref="JudgeEvaluator"/>'s faithfulness.</summary>
public sealed class GroundingContext(string context) : EvaluationContext(ContextName, context)
{
    public const string ContextName = "Grounding (Loom)";

    public string Text { get; } = context;
}

/// <summary>
/// Loom's judged RAG metrics as a Microsoft.Extensions.AI.Evaluation <see cref="IEvaluator"/>: answer_relevance (the
/// question is the last user message) and, given a <see cref="GroundingContext"/>, faithfulness, both asked of the
/// judge the framework passes in <see cref="ChatConfiguration.ChatClient"/> — any IChatClient, a Loom model included,
/// with <see cref="ChatJudge"/>'s fixed prompts. Values are in [0, 1]; each metric's reason is its explanation.
/// </summary>
public sealed class JudgeEvaluator : IEvaluator
{
    public IReadOnlyCollection<string> EvaluationMetricNames => ["answer_relevance", "faithfulness"];

    public async ValueTask<EvaluationResult> EvaluateAsync(IEnumerable<ChatMessage> messages, ChatResponse modelResponse, ChatConfiguration? chatConfiguration = null,
        IEnumerable<EvaluationContext>? additionalContext = null, CancellationToken cancellationToken = default)
    {
        var relevance = new NumericMetric("answer_relevance");
        var faithfulness = new NumericMetric("faithfulness");
        if (chatConfiguration is null)
        {
            foreach (var metric in new[] { relevance, faithfulness })
                metric.AddDiagnostics(EvaluationDiagnostic.Error("a judge is needed: pass a ChatConfiguration whose ChatClient answers the judge's prompts"));
            return new EvaluationResult(relevance, faithfulness);
        }
        var judge = chatConfiguration.ChatClient;
        string question = messages.LastOrDefault(m => m.Role == ChatRole.User)?.Text ?? "";
        relevance.Value = await ChatJudge.AnswerRelevanceAsync(judge, question, modelResponse.Text, cancellationToken).ConfigureAwait(false);
        relevance.Reason = MetricCatalog.Get("answer_relevance").Explanation;
        if (additionalContext?.OfType<GroundingContext>().FirstOrDefault() is { } grounding)
        {
            faithfulness.Value = await ChatJudge.FaithfulnessAsync(judge, grounding.Text, modelResponse.Text, cancellationToken).ConfigureAwait(false);
            faithfulness.Reason = MetricCatalog.Get("faithfulness").Explanation;
        }
        else
        {
            faithfulness.AddDiagnostics(EvaluationDiagnostic.Error($"no {nameof(GroundingContext)} in additionalContext"));
        }
        return new EvaluationResult(relevance, faithfulness);
    }
}
