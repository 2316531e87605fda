using System.Text.RegularExpressions;

namespace Loom.Serving.Feedback;

/// <summary>
/// The checks every <see cref="IFeedbackStore"/> makes before it writes, so that all stores refuse the same input with
/// the same one-line <see cref="ArgumentException"/> naming the field. A judgement must fit its kind (Pairwise: a
/// Choice and exactly two shown; Rank: a Ranking that is a permutation of the shown indices, at least two shown;
/// Rating: 1–5 on one shown; Correction: non-empty text on one shown; Thumbs: ThumbsUp on one shown), carry only its
/// kind's field, and name an item of the task it names, whose kind it has.
/// </summary>
public static partial class JudgementRules
{
    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex TaskIdPattern();

    /// <summary>Checks a task before it is saved.</summary>
    public static void CheckTask(FeedbackTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (task.Id is null || !TaskIdPattern().IsMatch(task.Id))
            throw new ArgumentException($"FeedbackTask.Id must be 1–128 letters, digits, '-' or '_', got {Quote(task.Id)}");
        CheckText(task.Name, "FeedbackTask.Name");
        if (!Enum.IsDefined(task.Kind))
            throw new ArgumentException($"FeedbackTask.Kind {(int)task.Kind} is not a JudgementKind");
        if (task.Guidelines is null)
            throw new ArgumentException("FeedbackTask.Guidelines must not be null (empty is fine)");
        if (task.Overlap < 1)
            throw new ArgumentException($"FeedbackTask.Overlap must be at least 1, got {task.Overlap}");
    }

    /// <summary>A task saved over <paramref name="stored"/> must keep its kind.</summary>
    public static void CheckTaskUpdate(FeedbackTask stored, FeedbackTask task)
    {
        if (stored.Kind != task.Kind)
            throw new ArgumentException($"FeedbackTask.Kind of task '{task.Id}' is {stored.Kind} and cannot change to {task.Kind}");
    }

    /// <summary>Checks an item before it is added (its task's existence is checked by the store).</summary>
    public static void CheckItem(FeedbackItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        CheckId(item.Id, "FeedbackItem.Id");
        CheckId(item.TaskId, "FeedbackItem.TaskId");
        CheckMessages(item.Prompt, "FeedbackItem.Prompt");
        if (item.Responses is null || item.Responses.Count == 0)
            throw new ArgumentException($"FeedbackItem.Responses of item '{item.Id}' must hold at least one response");
        CheckResponses(item.Responses, "FeedbackItem.Responses");
        if (item.Source is null)
            throw new ArgumentException("FeedbackItem.Source must not be null (empty is fine)");
    }

    /// <summary>An item of a Pairwise or Rank task needs at least two responses, or no judgement could fit it.</summary>
    public static void CheckItemFitsTask(FeedbackItem item, FeedbackTask task)
    {
        if (task.Kind is JudgementKind.Pairwise or JudgementKind.Rank && item.Responses.Count < 2)
            throw new ArgumentException($"FeedbackItem.Responses of item '{item.Id}' must hold at least 2 responses for {task.Kind} task '{task.Id}', got {item.Responses.Count}");
    }

    /// <summary>Checks an annotator before it is saved.</summary>
    public static void CheckAnnotator(Annotator annotator, string passwordHash)
    {
        ArgumentNullException.ThrowIfNull(annotator);
        CheckId(annotator.Name, "Annotator.Name");
        if (!Enum.IsDefined(annotator.Role))
            throw new ArgumentException($"Annotator.Role {(int)annotator.Role} is not an AnnotatorRole");
        if (passwordHash is null)
            throw new ArgumentException("passwordHash must not be null");
    }

