namespace Loom.Serving.Feedback;

/// <summary>What an annotator gives on an item: a pairwise verdict, a ranking, a 1–5 rating, a correction, or thumbs.</summary>
public enum JudgementKind { Pairwise, Rank, Rating, Correction, Thumbs }

/// <summary>A pairwise verdict on two shown responses, in the order they were shown.</summary>
public enum PairwiseChoice { First, Second, Tie, BothBad }

/// <summary>Owners create tasks, see agreement and every judgement, and export; annotators judge and see only their own.</summary>
public enum AnnotatorRole { Owner, Annotator }

/// <summary>A person (or program) who judges.</summary>
public sealed record Annotator(string Name, AnnotatorRole Role);

/// <summary>One turn of a prompt as shown: role ("system", "user", "assistant") and text.</summary>
public sealed record FeedbackMessage(string Role, string Content);

/// <summary>A response as shown, with the model version that wrote it.</summary>
public sealed record FeedbackResponse(string Text, string ModelVersion);

/// <summary>A queue of items to judge, all of one kind.</summary>
public sealed record FeedbackTask
{
    /// <summary>Short stable id (letters, digits, '-', '_').</summary>
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required JudgementKind Kind { get; init; }
    /// <summary>Shown beside every item (plain text or Markdown shown as text).</summary>
    public string Guidelines { get; init; } = "";
    /// <summary>For ratings: what each score means, one line per score from 1 to 5.</summary>
    public string? Rubric { get; init; }
    /// <summary>Judgements each item needs from distinct annotators before it leaves the queue.</summary>
    public int Overlap { get; init; } = 1;
    public DateTimeOffset Created { get; init; }
}

/// <summary>A prompt and the responses to judge on it.</summary>
public sealed record FeedbackItem
{
    /// <summary>Unique id (a dataset item's id, or a served response's id for traffic).</summary>
    public required string Id { get; init; }
    public required string TaskId { get; init; }
    public required IReadOnlyList<FeedbackMessage> Prompt { get; init; }
    public required IReadOnlyList<FeedbackResponse> Responses { get; init; }
    /// <summary>Where it came from: "FILE:LINE" of a prompt dataset, or "traffic".</summary>
    public string Source { get; init; } = "";
    public DateTimeOffset Created { get; init; }
}

/// <summary>
/// One annotator's judgement of one item. It keeps what was shown (the prompt, and the responses in the order shown,
/// with their model versions), so it stays meaningful when the item or the models change. Exactly the field its
/// <see cref="Kind"/> needs is set: Choice (pairwise, two shown), Ranking (indices into Shown, best first, a permutation),
/// Rating (1–5), Correction (non-empty text, Shown holds the corrected response), ThumbsUp.
/// </summary>
public sealed record Judgement
{
    /// <summary>Assigned by the store, increasing; 0 before it is stored.</summary>
    public long Id { get; init; }
    public required string ItemId { get; init; }
    public required string TaskId { get; init; }
    public required string Annotator { get; init; }
    public required JudgementKind Kind { get; init; }
    public DateTimeOffset At { get; init; }
    public required IReadOnlyList<FeedbackMessage> Prompt { get; init; }
    public required IReadOnlyList<FeedbackResponse> Shown { get; init; }
    public PairwiseChoice? Choice { get; init; }
    public IReadOnlyList<int>? Ranking { get; init; }
    public int? Rating { get; init; }
    public string? Correction { get; init; }
    public bool? ThumbsUp { get; init; }
    public string? Comment { get; init; }
}

/// <summary>Which judgements to list; null fields do not filter. Results come in id order.</summary>
public sealed record JudgementQuery
{
    public string? TaskId { get; init; }
    public string? ItemId { get; init; }
    public string? Annotator { get; init; }
    /// <summary>Only judgements with a larger id (the feedback since a version was trained).</summary>
    public long AfterId { get; init; }
}

/// <summary>A model version known to the feedback store: its name, its parent, where it lives, and its lineage as JSON.</summary>
public sealed record ModelVersionEntry(string Version, string? Parent, string Path, DateTimeOffset Created, string LineageJson);
