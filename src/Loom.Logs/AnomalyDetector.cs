using System.Text;
using System.Text.Json;

namespace Loom.Logs;

/// <summary>
/// What the detector says about one session, in fields an explainer can read: the score against the threshold, and
/// for a flagged session the first event whose surprise passed the threshold (its index, log line, event and template)
/// and what the model expected there instead, with probabilities.
/// </summary>
public sealed record SessionVerdict(string SessionId, bool Anomalous, double Score, double Threshold, int EventCount,
    int? FirstUnexpectedIndex, long? FirstUnexpectedLine, string? UnexpectedEvent, string? UnexpectedTemplate,
    double? UnexpectedProbability, IReadOnlyList<EventPrediction> Expected, bool? Label)
{
    /// <summary>One JSON object (a JSONL line).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("session", SessionId);
            json.WriteBoolean("anomalous", Anomalous);
            json.WriteNumber("score", Math.Round(Score, 4));
            json.WriteNumber("threshold", Math.Round(Threshold, 4));
            json.WriteNumber("events", EventCount);
            if (FirstUnexpectedIndex is { } index)
            {
                json.WriteNumber("first_unexpected_index", index);
                if (FirstUnexpectedLine is { } line and > 0) json.WriteNumber("first_unexpected_line", line);
                json.WriteString("unexpected_event", UnexpectedEvent);
                if (UnexpectedTemplate is not null) json.WriteString("unexpected_template", UnexpectedTemplate);
                json.WriteNumber("unexpected_probability", Math.Round(UnexpectedProbability ?? 0, 6));
                json.WriteStartArray("expected");
                foreach (var e in Expected)
                {
                    json.WriteStartObject();
                    json.WriteString("event", e.Event);
                    if (e.Template is not null) json.WriteString("template", e.Template);
                    json.WriteNumber("probability", Math.Round(e.Probability, 4));
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            if (Label is { } label) json.WriteBoolean("label", label);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}

/// <summary>Precision, recall and F1 of flags against labels.</summary>
public sealed record DetectionMetrics(int TruePositives, int FalsePositives, int FalseNegatives, int TrueNegatives)
{
    public double Precision => TruePositives + FalsePositives == 0 ? 0 : (double)TruePositives / (TruePositives + FalsePositives);
    public double Recall => TruePositives + FalseNegatives == 0 ? 0 : (double)TruePositives / (TruePositives + FalseNegatives);
    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);

    /// <summary>Counts over pairs of (flagged, label).</summary>
    public static DetectionMetrics From(IEnumerable<(bool Flagged, bool Label)> pairs)
    {
        int tp = 0, fp = 0, fn = 0, tn = 0;
        foreach (var (flagged, label) in pairs)
        {
            if (flagged && label) tp++;
            else if (flagged) fp++;
            else if (label) fn++;
            else tn++;
        }
        return new DetectionMetrics(tp, fp, fn, tn);
    }
}

/// <summary>Scores sessions with a <see cref="LogModel"/> and turns scores into verdicts.</summary>
public static class AnomalyDetector
{
    /// <summary>Verdicts for <paramref name="sessions"/>; <paramref name="expectedCount"/> predictions are listed where a session goes wrong.</summary>
    public static List<SessionVerdict> Detect(LogModel model, IReadOnlyList<LogSession> sessions, int expectedCount = 3, bool includeEnd = true)
    {
        var scores = model.Score(sessions, includeEnd);
        var verdicts = new List<SessionVerdict>(sessions.Count);
        for (int i = 0; i < sessions.Count; i++) verdicts.Add(Verdict(model, sessions[i], scores[i], model.Threshold, expectedCount));
        return verdicts;
    }

    internal static SessionVerdict Verdict(LogModel model, LogSession session, LogModel.SessionScore score, double threshold, int expectedCount)
    {
        bool anomalous = score.Score > threshold;
        int? first = null;
        for (int t = 0; t < score.Surprises.Length && anomalous; t++)
            if (score.Surprises[t] > threshold) { first = t; break; }
        if (first is not { } index)
            return new SessionVerdict(session.Id, anomalous, score.Score, threshold, session.Events.Count, null, null, null, null, null, [], session.Anomalous);
        bool end = index >= session.Events.Count;
        string unexpected = end ? EventVocabulary.EndToken : session.Events[index];
        long? line = end || session.Lines.Count <= index ? null : session.Lines[index];
        return new SessionVerdict(session.Id, true, score.Score, threshold, session.Events.Count, index, line, unexpected,
            end ? null : model.Vocabulary.Template(unexpected), Math.Exp(-score.Surprises[index]), score.Expected(index, expectedCount), session.Anomalous);
    }

    /// <summary>
    /// The threshold that maximises F1 on labelled sessions (a dev set), searched over the midpoints between
    /// consecutive distinct scores. Returns the threshold and the F1 it reaches.
    /// </summary>
    public static (double Threshold, double F1) TuneThreshold(IReadOnlyList<double> scores, IReadOnlyList<bool> labels)
    {
        if (scores.Count != labels.Count) throw new ArgumentException($"{scores.Count} scores for {labels.Count} labels");
        if (!labels.Any(l => l)) throw new ArgumentException("tuning the threshold needs at least one anomalous session in the labelled set");
        var order = Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ToArray();
        int positives = labels.Count(l => l);
        int tp = 0, fp = 0;
        double bestF1 = 0, best = double.PositiveInfinity;
        for (int r = 0; r < order.Length; r++)
        {
            if (labels[order[r]]) tp++; else fp++;
            if (r + 1 < order.Length && scores[order[r + 1]] == scores[order[r]]) continue;
            double precision = (double)tp / (tp + fp), recall = (double)tp / positives;
            double f1 = 2 * precision * recall / (precision + recall);
            if (f1 > bestF1)
            {
                bestF1 = f1;
                best = r + 1 < order.Length ? (scores[order[r]] + scores[order[r + 1]]) / 2 : scores[order[r]] - 1e-9;
            }
        }
        return (best, bestF1);
    }
}

/// <summary>
/// The floor: a next-event n-gram model with start and end tokens. A session is anomalous when it takes a transition
/// (n−1 events → next, the end included) never seen in training.
/// </summary>
public sealed class NGramModel
{
    readonly HashSet<string> seen = new(StringComparer.Ordinal);

    public NGramModel(IEnumerable<LogSession> normal, int order = 3)
    {
        if (order < 2) throw new ArgumentException($"NGramModel order must be at least 2, got {order}");
        Order = order;
        foreach (var session in normal)
            foreach (string gram in Grams(session)) seen.Add(gram);
    }

    public int Order { get; }

    /// <summary>Whether the session takes a transition never seen in training.</summary>
    public bool IsAnomalous(LogSession session) => Grams(session).Any(g => !seen.Contains(g));

    IEnumerable<string> Grams(LogSession session)
    {
        var tokens = new List<string>(session.Events.Count + 2) { EventVocabulary.StartToken };
        tokens.AddRange(session.Events);
        tokens.Add(EventVocabulary.EndToken);
        for (int i = 1; i < tokens.Count; i++)
            yield return string.Join(' ', tokens.Skip(Math.Max(0, i - Order + 1)).Take(Math.Min(i + 1, Order)));
    }
}
