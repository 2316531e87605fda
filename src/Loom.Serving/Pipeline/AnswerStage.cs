using Loom.Evaluation;
using Loom.Models;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving.Pipeline;

/// <summary>A held-out prompt and the reference answer it is scored against.</summary>
public sealed record HeldOutItem(string Question, string Reference);

/// <summary>How held-out prompts are answered; null means the default.</summary>
public sealed record AnswerStageOptions
{
    /// <summary>Tokens generated per answer (greedy); null: 40.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>The threads the model runs on; null: <see cref="Loom.Tensors.ComputeContext.Default"/>.</summary>
    public Loom.Tensors.ComputeContext? Compute { get; init; }
}

/// <summary>The answers and their scores against the references.</summary>
/// <param name="Answers">One answer per item, in order.</param>
/// <param name="RougeL">Mean ROUGE-L F against the references.</param>
/// <param name="TokenF1">Mean token F1 against the references.</param>
/// <param name="TokensPerAnswer">Mean tokens generated per answer.</param>
public sealed record AnswerStageResult(IReadOnlyList<string> Answers, double RougeL, double TokenF1, double TokensPerAnswer);

/// <summary>Evaluation: the model answers held-out prompts greedily, scored with ROUGE-L and token F1.</summary>
public static class AnswerStage
{
    public static async Task<AnswerStageResult> RunAsync(Transformer model, ITokenizer tokenizer, IReadOnlyList<HeldOutItem> items, AnswerStageOptions? options = null,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        int maxTokens = options?.MaxTokens ?? 40;
        if (maxTokens < 1) throw new ArgumentException($"AnswerStageOptions.MaxTokens must be positive, got {maxTokens}");
        await using var loomModel = LoomModel.Create("quickstart", model, tokenizer, new LoomModelOptions { Compute = options?.Compute });
        using var chat = new LoomChatClient(loomModel.Engine);
        var answers = new List<string>(items.Count);
        long generated = 0;
        foreach (var item in items)
        {
            var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, item.Question)],
                new ChatOptions { Temperature = 0, MaxOutputTokens = maxTokens }, cancellationToken);
            answers.Add(response.Text);
            generated += response.Usage?.OutputTokenCount ?? 0;
        }
        double rouge = items.Count == 0 ? 0 : answers.Select((a, i) => TextMetrics.RougeL(a, items[i].Reference)).Average();
        double f1 = items.Count == 0 ? 0 : answers.Select((a, i) => TextMetrics.TokenF1(a, items[i].Reference)).Average();
        double perAnswer = generated / (double)Math.Max(1, items.Count);
        progress?.Report($"{items.Count} answers, {perAnswer:F1} tokens each: ROUGE-L {rouge:F3}, token F1 {f1:F3}");
        return new AnswerStageResult(answers, rouge, f1, perAnswer);
    }
}