    /// <summary>Checks a model version entry before it is saved.</summary>
    public static void CheckVersion(ModelVersionEntry version)
    {
        ArgumentNullException.ThrowIfNull(version);
        CheckId(version.Version, "ModelVersionEntry.Version");
        if (version.Parent is not null)
            CheckId(version.Parent, "ModelVersionEntry.Parent");
        if (version.Path is null)
            throw new ArgumentException("ModelVersionEntry.Path must not be null");
        if (version.LineageJson is null)
            throw new ArgumentException("ModelVersionEntry.LineageJson must not be null");
    }

    /// <summary>Checks the parts of a judgement that need nothing stored: ids, and that it fits its kind.</summary>
    public static void CheckJudgement(Judgement judgement)
    {
        ArgumentNullException.ThrowIfNull(judgement);
        CheckId(judgement.ItemId, "Judgement.ItemId");
        CheckId(judgement.TaskId, "Judgement.TaskId");
        CheckId(judgement.Annotator, "Judgement.Annotator");
        if (!Enum.IsDefined(judgement.Kind))
            throw new ArgumentException($"Judgement.Kind {(int)judgement.Kind} is not a JudgementKind");
        CheckMessages(judgement.Prompt, "Judgement.Prompt");
        if (judgement.Shown is null)
            throw new ArgumentException("Judgement.Shown must not be null");
        CheckResponses(judgement.Shown, "Judgement.Shown");
        int shown = judgement.Shown.Count;
        switch (judgement.Kind)
        {
            case JudgementKind.Pairwise:
                RequireShown(judgement, shown == 2, "exactly 2");
                if (judgement.Choice is not { } choice)
                    throw new ArgumentException("Judgement.Choice must be set for a Pairwise judgement");
                if (!Enum.IsDefined(choice))
                    throw new ArgumentException($"Judgement.Choice {(int)choice} is not a PairwiseChoice");
                break;
            case JudgementKind.Rank:
                RequireShown(judgement, shown >= 2, "at least 2");
                if (judgement.Ranking is not { } ranking)
                    throw new ArgumentException("Judgement.Ranking must be set for a Rank judgement");
                if (ranking.Count != shown || ranking.Any(index => index < 0 || index >= shown) || ranking.Distinct().Count() != shown)
                    throw new ArgumentException($"Judgement.Ranking must be a permutation of 0..{shown - 1}, got [{string.Join(",", ranking)}]");
                break;
            case JudgementKind.Rating:
                RequireShown(judgement, shown == 1, "exactly 1");
                if (judgement.Rating is not { } rating)
                    throw new ArgumentException("Judgement.Rating must be set for a Rating judgement");
                if (rating is < 1 or > 5)
                    throw new ArgumentException($"Judgement.Rating must be 1 to 5, got {rating}");
                break;
            case JudgementKind.Correction:
                RequireShown(judgement, shown == 1, "exactly 1");
                if (string.IsNullOrWhiteSpace(judgement.Correction))
                    throw new ArgumentException("Judgement.Correction must be non-empty text for a Correction judgement");
                CheckStorable(judgement.Correction, "Judgement.Correction");
                break;
            case JudgementKind.Thumbs:
                RequireShown(judgement, shown == 1, "exactly 1");
                if (judgement.ThumbsUp is null)
                    throw new ArgumentException("Judgement.ThumbsUp must be set for a Thumbs judgement");
                break;
        }
        RequireUnset(judgement, judgement.Choice is not null, JudgementKind.Pairwise, "Choice");
        RequireUnset(judgement, judgement.Ranking is not null, JudgementKind.Rank, "Ranking");
        RequireUnset(judgement, judgement.Rating is not null, JudgementKind.Rating, "Rating");
        RequireUnset(judgement, judgement.Correction is not null, JudgementKind.Correction, "Correction");
        RequireUnset(judgement, judgement.ThumbsUp is not null, JudgementKind.Thumbs, "ThumbsUp");
        if (judgement.Comment is not null)
            CheckStorable(judgement.Comment, "Judgement.Comment");
    }

