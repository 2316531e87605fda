namespace Loom.Evaluation;

/// <summary>The loss curve of a training run as a PNG (ScottPlot): train loss per step, validation loss per evaluation.</summary>
public static class LossPlot
{
    public static void Save(string path, IReadOnlyList<(int Step, float Loss)> train, IReadOnlyList<(int Step, float Loss)> validation)
    {
        var plot = new ScottPlot.Plot();
        if (train.Count > 0)
        {
            var line = plot.Add.ScatterLine(train.Select(p => (double)p.Step).ToArray(), train.Select(p => (double)p.Loss).ToArray());
            line.LegendText = "train";
            line.LineWidth = 1;
        }
        if (validation.Count > 0)
        {
            var line = plot.Add.Scatter(validation.Select(p => (double)p.Step).ToArray(), validation.Select(p => (double)p.Loss).ToArray());
            line.LegendText = "validation";
            line.LineWidth = 2;
            line.MarkerSize = 6;
        }
        plot.XLabel("step");
        plot.YLabel("loss (nats/token)");
        plot.ShowLegend();
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
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
        plot.ShowLegend();
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
    }
}
