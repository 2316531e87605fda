using System.Text.Json;
using System.Text.Json.Serialization;
using Loom.IO;

namespace Loom.Evaluation;

/// <summary>One metric's value over a task's items; Low and High bound its bootstrap 95% interval where one is meaningful.</summary>
public sealed record MetricValue(double Value, int N, double? Low = null, double? High = null);

/// <summary>A task's results: its metrics by name, with what was measured.</summary>
public sealed record TaskResult(string Name, string Kind, string Data, IReadOnlyDictionary<string, MetricValue> Metrics,
    IReadOnlyDictionary<string, double>? Tolerances = null);

/// <summary>
/// The results of one <c>loom eval</c>: every task's metrics for one model version, saved as JSON
/// (snake_case fields) so a later run can be compared with it or gated on it.
/// </summary>
public sealed record EvalRun(ModelVersion Model, DateTimeOffset Created, IReadOnlyList<TaskResult> Tasks, ModelVersion? Opponent = null)
{
    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, DictionaryKeyPolicy = null, WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    /// <summary>Reads a run saved by <see cref="Save"/>; errors are one line naming the file.</summary>
    public static EvalRun Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such results file");
        EvalRun? run;
        try { run = JsonSerializer.Deserialize<EvalRun>(File.ReadAllText(path), Json); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not an evaluation results file ({e.Message.Split('\n')[0]})"); }
        if (run?.Model is null || run.Tasks is null) throw new InvalidDataException($"{path}: not an evaluation results file (missing model or tasks)");
        foreach (var task in run.Tasks)
            if (task?.Name is null || task.Metrics is null) throw new InvalidDataException($"{path}: a task lacks its name or metrics");
        return run;
    }
}

/// <summary>A metric that got worse than its baseline by more than its tolerance.</summary>
public sealed record GateFailure(string Task, string Metric, double Baseline, double Value, double Tolerance)
{
    public override string ToString() =>
        $"{Task}/{Metric}: {Value:G6} against baseline {Baseline:G6} ({(MetricCatalog.Get(Metric).HigherIsBetter ? "dropped" : "rose")} by {Math.Abs(Value - Baseline):G4}, tolerance {Tolerance:G4})";
}

/// <summary>The gate: compares a run with a baseline run, metric by metric, in each metric's better direction.</summary>
public static class EvalGate
{
    /// <summary>
    /// Every metric of <paramref name="run"/> that has a tolerance (from <paramref name="tolerances"/>, which overrides the
    /// task file's) and a baseline value, and is worse than the baseline by more than the tolerance. A metric with a
    /// tolerance but missing from the baseline is an error, since the gate would otherwise pass silently.
    /// </summary>
    public static IReadOnlyList<GateFailure> Check(EvalRun run, EvalRun baseline, IReadOnlyDictionary<string, double>? tolerances = null)
    {
        var failures = new List<GateFailure>();
        foreach (var task in run.Tasks)
        {
            var before = baseline.Tasks.FirstOrDefault(t => t.Name == task.Name);
            foreach (var (metric, value) in task.Metrics)
            {
                double? tolerance = tolerances is not null && tolerances.TryGetValue(metric, out double given) ? given
                    : task.Tolerances is not null && task.Tolerances.TryGetValue(metric, out double own) ? own : null;
                if (tolerance is not double limit) continue;
                if (before is null || !before.Metrics.TryGetValue(metric, out var old))
                    throw new InvalidDataException($"the baseline has no {task.Name}/{metric} to compare with");
                double worse = MetricCatalog.Get(metric).HigherIsBetter ? old.Value - value.Value : value.Value - old.Value;
                if (worse > limit || double.IsNaN(value.Value)) failures.Add(new GateFailure(task.Name, metric, old.Value, value.Value, limit));
            }
        }
        return failures;
    }
}

/// <summary>Percentile bootstrap 95% intervals of a mean, and of a difference of means.</summary>
public static class Bootstrap
{
    /// <summary>The 2.5th and 97.5th percentiles of the mean of <paramref name="samples"/> resampled with replacement.</summary>
    public static (double Low, double High) MeanInterval(IReadOnlyList<double> samples, int resamples = 1000, int seed = 0)
    {
        if (samples.Count == 0) return (double.NaN, double.NaN);
        var random = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < samples.Count; i++) sum += samples[random.Next(samples.Count)];
            means[r] = sum / samples.Count;
        }
        Array.Sort(means);
        return (Percentile(means, 0.025), Percentile(means, 0.975));
    }

    /// <summary>The 2.5th and 97.5th percentiles of <paramref name="statistic"/> over resamples of <paramref name="items"/> with replacement.</summary>
    public static (double Low, double High) StatisticInterval<T>(IReadOnlyList<T> items, Func<IEnumerable<T>, double> statistic, int resamples = 1000, int seed = 0)
    {
        if (items.Count == 0) return (double.NaN, double.NaN);
        var random = new Random(seed);
        var values = new double[resamples];
        var sample = new T[items.Count];
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < sample.Length; i++) sample[i] = items[random.Next(items.Count)];
            values[r] = statistic(sample);
        }
        Array.Sort(values);
        return (Percentile(values, 0.025), Percentile(values, 0.975));
    }

    static double Percentile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int lower = (int)Math.Floor(position);
        int upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower);
    }

    /// <summary>A metric that is the mean of per-item scores, with its interval.</summary>
    public static MetricValue Mean(IReadOnlyList<double> scores, EvalTaskOptions options)
    {
        if (scores.Count == 0) return new MetricValue(double.NaN, 0);
        var (low, high) = MeanInterval(scores, options.BootstrapSamples ?? 1000, options.Seed ?? 0);
        return new MetricValue(scores.Average(), scores.Count, low, high);
    }
}