    /// <summary>Checks a judgement against what is stored: its task and item exist, agree, and the kind is the task's.</summary>
    public static void CheckJudgementTarget(Judgement judgement, FeedbackTask? task, FeedbackItem? item)
    {
        if (task is null)
            throw new ArgumentException($"Judgement.TaskId '{judgement.TaskId}' is not a stored task");
        if (item is null)
            throw new ArgumentException($"Judgement.ItemId '{judgement.ItemId}' is not a stored item");
        if (item.TaskId != judgement.TaskId)
            throw new ArgumentException($"Judgement.TaskId '{judgement.TaskId}' does not match item '{item.Id}', which belongs to task '{item.TaskId}'");
        if (task.Kind != judgement.Kind)
            throw new ArgumentException($"Judgement.Kind {judgement.Kind} does not match task '{task.Id}', whose kind is {task.Kind}");
    }

    /// <summary>The refusal of a second judgement by one annotator on one item.</summary>
    public static ArgumentException AlreadyJudged(Judgement judgement) =>
        new($"Judgement.Annotator '{judgement.Annotator}' has already judged item '{judgement.ItemId}'");

    static void RequireShown(Judgement judgement, bool fits, string count)
    {
        if (!fits)
            throw new ArgumentException($"Judgement.Shown must hold {count} response(s) for a {judgement.Kind} judgement, got {judgement.Shown.Count}");
    }

    static void RequireUnset(Judgement judgement, bool isSet, JudgementKind owner, string field)
    {
        if (isSet && judgement.Kind != owner)
            throw new ArgumentException($"Judgement.{field} must be null for a {judgement.Kind} judgement (it belongs to {owner})");
    }

    static void CheckMessages(IReadOnlyList<FeedbackMessage>? messages, string field)
    {
        if (messages is null)
            throw new ArgumentException($"{field} must not be null");
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw new ArgumentException($"{field}[{i}] must not be null");
            CheckText(message.Role, $"{field}[{i}].Role");
            if (message.Content is null)
                throw new ArgumentException($"{field}[{i}].Content must not be null");
            CheckStorable(message.Content, $"{field}[{i}].Content");
        }
    }

    static void CheckResponses(IReadOnlyList<FeedbackResponse> responses, string field)
    {
        for (int i = 0; i < responses.Count; i++)
        {
            var response = responses[i] ?? throw new ArgumentException($"{field}[{i}] must not be null");
            if (response.Text is null)
                throw new ArgumentException($"{field}[{i}].Text must not be null");
            CheckStorable(response.Text, $"{field}[{i}].Text");
            if (response.ModelVersion is null)
                throw new ArgumentException($"{field}[{i}].ModelVersion must not be null (empty when unknown)");
            CheckStorable(response.ModelVersion, $"{field}[{i}].ModelVersion");
        }
    }

    /// <summary>Ids and names: non-empty, no control characters (they are keys in every store and appear in URLs).</summary>
    static void CheckId(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"{field} must not be empty");
        CheckStorable(value, field);
        if (value.Any(char.IsControl))
            throw new ArgumentException($"{field} {Quote(value)} must not hold control characters");
    }

    static void CheckText(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"{field} must not be empty");
        CheckStorable(value, field);
    }

    /// <summary>
    /// Text every store keeps exactly: PostgreSQL text cannot hold U+0000, and a lone surrogate half has no UTF-8
    /// form (it would come back as U+FFFD), so no store takes either and the stores behave alike.
    /// </summary>
    static void CheckStorable(string value, string field)
    {
        if (value.Contains('\0'))
            throw new ArgumentException($"{field} must not hold the NUL character (U+0000)");
        for (int i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                i++;
            else if (char.IsSurrogate(value[i]))
                throw new ArgumentException($"{field} holds a lone UTF-16 surrogate (U+{(int)value[i]:X4}) at index {i}");
        }
    }

    static string Quote(string? value) => value is null ? "null" : System.Text.Json.JsonSerializer.Serialize(value);
}
