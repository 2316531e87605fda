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
