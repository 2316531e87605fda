using Loom.IO;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving.Feedback;

/// <summary>A model that writes responses to judge, and the version name its responses carry.</summary>
public sealed record FeedbackModel(IChatClient Client, string Version);

/// <summary>How items are generated for a task; null means the default.</summary>
public sealed record QueueOptions
{
    /// <summary>
    /// Responses per prompt (default: 2 for pairwise; for rank the number of models, at least 2; for rating,
    /// correction and thumbs one per model, each in its own item). Pairwise items always hold two.
    /// </summary>
    public int? Responses { get; init; }
    /// <summary>Tokens each response may hold (default 128).</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Sampling temperature (default 0.8, so two samples of one model differ).</summary>
    public float? Temperature { get; init; }
    /// <summary>Seed of response r (0-based within a prompt) is Seed + r (default 0), so a queue is reproducible.</summary>
    public int? Seed { get; init; }
}

/// <summary>
/// Fills a task's queue from a prompt dataset: each line's <c>prompt</c> (a string or a list of messages, as
/// <see cref="FeedbackDatasets.ReadPrompts"/> reads it) gets responses from the models, in turn (response r from
/// model r mod M), and becomes an item with id TASK:LINE (TASK:LINE:R when each response is its own item), source
/// FILE:LINE, and each response's model version.
/// </summary>
public static class FeedbackQueue
{
    public static async Task<List<FeedbackItem>> BuildAsync(FeedbackTask task, string promptsPath, IReadOnlyList<FeedbackModel> models, QueueOptions? options, CancellationToken cancellationToken)
    {
        if (models.Count == 0) throw new ArgumentException("at least one model is needed to write responses", nameof(models));
        if (task.Kind == JudgementKind.Pairwise && models.Count > 2)
            throw new ArgumentException($"a pairwise task compares two responses: give one model (two samples) or two, not {models.Count}", nameof(models));
        int maxTokens = options?.MaxTokens ?? 128;
        if (maxTokens < 1) throw new ArgumentException($"QueueOptions.MaxTokens must be positive (got {maxTokens})", nameof(options));
        bool oneResponsePerItem = task.Kind is JudgementKind.Rating or JudgementKind.Correction or JudgementKind.Thumbs;
        int responses = task.Kind switch
        {
            JudgementKind.Pairwise => 2,
            JudgementKind.Rank => options?.Responses ?? Math.Max(2, models.Count),
            _ => options?.Responses ?? models.Count,
        };
        if (task.Kind == JudgementKind.Pairwise && options?.Responses is { } asked && asked != 2)
            throw new ArgumentException($"QueueOptions.Responses must be 2 for a pairwise task (got {asked})", nameof(options));
        if (responses < (task.Kind == JudgementKind.Rank ? 2 : 1))
            throw new ArgumentException($"QueueOptions.Responses must be at least {(task.Kind == JudgementKind.Rank ? 2 : 1)} for a {task.Kind} task (got {responses})", nameof(options));

        var skipped = new List<string>();
        var prompts = FeedbackDatasets.ReadPrompts(promptsPath, skipped, strict: true);
        // ReadPrompts gives one prompt per non-blank line in strict mode; number them as the file does.
        var lineNumbers = Utf8Lines.Read(promptsPath).Select((line, i) => (line, number: i + 1)).Where(p => !string.IsNullOrWhiteSpace(p.line)).Select(p => p.number).ToList();
        var items = new List<FeedbackItem>();
        for (int p = 0; p < prompts.Count; p++)
        {
            var prompt = prompts[p].Select(t => new FeedbackMessage(t.Role, t.Content)).ToList();
            var messages = prompts[p].Select(t => new ChatMessage(new ChatRole(t.Role), t.Content)).ToList();
            var written = new List<FeedbackResponse>();
            for (int r = 0; r < responses; r++)
            {
                var model = models[r % models.Count];
                var chatOptions = new ChatOptions { MaxOutputTokens = maxTokens, Temperature = options?.Temperature ?? 0.8f, Seed = (options?.Seed ?? 0) + r };
                var response = await model.Client.GetResponseAsync(messages, chatOptions, cancellationToken).ConfigureAwait(false);
                written.Add(new FeedbackResponse(response.Text, model.Version));
            }
            string id = $"{task.Id}:{lineNumbers[p]}";
            var created = DateTimeOffset.UtcNow;
            if (oneResponsePerItem)
            {
                for (int r = 0; r < written.Count; r++)
                    items.Add(new FeedbackItem
                    {
                        Id = written.Count == 1 ? id : $"{id}:{r}",
                        TaskId = task.Id,
                        Prompt = prompt,
                        Responses = [written[r]],
                        Source = $"{promptsPath}:{lineNumbers[p]}",
                        Created = created,
                    });
            }
            else
            {
                items.Add(new FeedbackItem { Id = id, TaskId = task.Id, Prompt = prompt, Responses = written, Source = $"{promptsPath}:{lineNumbers[p]}", Created = created });
            }
        }
        return items;
    }
}
