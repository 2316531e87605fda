namespace Loom.Serving.Feedback;

/// <summary>
/// Where tasks, items, judgements, annotators and model versions live. SQLite by default, PostgreSQL for many servers;
/// every implementation runs the same contract tests (tests/Loom.Tests/Feedback/FeedbackStoreContract.cs). A judgement
/// is committed durably before <see cref="SubmitAsync"/> returns, so an acknowledged judgement survives a crash.
/// </summary>
public interface IFeedbackStore : IDisposable
{
    /// <summary>Creates the task, or replaces its name, guidelines, rubric and overlap when the id exists (its kind must match).</summary>
    Task SaveTaskAsync(FeedbackTask task, CancellationToken cancellationToken);

    Task<FeedbackTask?> GetTaskAsync(string id, CancellationToken cancellationToken);

    Task<IReadOnlyList<FeedbackTask>> ListTasksAsync(CancellationToken cancellationToken);

    /// <summary>Adds items in one transaction; an item whose id is already stored is left as it is. Returns how many were new.</summary>
    Task<int> AddItemsAsync(IReadOnlyList<FeedbackItem> items, CancellationToken cancellationToken);

    Task<FeedbackItem?> GetItemAsync(string id, CancellationToken cancellationToken);

    /// <summary>The task's items, oldest first.</summary>
    Task<IReadOnlyList<FeedbackItem>> ListItemsAsync(string taskId, CancellationToken cancellationToken);

    /// <summary>
    /// The oldest item of the task that this annotator has not judged and that has fewer judgements than the task's
    /// overlap; null when the annotator's queue is empty.
    /// </summary>
    Task<FeedbackItem?> NextItemAsync(string taskId, string annotator, CancellationToken cancellationToken);

    /// <summary>
    /// Validates and stores a judgement (committed before returning) and gives its id. Refused with an
    /// <see cref="ArgumentException"/> naming the field when it does not fit its kind, or when the annotator has
    /// already judged the item.
    /// </summary>
    Task<long> SubmitAsync(Judgement judgement, CancellationToken cancellationToken);

    Task<IReadOnlyList<Judgement>> ListJudgementsAsync(JudgementQuery query, CancellationToken cancellationToken);

    /// <summary>Creates or updates an annotator and the hash of their password (see the studio's password hasher).</summary>
    Task SaveAnnotatorAsync(Annotator annotator, string passwordHash, CancellationToken cancellationToken);

    /// <summary>The annotator and their password hash; null when unknown.</summary>
    Task<(Annotator Annotator, string PasswordHash)?> GetAnnotatorAsync(string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<Annotator>> ListAnnotatorsAsync(CancellationToken cancellationToken);

    /// <summary>Records a model version (replaces the entry with the same name).</summary>
    Task SaveVersionAsync(ModelVersionEntry version, CancellationToken cancellationToken);

    Task<IReadOnlyList<ModelVersionEntry>> ListVersionsAsync(CancellationToken cancellationToken);
}
