using Microsoft.Extensions.Logging;

namespace Loom.Serving.Feedback;

/// <summary>What a person says about a response they got: exactly one of <see cref="ThumbsUp"/>, <see cref="Rating"/> and <see cref="Correction"/>.</summary>
public sealed record FeedbackSubmission
{
    /// <summary>Who says it (a user name, or the API key's short hash); one judgement per annotator and response.</summary>
    public required string Annotator { get; init; }
    /// <summary>Thumbs up (true) or down (false).</summary>
    public bool? ThumbsUp { get; init; }
    /// <summary>A rating from 1 (worst) to 5 (best).</summary>
    public int? Rating { get; init; }
    /// <summary>The answer as it should have been.</summary>
    public string? Correction { get; init; }
    /// <summary>Free text kept beside the judgement.</summary>
    public string? Comment { get; init; }
}

/// <summary>How served traffic is recorded; null means the default.</summary>
public sealed record TrafficFeedbackOptions
{
    /// <summary>The task traffic items go to, created on first use (thumbs, overlap 1); default "traffic".</summary>
    public string? TaskId { get; init; }
    /// <summary>Where a response that could not be recorded is reported; null logs nothing (the failure is still counted).</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>A response id that no recorded response has.</summary>
public sealed class UnknownResponseException(string responseId)
    : KeyNotFoundException($"no recorded response has the id '{responseId}'")
{
    public string ResponseId { get; } = responseId;
}

/// <summary>The annotator has already judged this response.</summary>
public sealed class DuplicateJudgementException(string responseId, string annotator)
    : InvalidOperationException($"'{annotator}' has already given feedback on response '{responseId}'")
{
    public string ResponseId { get; } = responseId;
    public string Annotator { get; } = annotator;
}

/// <summary>
/// Served responses as feedback items, and the feedback people give on them: every response becomes a
/// <see cref="FeedbackItem"/> of the traffic task (id = the response id, prompt = the messages as given, one response:
/// the final text and the model version that wrote it, source "traffic"), and <see cref="SubmitAsync"/> turns a thumbs,
/// rating or correction on a response id into a <see cref="Judgement"/> of what was shown. One instance is shared by every
/// <see cref="FeedbackCaptureChatClient"/> over the same store (all model versions of a server). Thread-safe.
/// </summary>
public sealed class TrafficFeedback(IFeedbackStore store, TrafficFeedbackOptions? options = null)
{
    /// <summary>The source of every recorded traffic item.</summary>
    public const string Source = "traffic";

    readonly SemaphoreSlim taskGate = new(1);
    volatile bool taskReady;
    long recorded, recordFailures;

    public IFeedbackStore Store { get; } = store;

    public string TaskId { get; } = options?.TaskId ?? "traffic";

    /// <summary>Responses recorded.</summary>
    public long Recorded => Interlocked.Read(ref recorded);

    /// <summary>Responses that could not be recorded (the store failed; the user still got the answer).</summary>
    public long RecordFailures => Interlocked.Read(ref recordFailures);

    ILogger? Logger { get; } = options?.Logger;

    /// <summary>Records one served response as an item of the traffic task (committed before returning).</summary>
    public async Task RecordAsync(string responseId, IEnumerable<FeedbackMessage> prompt, string text, string modelVersion, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(responseId);
        await EnsureTaskAsync(cancellationToken).ConfigureAwait(false);
        await Store.AddItemsAsync([new FeedbackItem
        {
            Id = responseId,
            TaskId = TaskId,
            Prompt = [.. prompt],
            Responses = [new FeedbackResponse(text, modelVersion)],
            Source = Source,
            Created = DateTimeOffset.UtcNow,
        }], cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref recorded);
    }

    /// <summary>Counts (and logs) a response that could not be recorded.</summary>
    internal void RecordFailed(string responseId, Exception error)
    {
        Interlocked.Increment(ref recordFailures);
        Logger?.LogError(error, "response {ResponseId} was answered but not recorded for feedback: {Message}", responseId, error.Message);
    }

