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
    /// <summary>
    /// The task traffic items go to, created on first use (thumbs, overlap 1); default "traffic". Ratings and corrections
    /// go to the tasks ID-rating and ID-correction (a store keeps one kind per task), on a copy of the item.
    /// </summary>
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
/// rating or correction on a response id into a <see cref="Judgement"/> of what was shown. A store keeps one judgement kind
/// per task, so thumbs are judgements of the traffic item itself, and a rating or correction is a judgement of a copy of
/// it (id RESPONSE_ID#rating or RESPONSE_ID#correction) in the task <see cref="RatingTaskId"/> or
/// <see cref="CorrectionTaskId"/>; each person gives one judgement per response. One instance is shared by every
/// <see cref="FeedbackCaptureChatClient"/> over the same store (all model versions of a server). Thread-safe.
/// </summary>
public sealed class TrafficFeedback(IFeedbackStore store, TrafficFeedbackOptions? options = null)
{
    /// <summary>The source of every recorded traffic item.</summary>
    public const string Source = "traffic";

    readonly SemaphoreSlim taskGate = new(1);
    readonly HashSet<string> readyTasks = [];
    long recorded, recordFailures;

    public IFeedbackStore Store { get; } = store;

    public string TaskId { get; } = options?.TaskId ?? "traffic";

    /// <summary>The task of ratings on traffic (TaskId-rating).</summary>
    public string RatingTaskId => TaskId + "-rating";

    /// <summary>The task of corrections of traffic (TaskId-correction).</summary>
    public string CorrectionTaskId => TaskId + "-correction";

    /// <summary>Responses recorded.</summary>
    public long Recorded => Interlocked.Read(ref recorded);

    /// <summary>Responses that could not be recorded (the store failed; the user still got the answer).</summary>
    public long RecordFailures => Interlocked.Read(ref recordFailures);

    ILogger? Logger { get; } = options?.Logger;

    /// <summary>Records one served response as an item of the traffic task (committed before returning).</summary>
    public async Task RecordAsync(string responseId, IEnumerable<FeedbackMessage> prompt, string text, string modelVersion, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(responseId);
        await EnsureTaskAsync(TaskId, JudgementKind.Thumbs, cancellationToken).ConfigureAwait(false);
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
        if (item is null || item.TaskId != TaskId) throw new UnknownResponseException(responseId);
        if (await JudgedAsync(responseId, submission.Annotator, cancellationToken).ConfigureAwait(false))
            throw new DuplicateJudgementException(responseId, submission.Annotator);
        var kind = submission.ThumbsUp is not null ? JudgementKind.Thumbs : submission.Rating is not null ? JudgementKind.Rating : JudgementKind.Correction;
        if (kind != JudgementKind.Thumbs)
        {
            string task = kind == JudgementKind.Rating ? RatingTaskId : CorrectionTaskId;
            await EnsureTaskAsync(task, kind, cancellationToken).ConfigureAwait(false);
            item = item with { Id = CopyId(responseId, kind), TaskId = task };
            await Store.AddItemsAsync([item], cancellationToken).ConfigureAwait(false);
        }
        var judgement = new Judgement
        {
            ItemId = item.Id,
            TaskId = item.TaskId,
            Annotator = submission.Annotator,
            Kind = kind,
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
            if (await JudgedAsync(responseId, submission.Annotator, CancellationToken.None).ConfigureAwait(false))
                throw new DuplicateJudgementException(responseId, submission.Annotator);
            throw;
        }
    }

    /// <summary>The id of the copy of a traffic item that a rating or correction judges.</summary>
    public static string CopyId(string responseId, JudgementKind kind) => kind switch
    {
        JudgementKind.Rating => responseId + "#rating",
        JudgementKind.Correction => responseId + "#correction",
        _ => responseId,
    };

    /// <summary>Whether the annotator has judged the response, in any of the three kinds.</summary>
    async Task<bool> JudgedAsync(string responseId, string annotator, CancellationToken cancellationToken)
    {
        foreach (var kind in new[] { JudgementKind.Thumbs, JudgementKind.Rating, JudgementKind.Correction })
            if ((await Store.ListJudgementsAsync(new JudgementQuery { ItemId = CopyId(responseId, kind), Annotator = annotator }, cancellationToken)
                    .ConfigureAwait(false)).Count > 0)
                return true;
        return false;
    }

    async Task EnsureTaskAsync(string id, JudgementKind kind, CancellationToken cancellationToken)
    {
        lock (readyTasks)
            if (readyTasks.Contains(id)) return;
        await taskGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await Store.GetTaskAsync(id, cancellationToken).ConfigureAwait(false) is null)
                await Store.SaveTaskAsync(new FeedbackTask
                {
                    Id = id,
                    Name = kind switch
                    {
                        JudgementKind.Rating => "Live traffic: ratings",
                        JudgementKind.Correction => "Live traffic: corrections",
                        _ => "Live traffic",
                    },
                    Kind = kind,
                    Guidelines = "Responses the server gave, judged by the people who got them.",
                    Overlap = 1,
                    Created = DateTimeOffset.UtcNow,
                }, cancellationToken).ConfigureAwait(false);
            lock (readyTasks) readyTasks.Add(id);
        }
        finally { taskGate.Release(); }
    }
}
