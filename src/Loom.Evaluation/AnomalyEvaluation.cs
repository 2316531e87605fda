using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Evaluation;

public static partial class EvalTasks
{
    /// <summary>A labelled log session: its id, its event keys in order, and whether it is anomalous.</summary>
    public sealed record LogSessionItem(string Id, IReadOnlyList<string> Events, bool Anomalous);

    /// <summary>
    /// Precision, recall and F1 of anomaly verdicts against the labels, each with a bootstrap 95% interval (sessions resampled
    /// with replacement, the statistic recomputed).
    /// </summary>
    public static Dictionary<string, MetricValue> AnomalyDetection(IReadOnlyList<LogSessionItem> sessions, IReadOnlyList<bool> flagged, EvalTaskOptions options)
    {
        if (flagged.Count != sessions.Count) throw new ArgumentException($"{flagged.Count} verdicts for {sessions.Count} sessions", nameof(flagged));
        var pairs = sessions.Select((s, i) => (Flagged: flagged[i], s.Anomalous)).ToList();
        MetricValue Metric(Func<(int Tp, int Fp, int Fn), double> statistic)
        {
            double Of(IEnumerable<(bool Flagged, bool Anomalous)> sample)
            {
                int tp = 0, fp = 0, fn = 0;
                foreach (var (f, a) in sample) { if (f && a) tp++; else if (f) fp++; else if (a) fn++; }
                return statistic((tp, fp, fn));
            }
            var (low, high) = Bootstrap.StatisticInterval(pairs, Of, options.BootstrapSamples ?? 1000, options.Seed ?? 0);
            return new MetricValue(Of(pairs), pairs.Count, low, high);
        }
        static double Precision((int Tp, int Fp, int Fn) c) => c.Tp + c.Fp == 0 ? 0 : c.Tp / (double)(c.Tp + c.Fp);
        static double Recall((int Tp, int Fp, int Fn) c) => c.Tp + c.Fn == 0 ? 0 : c.Tp / (double)(c.Tp + c.Fn);
        static double F1((int Tp, int Fp, int Fn) c) => 2 * c.Tp + c.Fp + c.Fn == 0 ? 0 : 2.0 * c.Tp / (2 * c.Tp + c.Fp + c.Fn);
        return new Dictionary<string, MetricValue>
        {
            ["anomaly_precision"] = Metric(Precision), ["anomaly_recall"] = Metric(Recall), ["anomaly_f1"] = Metric(F1),
        };
    }

    /// <summary>Log sessions: {"events": [keys], "anomalous": true|false}, with an optional "session" id (else the line number).</summary>
    public static IReadOnlyList<LogSessionItem> ReadSessions(EvalTask task) =>
        [.. ReadJsonl(task).Take(task.Options.MaxItems ?? int.MaxValue).Select(line =>
        {
            var events = Strings(line.Node, "events", task, line.Number);
            bool anomalous = line.Node["anomalous"] is JsonNode a && a.GetValueKind() is JsonValueKind.True or JsonValueKind.False
                ? a.GetValue<bool>() : throw new InvalidDataException($"{task.Data}:{line.Number}: \"anomalous\" must be true or false");
            string id = line.Node["session"] is JsonNode ? Required(line.Node, "session", task, line.Number) : $"{Path.GetFileName(task.Data)}:{line.Number}";
            return new LogSessionItem(id, events, anomalous);
        })];
}
