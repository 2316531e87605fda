using System.Text.Json;

namespace Loom.Evaluation;

/// <summary>
/// The loss curve of a training run as a PNG (ScottPlot): train loss per step (faint), its exponential moving average
/// (smoothing 0.9, what the eye should follow), validation loss as points at each evaluation, labelled axes.
/// </summary>
public static class LossPlot
{
    public static void Save(string path, IReadOnlyList<(int Step, float Loss)> train, IReadOnlyList<(int Step, float Loss)> validation)
    {
        string temp = path + ".tmp.png";
        File.WriteAllBytes(temp, Png(train, validation));
        File.Move(temp, path, overwrite: true);
    }

    public static byte[] Png(IReadOnlyList<(int Step, float Loss)> train, IReadOnlyList<(int Step, float Loss)> validation, double smoothing = 0.9)
    {
        var plot = new ScottPlot.Plot();
        if (train.Count > 0)
        {
            double[] steps = [.. train.Select(p => (double)p.Step)];
            var raw = plot.Add.ScatterLine(steps, train.Select(p => (double)p.Loss).ToArray());
            raw.LegendText = "train";
            raw.LineWidth = 1;
            raw.Color = raw.Color.WithAlpha(0.35);
            var smoothed = plot.Add.ScatterLine(steps, Smooth(train.Select(p => (double)p.Loss).ToArray(), smoothing));
            smoothed.LegendText = $"train (EMA {smoothing:0.##})";
            smoothed.LineWidth = 2;
        }
        if (validation.Count > 0)
        {
            var points = plot.Add.Scatter(validation.Select(p => (double)p.Step).ToArray(), validation.Select(p => (double)p.Loss).ToArray());
            points.LegendText = "validation";
            points.LineWidth = validation.Count > 1 ? 1 : 0;
            points.MarkerSize = 8;
        }
        plot.XLabel("step");
        plot.YLabel("loss (nats/token)");
        plot.ShowLegend();
        return plot.GetImageBytes(900, 500, ScottPlot.ImageFormat.Png);
    }

    /// <summary>Exponential moving average with bias correction (as TensorBoard's smoothing): the first points are not pulled to 0.</summary>
    public static double[] Smooth(double[] values, double smoothing)
    {
        var result = new double[values.Length];
        double average = 0, weight = 0;
        for (int i = 0; i < values.Length; i++)
        {
            average = smoothing * average + (1 - smoothing) * values[i];
            weight = smoothing * weight + (1 - smoothing);
            result[i] = average / weight;
        }
        return result;
    }

    /// <summary>
    /// The train and validation losses in a pretraining run's metrics.jsonl, looked for beside the checkpoint folder and in its
    /// parent (a `loom pretrain --out` folder holds checkpoint/ and metrics.jsonl); empty lists when there is none.
    /// </summary>
    public static (List<(int Step, float Loss)> Train, List<(int Step, float Loss)> Validation) ReadTrainingLog(string checkpointFolder)
    {
        var train = new List<(int, float)>();
        var validation = new List<(int, float)>();
        string full = Path.GetFullPath(checkpointFolder);
        string? log = new[] { full, Path.GetDirectoryName(full) }.Where(f => f is not null).Select(f => Path.Combine(f!, "metrics.jsonl")).FirstOrDefault(File.Exists);
        if (log is null) return (train, validation);
        foreach (string line in File.ReadLines(log))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                if (!root.TryGetProperty("step", out var step)) continue;
                if (root.TryGetProperty("val_loss", out var val)) validation.Add((step.GetInt32(), val.GetSingle()));
                else if (root.TryGetProperty("loss", out var loss)) train.Add((step.GetInt32(), loss.GetSingle()));
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                throw new InvalidDataException($"{log}: a line is not a metrics record ({e.Message.Split('\n')[0]})");
            }
        }
        return (train, validation);
    }
}

/// <summary>Curves of a tuning run as a PNG: one line per named series (loss, reward margin, KL, accuracy…), by step.</summary>
public static class MetricsPlot
{
    public static void Save(string path, IReadOnlyList<(string Label, IReadOnlyList<(int Step, float Value)> Points)> series)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (label, points) in series)
        {
            var finite = points.Where(p => float.IsFinite(p.Value)).ToList();
            if (finite.Count == 0) continue;
            var line = finite.Count > 1
                ? plot.Add.ScatterLine(finite.Select(p => (double)p.Step).ToArray(), finite.Select(p => (double)p.Value).ToArray())
                : plot.Add.Scatter(finite.Select(p => (double)p.Step).ToArray(), finite.Select(p => (double)p.Value).ToArray());
            line.LegendText = label;
            line.LineWidth = 1;
        }
        plot.XLabel("step");
        plot.YLabel(series.Count == 1 ? series[0].Label : "value");
        plot.ShowLegend();
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
    }
}

/// <summary>
/// A metric across model versions as a PNG: its value per version (a line through the points, oldest left) with the bootstrap
/// 95% interval as a vertical bar where the run has one; versions are labelled on the x axis.
/// </summary>
public static class TrendPlot
{
    public static byte[] Png(string metric, IReadOnlyList<string> versions, IReadOnlyList<MetricValue?> values, int width = 640, int height = 300)
    {
        if (versions.Count != values.Count) throw new ArgumentException($"{versions.Count} versions but {values.Count} values");
        var plot = new ScottPlot.Plot();
        var present = Enumerable.Range(0, values.Count).Where(i => values[i] is { } v && double.IsFinite(v.Value)).ToList();
        if (present.Count > 0)
        {
            var line = plot.Add.Scatter(present.Select(i => (double)i).ToArray(), present.Select(i => values[i]!.Value).ToArray());
            line.MarkerSize = 7;
            line.LineWidth = present.Count > 1 ? 2 : 0;
            foreach (int i in present)
                if (values[i] is { Low: double low, High: double high } && double.IsFinite(low) && double.IsFinite(high))
                {
                    var bar = plot.Add.Line(i, low, i, high);
                    bar.LineWidth = 1.5f;
                    bar.Color = line.Color.WithAlpha(0.6);
                }
        }
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(0, versions.Count).Select(i => (double)i)], [.. versions]);
        plot.Axes.SetLimitsX(-0.5, versions.Count - 0.5);
        plot.XLabel("model version (oldest first)");
        plot.YLabel(metric);
        return plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
    }
}
