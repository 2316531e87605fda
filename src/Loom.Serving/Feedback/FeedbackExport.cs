using System.Text.Encodings.Web;
using System.Text.Json;
using Loom.IO;
using Loom.Text;

namespace Loom.Serving.Feedback;

/// <summary>How judgements become training data; null means the default.</summary>
public sealed record ExportOptions
{
    /// <summary>
    /// Annotators who must agree before an item exports (default 1; see <see cref="FeedbackExport"/> for what
    /// agreeing means per kind). Must be positive.
    /// </summary>
    public int? MinAgree { get; init; }
}

/// <summary>What an export produced: the training data, the judgements it came from (for lineage), and the files written.</summary>
public sealed record FeedbackExportResult
{
    public required FeedbackData Data { get; init; }
    /// <summary>Ids of the judgements that went into the data, ascending.</summary>
    public required IReadOnlyList<long> JudgementIds { get; init; }
    public required int Comparisons { get; init; }
    public required int Rankings { get; init; }
    public required int Ratings { get; init; }
    public required int Corrections { get; init; }
    /// <summary>The JSONL files written (empty for <see cref="FeedbackExport.ToData"/>).</summary>
    public IReadOnlyList<string> Files { get; init; } = [];
}

/// <summary>
/// Turns judgements into the data <c>loom finetune</c> trains on, either in memory (<see cref="ToData"/>, Core's
/// <see cref="FeedbackData"/>) or as the JSONL files <see cref="FeedbackDatasets.Read(string, bool)"/> reads
/// (<see cref="WriteJsonl"/>): comparisons.jsonl, rankings.jsonl, ratings.jsonl, corrections.jsonl. Both give the same
/// pairs, ratings and examples. Judgements are read in their item's terms (<see cref="JudgementLabels"/>), so the
/// random order each annotator saw does not matter. With <see cref="ExportOptions.MinAgree"/> = k, per kind:
/// <list type="bullet">
/// <item>pairwise: the most frequent verdict on the two responses (a strict majority over any other verdict) must
/// come from ≥ k annotators; a winner gives one comparison (winner ≻ the other), a tie or both-bad gives nothing;</item>
/// <item>rank: the most frequent best response (strictly) must come from ≥ k annotators; the ranking written orders
/// the responses by their mean position in the agreeing annotators' rankings (Borda), ties by item order;</item>
/// <item>rating: ≥ k annotators gave the same score to the response; the rating written is the mean of all its scores;</item>
/// <item>thumbs: the majority (strictly more up than down or the reverse) must count ≥ k; it becomes a rating,
/// up = 5 and down = 1 (so a prompt's responses with different thumbs become pairs);</item>
/// <item>correction: with k = 1 every distinct corrected text is written; with k &gt; 1 only a text (compared
/// trimmed) that ≥ k annotators wrote, once.</item>
/// </list>
/// Items missing from the given list are rebuilt from their first judgement (what it showed).
/// </summary>
public static class FeedbackExport
{
    /// <summary>The file names <see cref="WriteJsonl"/> writes, in this order.</summary>
    public static readonly IReadOnlyList<string> FileNames = ["comparisons.jsonl", "rankings.jsonl", "ratings.jsonl", "corrections.jsonl"];

    abstract record Line(IReadOnlyList<ChatTurn> Prompt, string Origin);
    sealed record ComparisonLine(IReadOnlyList<ChatTurn> Prompt, string Chosen, string Rejected, string Origin) : Line(Prompt, Origin);
    sealed record RankingLine(IReadOnlyList<ChatTurn> Prompt, IReadOnlyList<string> Responses, IReadOnlyList<int> Ranking, string Origin) : Line(Prompt, Origin);
    sealed record RatingLine(IReadOnlyList<ChatTurn> Prompt, string Response, double Rating, string Origin) : Line(Prompt, Origin);
    sealed record CorrectionLine(IReadOnlyList<ChatTurn> Prompt, string Response, string Corrected, string Origin) : Line(Prompt, Origin);

    /// <summary>The training data in memory, as <see cref="FeedbackDatasets.Read(string, bool)"/> would read it from <see cref="WriteJsonl"/>'s files.</summary>
    public static FeedbackExportResult ToData(IReadOnlyList<FeedbackItem> items, IReadOnlyList<Judgement> judgements, ExportOptions? options = null)
    {
        var (lines, ids) = Lines(items, judgements, options);
        var data = new FeedbackData();
        foreach (var line in lines)
        {
            switch (line)
            {
                case ComparisonLine c:
                    data.Pairs.Add(new PreferencePair(c.Prompt, c.Chosen, c.Rejected, c.Origin));
                    break;
                case RankingLine r:
                    for (int better = 0; better < r.Ranking.Count; better++)
                        for (int worse = better + 1; worse < r.Ranking.Count; worse++)
                            data.Pairs.Add(new PreferencePair(r.Prompt, r.Responses[r.Ranking[better]], r.Responses[r.Ranking[worse]], r.Origin));
                    break;
                case RatingLine r:
                    data.Ratings.Add(new RatedResponse(r.Prompt, r.Response, r.Rating, r.Origin));
                    break;
                case CorrectionLine c:
                    data.Supervised.Add(new SupervisedExample([.. c.Prompt, new ChatTurn("assistant", c.Corrected)], c.Origin));
                    if (c.Corrected != c.Response) data.Pairs.Add(new PreferencePair(c.Prompt, c.Corrected, c.Response, c.Origin));
                    break;
            }
        }
        FeedbackDatasets.PairRatings(data);
        return Result(data, lines, ids, []);
    }

