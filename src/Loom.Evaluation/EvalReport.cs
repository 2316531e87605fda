using System.Globalization;

namespace Loom.Evaluation;

/// <summary>
/// The HTML report of an evaluation run: per task, each metric of this model version beside the baseline run's, the
/// difference with its bootstrap 95% interval (where both runs give one), and the metric's meaning on its row; given a chain of
/// runs (oldest first, this run last), a plot per metric of its trend across them.
/// </summary>
public static class EvalReport
{
    public static HtmlReport Build(EvalRun run, EvalRun? baseline = null, IReadOnlyList<(string Caption, byte[] Png)>? plots = null,
        IReadOnlyList<EvalRun>? history = null)
    {
        var report = new HtmlReport($"Evaluation of {run.Model}");
        report.Paragraph($"Model {run.Model.Path} (weights hash {run.Model.Hash}), evaluated {run.Created.ToString("u", CultureInfo.InvariantCulture)}."
            + (run.Opponent is { } b ? $" Pairwise tasks compare it (A) with {b.Path} (B, hash {b.Hash})." : ""));
        if (baseline is not null)
            report.Paragraph($"Baseline: {baseline.Model.Path} (hash {baseline.Model.Hash}), evaluated {baseline.Created.ToString("u", CultureInfo.InvariantCulture)}. "
                + "Δ is this run minus the baseline; its interval is the difference of the two runs' interval ends, a conservative bound.");
        foreach (var task in run.Tasks)
        {
            report.Heading($"{task.Name} ({task.Kind})");
            report.Paragraph($"Data: {task.Data}");
            var before = baseline?.Tasks.FirstOrDefault(t => t.Name == task.Name);
            var headers = baseline is null
                ? new[] { "metric", "this run", "95% interval", "n" }
                : new[] { "metric", "this run", "95% interval", "n", "baseline", "Δ", "Δ interval" };
            var rows = new List<(IReadOnlyList<string>, string)>();
            foreach (var (name, value) in task.Metrics)
            {
                var info = MetricCatalog.Get(name);
                var cells = new List<string> { name, Format(value.Value), Interval(value.Low, value.High), value.N.ToString(CultureInfo.InvariantCulture) };
                if (baseline is not null)
                {
                    if (before is not null && before.Metrics.TryGetValue(name, out var old))
                    {
                        cells.Add(Format(old.Value));
                        cells.Add((value.Value >= old.Value ? "+" : "") + Format(value.Value - old.Value));
                        cells.Add(value.Low is double low && value.High is double high && old.Low is double oldLow && old.High is double oldHigh
                            ? Interval(low - oldHigh, high - oldLow) : "—");
                    }
                    else cells.AddRange(["—", "—", "—"]);
                }
                rows.Add((cells, info.Explanation + (info.HigherIsBetter ? " (higher is better)" : " (lower is better)")));
            }
            report.MetricTable(headers, rows);
        }
        if (history is { Count: > 1 })
        {
            report.Heading($"Trends across {history.Count} versions");
            var labels = VersionLabels(history);
            foreach (var task in run.Tasks)
                foreach (string metric in task.Metrics.Keys)
                    report.Image(TrendPlot.Png(metric, labels, [.. history.Select(h => h.Tasks.FirstOrDefault(t => t.Name == task.Name)?.Metrics.GetValueOrDefault(metric))]),
                        $"{task.Name}: {metric} across versions ({string.Join(", ", labels)})");
        }
        if (plots is { Count: > 0 })
        {
            report.Heading("Training curves");
            foreach (var (caption, png) in plots) report.Image(png, caption);
        }
        return report;
    }

    /// <summary>
    /// The report of several runs of the same tasks, oldest first: per task, a table of each metric's value per version with the
    /// change from the first to the last version and its meaning, and a plot per metric of its value (and interval) across versions.
    /// </summary>
    public static HtmlReport BuildTrends(IReadOnlyList<EvalRun> runs)
    {
        if (runs.Count == 0) throw new ArgumentException("a trend report needs at least one run", nameof(runs));
        var report = new HtmlReport($"Evaluation across {runs.Count} versions");
        var labels = VersionLabels(runs);
        report.Table(["version", "model", "weights hash", "evaluated"], runs.Select((run, i) => (IReadOnlyList<string>)
            [labels[i], run.Model.Path, run.Model.Hash, run.Created.ToString("u", CultureInfo.InvariantCulture)]));
        report.Paragraph("Δ is the last version minus the first. Each plot shows a metric per version, with its bootstrap 95% interval as a bar where there is one.");
        var taskNames = runs.SelectMany(run => run.Tasks.Select(t => t.Name)).Distinct(StringComparer.Ordinal).ToList();
        foreach (string taskName in taskNames)
        {
            var results = runs.Select(run => run.Tasks.FirstOrDefault(t => t.Name == taskName)).ToList();
            var first = results.First(r => r is not null)!;
            report.Heading($"{taskName} ({first.Kind})");
            var metrics = results.Where(r => r is not null).SelectMany(r => r!.Metrics.Keys).Distinct(StringComparer.Ordinal).ToList();
            var rows = new List<(IReadOnlyList<string>, string)>();
            var plots = new List<(string, byte[])>();
            foreach (string metric in metrics)
            {
                var values = results.Select(r => r is not null && r.Metrics.TryGetValue(metric, out var v) ? v : null).ToList();
                var info = MetricCatalog.Get(metric);
                var cells = new List<string> { metric };
                cells.AddRange(values.Select(v => v is null ? "—" : Format(v.Value)));
                var known = values.Where(v => v is not null && !double.IsNaN(v.Value)).ToList();
                cells.Add(known.Count >= 2 ? (known[^1]!.Value >= known[0]!.Value ? "+" : "") + Format(known[^1]!.Value - known[0]!.Value) : "—");
                rows.Add((cells, info.Explanation + (info.HigherIsBetter ? " (higher is better)" : " (lower is better)")));
                plots.Add(($"{taskName}: {metric} across versions", TrendPlot.Png(metric, labels, values)));
            }
            report.MetricTable(["metric", .. labels, "Δ"], rows);
            foreach (var (caption, png) in plots) report.Image(png, caption);
        }
        return report;
    }

    static List<string> VersionLabels(IReadOnlyList<EvalRun> runs) =>
        [.. runs.Select((run, i) => $"v{i + 1} {run.Model.Hash[..Math.Min(8, run.Model.Hash.Length)]}")];

    static string Format(double value) => double.IsNaN(value) ? "—" : value.ToString("0.####", CultureInfo.InvariantCulture);

    static string Interval(double? low, double? high) =>
        low is double l && high is double h ? $"[{Format(l)}, {Format(h)}]" : "—";
}
