using System.Globalization;

namespace Loom.Serving.Feedback;

/// <summary>A judgement read in its item's terms: the item, where each shown response sits among the item's responses, and its labels.</summary>
public sealed record LabelledJudgement(Judgement Judgement, FeedbackItem Item, IReadOnlyList<int> ItemIndexOfShown, IReadOnlyList<(string Unit, string Label)> Units);

/// <summary>
/// Maps judgements back to their items. The studio shows an item's responses in a random order per annotator, so
/// a judgement's <see cref="Judgement.Choice"/> and <see cref="Judgement.Ranking"/> refer to its own
/// <see cref="Judgement.Shown"/> order; before two annotators can be compared, each shown response is matched to the
/// item response with the same text and model version (the first one not matched yet, when two are identical).
/// </summary>
public static class JudgementLabels
{
    /// <summary>The item index of each shown response; null when one of them is not among the item's responses.</summary>
    public static int[]? ItemIndexOfShown(FeedbackItem item, Judgement judgement)
    {
        var used = new bool[item.Responses.Count];
        var map = new int[judgement.Shown.Count];
        for (int s = 0; s < judgement.Shown.Count; s++)
        {
            var shown = judgement.Shown[s];
            int found = -1;
            for (int r = 0; r < item.Responses.Count && found < 0; r++)
                if (!used[r] && item.Responses[r].Text == shown.Text && item.Responses[r].ModelVersion == shown.ModelVersion) found = r;
            if (found < 0) return null;
            used[found] = true;
            map[s] = found;
        }
        return map;
    }

    /// <summary>
    /// The items by id, with an item rebuilt from the first judgement of each id missing from <paramref name="items"/>
    /// (its prompt and the responses it showed), so judgements whose item is gone still count.
    /// </summary>
    public static Dictionary<string, FeedbackItem> ItemsById(IReadOnlyList<FeedbackItem> items, IEnumerable<Judgement> judgements)
    {
        var byId = new Dictionary<string, FeedbackItem>(StringComparer.Ordinal);
        foreach (var item in items) byId.TryAdd(item.Id, item);
        foreach (var judgement in judgements.OrderBy(j => j.Id))
            byId.TryAdd(judgement.ItemId, new FeedbackItem
            {
                Id = judgement.ItemId,
                TaskId = judgement.TaskId,
                Prompt = judgement.Prompt,
                Responses = judgement.Shown,
                Created = judgement.At,
            });
        return byId;
    }

    /// <summary>
    /// The task's judgements of its kind in item terms, in id order, with the count of those left out because their
    /// shown responses do not match the item or the field their kind needs is missing. Units and labels per kind:
    /// pairwise: unit ITEM#A-B (the item indices of the two shown responses, A &lt; B), label the item index of the one
    /// that won, "tie" or "both-bad"; thumbs, rating,
    /// correction: unit ITEM#R (R the item index of the judged response), label "up"/"down", the score, or the
    /// trimmed corrected text; rank: one unit ITEM#A-B per pair A &lt; B of ranked item responses, label the index of
    /// the one ranked higher.
    /// </summary>
    public static (List<LabelledJudgement> Labels, int Unmatched) ForTask(FeedbackTask task, IReadOnlyList<FeedbackItem> items, IReadOnlyList<Judgement> judgements)
    {
        var ofTask = judgements.Where(j => j.TaskId == task.Id && j.Kind == task.Kind).OrderBy(j => j.Id).ToList();
        var byId = ItemsById(items, ofTask);
        var labels = new List<LabelledJudgement>();
        int unmatched = 0;
        foreach (var judgement in ofTask)
        {
            if (Label(byId[judgement.ItemId], judgement) is { } labelled) labels.Add(labelled);
            else unmatched++;
        }
        return (labels, unmatched);
    }

    /// <summary>The judgement in its item's terms (units and labels as in <see cref="ForTask"/>); null when its shown responses do not match the item or the field its kind needs is missing.</summary>
    public static LabelledJudgement? Label(FeedbackItem item, Judgement judgement)
    {
        var map = ItemIndexOfShown(item, judgement);
        var units = map is null ? null : Units(item.Id, judgement, map);
        return units is null ? null : new LabelledJudgement(judgement, item, map!, units);
    }

    static List<(string, string)>? Units(string itemId, Judgement judgement, int[] map)
    {
        switch (judgement.Kind)
        {
            case JudgementKind.Pairwise when judgement.Choice is { } choice && map.Length == 2:
                string label = choice switch
                {
                    PairwiseChoice.First => map[0].ToString(CultureInfo.InvariantCulture),
                    PairwiseChoice.Second => map[1].ToString(CultureInfo.InvariantCulture),
                    PairwiseChoice.Tie => "tie",
                    _ => "both-bad",
                };
                return [($"{itemId}#{Math.Min(map[0], map[1])}-{Math.Max(map[0], map[1])}", label)];
            case JudgementKind.Thumbs when judgement.ThumbsUp is { } up && map.Length >= 1:
                return [($"{itemId}#{map[0]}", up ? "up" : "down")];
            case JudgementKind.Rating when judgement.Rating is { } rating && map.Length >= 1:
                return [($"{itemId}#{map[0]}", rating.ToString(CultureInfo.InvariantCulture))];
            case JudgementKind.Correction when !string.IsNullOrWhiteSpace(judgement.Correction) && map.Length >= 1:
                return [($"{itemId}#{map[0]}", judgement.Correction.Trim())];
            case JudgementKind.Rank when judgement.Ranking is { Count: >= 2 } ranking && ranking.All(r => r >= 0 && r < map.Length):
                var ranked = ranking.Select(r => map[r]).ToList();
                var units = new List<(string, string)>();
                for (int a = 0; a < ranked.Count; a++)
                    for (int b = a + 1; b < ranked.Count; b++)
                    {
                        int low = Math.Min(ranked[a], ranked[b]), high = Math.Max(ranked[a], ranked[b]);
                        units.Add(($"{itemId}#{low}-{high}", ranked[a].ToString(CultureInfo.InvariantCulture)));
                    }
                return units;
            default:
                return null;
        }
    }
}