    /// <summary>
    /// Stores a person's feedback on a recorded response and gives the judgement's id. Throws
    /// <see cref="UnknownResponseException"/> for an id no recorded response has, <see cref="DuplicateJudgementException"/>
    /// when the annotator already judged it, and an <see cref="ArgumentException"/> naming the field of a bad submission.
    /// </summary>
    public async Task<long> SubmitAsync(string responseId, FeedbackSubmission submission, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        if (string.IsNullOrWhiteSpace(responseId)) throw new ArgumentException("the response id must not be empty", nameof(responseId));
        if (string.IsNullOrWhiteSpace(submission.Annotator)) throw new ArgumentException("FeedbackSubmission.Annotator must not be empty", nameof(submission));
        int given = (submission.ThumbsUp is null ? 0 : 1) + (submission.Rating is null ? 0 : 1) + (submission.Correction is null ? 0 : 1);
        if (given != 1)
            throw new ArgumentException($"FeedbackSubmission needs exactly one of ThumbsUp, Rating and Correction, got {given}", nameof(submission));
        if (submission.Rating is < 1 or > 5)
            throw new ArgumentException($"FeedbackSubmission.Rating must be from 1 to 5, got {submission.Rating}", nameof(submission));
        if (submission.Correction is { } correction && string.IsNullOrWhiteSpace(correction))
            throw new ArgumentException("FeedbackSubmission.Correction must not be empty", nameof(submission));

        var item = await Store.GetItemAsync(responseId, cancellationToken).ConfigureAwait(false);
        if (item is null || item.Source != Source) throw new UnknownResponseException(responseId);
        if (await JudgedAsync(item, submission.Annotator, cancellationToken).ConfigureAwait(false))
            throw new DuplicateJudgementException(responseId, submission.Annotator);
        var judgement = new Judgement
        {
            ItemId = item.Id,
            TaskId = item.TaskId,
            Annotator = submission.Annotator,
            Kind = submission.ThumbsUp is not null ? JudgementKind.Thumbs : submission.Rating is not null ? JudgementKind.Rating : JudgementKind.Correction,
            At = DateTimeOffset.UtcNow,
            Prompt = item.Prompt,
            Shown = item.Responses,
            ThumbsUp = submission.ThumbsUp,
            Rating = submission.Rating,
            Correction = submission.Correction,
            Comment = submission.Comment,
        };
        try
        {
            return await Store.SubmitAsync(judgement, cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException)
        {
            // Two submissions of one annotator raced past the check above; the store kept the first.
            if (await JudgedAsync(item, submission.Annotator, CancellationToken.None).ConfigureAwait(false))
                throw new DuplicateJudgementException(responseId, submission.Annotator);
            throw;
        }
    }

    async Task<bool> JudgedAsync(FeedbackItem item, string annotator, CancellationToken cancellationToken) =>
        (await Store.ListJudgementsAsync(new JudgementQuery { ItemId = item.Id, Annotator = annotator }, cancellationToken).ConfigureAwait(false)).Count > 0;

    async Task EnsureTaskAsync(CancellationToken cancellationToken)
    {
        if (taskReady) return;
        await taskGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (taskReady) return;
            if (await Store.GetTaskAsync(TaskId, cancellationToken).ConfigureAwait(false) is null)
                await Store.SaveTaskAsync(new FeedbackTask
                {
                    Id = TaskId,
                    Name = "Live traffic",
                    Kind = JudgementKind.Thumbs,
                    Guidelines = "Responses the server gave; judge whether each answers its prompt well.",
                    Overlap = 1,
                    Created = DateTimeOffset.UtcNow,
                }, cancellationToken).ConfigureAwait(false);
            taskReady = true;
        }
        finally { taskGate.Release(); }
    }
}