    /// <summary>
    /// Writes the four JSONL files into <paramref name="directory"/> (each atomically; a kind with nothing to export
    /// gets an empty file, so no stale file of an earlier export is left) and returns the data they hold.
    /// </summary>
    public static FeedbackExportResult WriteJsonl(IReadOnlyList<FeedbackItem> items, IReadOnlyList<Judgement> judgements, string directory, ExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var (lines, _) = Lines(items, judgements, options);
        var files = new List<string>();
        Type[] kinds = [typeof(ComparisonLine), typeof(RankingLine), typeof(RatingLine), typeof(CorrectionLine)];
        for (int f = 0; f < FileNames.Count; f++)
        {
            string path = Path.Combine(directory, FileNames[f]);
            var ofKind = lines.Where(l => l.GetType() == kinds[f]).ToList();
            AtomicFile.Write(path, stream =>
            {
                foreach (var line in ofKind)
                {
                    using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                        WriteLine(writer, line);
                    stream.WriteByte((byte)'\n');
                }
            });
            files.Add(path);
        }
        return ToData(items, judgements, options) with { Files = files };
    }

    static FeedbackExportResult Result(FeedbackData data, List<Line> lines, SortedSet<long> ids, IReadOnlyList<string> files) => new()
    {
        Data = data,
        JudgementIds = [.. ids],
        Comparisons = lines.Count(l => l is ComparisonLine),
        Rankings = lines.Count(l => l is RankingLine),
        Ratings = lines.Count(l => l is RatingLine),
        Corrections = lines.Count(l => l is CorrectionLine),
        Files = files,
    };

    static void WriteLine(Utf8JsonWriter writer, Line line)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("prompt");
        if (line.Prompt is [{ Role: "user" } only]) writer.WriteStringValue(only.Content);
        else
        {
            writer.WriteStartArray();
            foreach (var turn in line.Prompt)
            {
                writer.WriteStartObject();
                writer.WriteString("role", turn.Role);
                writer.WriteString("content", turn.Content);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        switch (line)
        {
            case ComparisonLine c:
                writer.WriteString("chosen", c.Chosen);
                writer.WriteString("rejected", c.Rejected);
                break;
            case RankingLine r:
                writer.WriteStartArray("responses");
                foreach (var response in r.Responses) writer.WriteStringValue(response);
                writer.WriteEndArray();
                writer.WriteStartArray("ranking");
                foreach (int index in r.Ranking) writer.WriteNumberValue(index);
                writer.WriteEndArray();
                break;
            case RatingLine r:
                writer.WriteString("response", r.Response);
                writer.WriteNumber("rating", r.Rating);
                break;
            case CorrectionLine c:
                writer.WriteString("response", c.Response);
                writer.WriteString("corrected", c.Corrected);
                break;
        }
        writer.WriteEndObject();
    }

    /// <summary>The lines to write, in item order (the given items first, then rebuilt ones), and the judgements behind them.</summary>
    static (List<Line> Lines, SortedSet<long> Ids) Lines(IReadOnlyList<FeedbackItem> items, IReadOnlyList<Judgement> judgements, ExportOptions? options)
    {
        int minAgree = options?.MinAgree ?? 1;
        if (minAgree < 1) throw new ArgumentException($"ExportOptions.MinAgree must be positive (got {minAgree})", nameof(options));
        var byId = JudgementLabels.ItemsById(items, judgements);
        var itemOrder = byId.Keys.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i, StringComparer.Ordinal);
        var labelled = judgements.OrderBy(j => j.Id).Select(j => JudgementLabels.Label(byId[j.ItemId], j)).OfType<LabelledJudgement>().ToList();
        var lines = new List<Line>();
        var ids = new SortedSet<long>();
        foreach (var group in labelled.GroupBy(l => (l.Item.Id, l.Judgement.Kind)).OrderBy(g => itemOrder[g.Key.Id]).ThenBy(g => g.Key.Kind))
        {
            var item = group.First().Item;
            var prompt = item.Prompt.Select(m => new ChatTurn(m.Role, m.Content)).ToList();
            if (group.Key.Kind == JudgementKind.Rank)
            {
                if (Ranking(item, prompt, group.ToList(), minAgree, ids) is { } ranking) lines.Add(ranking);
                continue;
            }
            // Every other kind labels one unit (a pair of responses, or one response) per judgement.
            foreach (var unit in group.GroupBy(l => l.Units[0].Unit, StringComparer.Ordinal))
            {
                var votes = unit.ToList();
                var line = group.Key.Kind switch
                {
                    JudgementKind.Pairwise => Comparison(item, prompt, votes, minAgree, ids),
                    JudgementKind.Rating => Rating(item, prompt, votes, minAgree, ids),
                    JudgementKind.Thumbs => Thumbs(item, prompt, votes, minAgree, ids),
                    _ => null,
                };
                if (line is not null) lines.Add(line);
                if (group.Key.Kind == JudgementKind.Correction) lines.AddRange(Corrections(item, prompt, votes, minAgree, ids));
            }
        }
        return (lines, ids);
    }

