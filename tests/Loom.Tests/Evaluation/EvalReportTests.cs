using Loom.Evaluation;

namespace Loom.Tests.Evaluation;

[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class EvalReportTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-report-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static EvalRun Run(string hash, double shift) => new(
        new ModelVersion("runs/2026-12-02-quickstart-dotnet-docs-bpe8192-dim256-layers6-heads8-kv2-ctx512-lr3e-4-warmup200-steps20000-seed1234-tuned-sft-lora-r16-alpha32-epochs3/checkpoint", hash), DateTimeOffset.UnixEpoch,
        [
            new TaskResult("tinyshakespeare", "perplexity", "/data/tinyshakespeare.txt", new Dictionary<string, MetricValue>
            {
                ["word_perplexity"] = new(210.5 - shift * 100, 1), ["byte_perplexity"] = new(3.1 - shift, 1), ["bits_per_byte"] = new(1.63 - shift, 1),
            }),
            new TaskResult("dotnet-docs-members", "multiple_choice", "/data/eval/dotnet-docs-members/M:System.Collections.Concurrent.ConcurrentDictionary`2.GetOrAdd``1(`0,System.Func{`0,``0,`1},``0)-four-choices.jsonl",
                new Dictionary<string, MetricValue> { ["acc"] = new(0.4 + shift, 200, 0.33 + shift, 0.47 + shift), ["acc_norm"] = new(0.45 + shift, 200, 0.38 + shift, 0.52 + shift) }),
        ]);

    [SkippableFact]
    public async Task ReportFitsAt1280PixelsAndExplainsEveryMetric()
    {
        ReportBrowser.RequireChromium();
        var train = Enumerable.Range(1, 200).Select(s => (s, (float)(4 * Math.Exp(-s / 60.0) + 1.2 + 0.2 * Math.Sin(s)))).ToList();
        var validation = Enumerable.Range(1, 4).Select(i => (i * 50, (float)(4 * Math.Exp(-i * 50 / 60.0) + 1.3))).ToList();
        string path = Path.Combine(folder, "report.html");
        EvalReport.Build(Run("a1b2c3d4e5f60718", 0.05), Run("0f1e2d3c4b5a6978", 0), [("pretraining loss", LossPlot.Png(train, validation))]).Save(path);
        string html = File.ReadAllText(path);
        Assert.Contains("Δ interval", html);
        Assert.Contains("[-0.09, 0.19]", html); // acc: [0.38 - 0.47, 0.52 - 0.33]

        string screenshot = Path.Combine(GgufReferencePaths.RepoRoot(), "docs", "eval-report.png");
        var measure = await ReportBrowser.OpenAsync(path, screenshot);
        Assert.True(measure.ScrollWidth <= 1280, $"the page is {measure.ScrollWidth} px wide at a 1280 px viewport");
        Assert.Equal(5, measure.MetricRows);
        Assert.Equal(measure.MetricRows, measure.ExplainedRows);
        Assert.True(new FileInfo(screenshot).Length > 10_000);
    }
}

/// <summary>Several runs in one report: a value per version, the change, and a trend plot per metric.</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class EvalTrendReportTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-trends-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static EvalRun Version(int i) => new(
        new ModelVersion($"runs/quickstart-dotnet-docs-bpe8192-dim256-layers6-heads8-kv2-ctx512-lr3e-4-v{i}-tuned-sft-lora-r16-alpha32-epochs3/checkpoint", $"{i}a1b2c3d4e5f6071829"),
        DateTimeOffset.UnixEpoch.AddDays(i),
        [
            new TaskResult("tinyshakespeare", "perplexity", "/data/tinyshakespeare.txt", new Dictionary<string, MetricValue> { ["bits_per_byte"] = new(2.0 - 0.1 * i, 1) }),
            new TaskResult("docs", "multiple_choice", "/data/docs.jsonl",
                new Dictionary<string, MetricValue> { ["acc"] = new(0.3 + 0.05 * i, 200, 0.25 + 0.05 * i, 0.35 + 0.05 * i) }),
        ]);

    [SkippableFact]
    public async Task TrendReportPlotsEveryMetricAndFitsAt1280Pixels()
    {
        ReportBrowser.RequireChromium();
        var runs = Enumerable.Range(0, 6).Select(Version).ToList();
        var paths = runs.Select((run, i) => { string p = Path.Combine(folder, $"run{i}.json"); run.Save(p); return p; }).ToArray();
        string html = Path.Combine(folder, "trends.html");
        var result = CliRun.Run(["eval", "report", .. paths, "--html", html]);
        Assert.True(result.ExitCode == 0, result.Error);
        string text = File.ReadAllText(html);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(text, "data:image/png;base64,").Count); // one plot per metric
        Assert.Contains("<td>-0.5</td>", text);  // bits_per_byte: 1.5 - 2.0
        Assert.Contains("<td>+0.25</td>", text); // acc: 0.55 - 0.3
        Assert.Contains("v6 5a1b2c3d", text);

        string screenshot = Path.Combine(GgufReferencePaths.RepoRoot(), "docs", "eval-trends.png");
        var measure = await ReportBrowser.OpenAsync(html, screenshot);
        Assert.True(measure.ScrollWidth <= 1280, $"the page is {measure.ScrollWidth} px wide at a 1280 px viewport");
        Assert.True(new FileInfo(screenshot).Length > 10_000);
        Assert.Equal(2, measure.MetricRows);
        Assert.Equal(measure.MetricRows, measure.ExplainedRows);
    }

    [Fact]
    public void ATrendPlotIsAPngOfTheRequestedSize()
    {
        byte[] png = TrendPlot.Png("acc", ["v1", "v2", "v3"], [new MetricValue(0.3, 10, 0.2, 0.4), null, new MetricValue(0.5, 10)], 400, 200);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal(400, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(200, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        Assert.Throws<ArgumentException>(() => TrendPlot.Png("acc", ["v1"], []));
    }
}

internal static class GgufReferencePaths
{
    public static string RepoRoot() => Loom.Tests.Models.GgufReference.RepoRoot();
}
