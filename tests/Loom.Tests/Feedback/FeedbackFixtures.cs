using Loom.Serving.Feedback;

namespace Loom.Tests.Feedback;

/// <summary>Items and judgements for the agreement and export tests, built the way the studio records them.</summary>
internal static class FeedbackFixtures
{
    public static FeedbackItem Item(string id, string taskId, string prompt, params (string Text, string Version)[] responses) => new()
    {
        Id = id,
        TaskId = taskId,
        Prompt = [new FeedbackMessage("user", prompt)],
        Responses = [.. responses.Select(r => new FeedbackResponse(r.Text, r.Version))],
        Source = "test",
    };

    /// <summary>A judgement of <paramref name="item"/> as shown in <paramref name="shownOrder"/> (item indices, in the order shown).</summary>
    public static Judgement Judge(long id, FeedbackItem item, string annotator, JudgementKind kind, int[] shownOrder,
        PairwiseChoice? choice = null, int[]? ranking = null, int? rating = null, string? correction = null, bool? thumbsUp = null) => new()
        {
            Id = id,
            ItemId = item.Id,
            TaskId = item.TaskId,
            Annotator = annotator,
            Kind = kind,
            Prompt = item.Prompt,
            Shown = [.. shownOrder.Select(i => item.Responses[i])],
            Choice = choice,
            Ranking = ranking,
            Rating = rating,
            Correction = correction,
            ThumbsUp = thumbsUp,
        };

    public static FeedbackTask Task(string id, JudgementKind kind, int overlap = 2) => new() { Id = id, Name = id, Kind = kind, Overlap = overlap };
}