    static string Origin(FeedbackItem item, IEnumerable<LabelledJudgement> used) =>
        $"feedback:{item.Id} (judgements {string.Join(',', used.Select(l => l.Judgement.Id))})";

    /// <summary>The label given most often, when strictly more often than any other, and the judgements that gave it.</summary>
    static (string Label, List<LabelledJudgement> Agreeing)? Majority(IEnumerable<(LabelledJudgement Judgement, string Label)> votes)
    {
        var groups = votes.GroupBy(v => v.Label, StringComparer.Ordinal).Select(g => g.ToList()).OrderByDescending(g => g.Count).ToList();
        if (groups.Count == 0 || (groups.Count > 1 && groups[1].Count == groups[0].Count)) return null;
        return (groups[0][0].Label, [.. groups[0].Select(v => v.Judgement)]);
    }

    static Line? Comparison(FeedbackItem item, List<ChatTurn> prompt, List<LabelledJudgement> votes, int minAgree, SortedSet<long> ids)
    {
        if (Majority(votes.Select(v => (v, v.Units[0].Label))) is not { } majority || majority.Agreeing.Count < minAgree) return null;
        if (!int.TryParse(majority.Label, out int winner)) return null;
        var pair = votes[0].ItemIndexOfShown;
        int loser = pair[0] == winner ? pair[1] : pair[0];
        ids.UnionWith(majority.Agreeing.Select(l => l.Judgement.Id));
        return new ComparisonLine(prompt, item.Responses[winner].Text, item.Responses[loser].Text, Origin(item, majority.Agreeing));
    }

    static Line? Ranking(FeedbackItem item, List<ChatTurn> prompt, List<LabelledJudgement> votes, int minAgree, SortedSet<long> ids)
    {
        var orders = votes.Select(v => (Judgement: v, Order: v.Judgement.Ranking!.Select(r => v.ItemIndexOfShown[r]).ToList())).ToList();
        if (Majority(orders.Select(o => (o.Judgement, o.Order[0].ToString(System.Globalization.CultureInfo.InvariantCulture)))) is not { } majority
            || majority.Agreeing.Count < minAgree) return null;
        var agreeing = orders.Where(o => majority.Agreeing.Contains(o.Judgement)).ToList();
        var ranking = agreeing.SelectMany(o => o.Order.Select((response, position) => (response, position)))
            .GroupBy(p => p.response)
            .OrderBy(g => g.Average(p => p.position)).ThenBy(g => g.Key)
            .Select(g => g.Key).ToList();
        ids.UnionWith(majority.Agreeing.Select(l => l.Judgement.Id));
        return new RankingLine(prompt, [.. item.Responses.Select(r => r.Text)], ranking, Origin(item, majority.Agreeing));
    }

    static Line? Rating(FeedbackItem item, List<ChatTurn> prompt, List<LabelledJudgement> votes, int minAgree, SortedSet<long> ids)
    {
        int sameScore = votes.GroupBy(v => v.Judgement.Rating).Max(g => g.Count());
        if (sameScore < minAgree) return null;
        ids.UnionWith(votes.Select(l => l.Judgement.Id));
        double mean = votes.Average(v => (double)v.Judgement.Rating!.Value);
        return new RatingLine(prompt, item.Responses[votes[0].ItemIndexOfShown[0]].Text, mean, Origin(item, votes));
    }

    static Line? Thumbs(FeedbackItem item, List<ChatTurn> prompt, List<LabelledJudgement> votes, int minAgree, SortedSet<long> ids)
    {
        if (Majority(votes.Select(v => (v, v.Units[0].Label))) is not { } majority || majority.Agreeing.Count < minAgree) return null;
        ids.UnionWith(majority.Agreeing.Select(l => l.Judgement.Id));
        return new RatingLine(prompt, item.Responses[votes[0].ItemIndexOfShown[0]].Text, majority.Label == "up" ? 5 : 1, Origin(item, majority.Agreeing));
    }

    static IEnumerable<Line> Corrections(FeedbackItem item, List<ChatTurn> prompt, List<LabelledJudgement> votes, int minAgree, SortedSet<long> ids)
    {
        string response = item.Responses[votes[0].ItemIndexOfShown[0]].Text;
        foreach (var same in votes.GroupBy(v => v.Units[0].Label, StringComparer.Ordinal))
        {
            var agreeing = same.ToList();
            if (agreeing.Count < minAgree) continue;
            ids.UnionWith(agreeing.Select(l => l.Judgement.Id));
            yield return new CorrectionLine(prompt, response, agreeing[0].Judgement.Correction!, Origin(item, agreeing));
        }
    }
}
