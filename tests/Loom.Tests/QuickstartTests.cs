using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Retrieval;
using Loom.Serving.Pipeline;
using Loom.Tensors;
using Loom.Text;
using AtomicFile = Loom.IO.AtomicFile;

namespace Loom.Tests;

/// <summary>`loom quickstart --fast` end to end, run in-process as a user (or CI) would.</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
[Collection(Training.SerialTrainingCollection.Name)]
public sealed class QuickstartTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-quickstart-").FullName;

    public void Dispose()
    {
        AtomicFile.ResetCreateStream();
        Directory.Delete(root, recursive: true);
    }

    static (int Exit, string Out, string Error) Loom(params string[] args) => CliRun.Run(args);

    [Fact]
    public void FastRunWritesModelsIndexAnswersAndReport()
    {
        string output = Path.Combine(root, "run");
        var run = Loom("quickstart", "--fast", "--out", output, "--threads", "2");
        Assert.True(run.Exit == 0, run.Error + run.Out);

        // Every stage says what it did, with its time.
        foreach (var stage in new[] { "pretrain", "tune on instructions", "ingest docs into the retrieval index", "answer questions with citations", "write the report" })
            Assert.Matches($@"{stage}: \d+\.\d s", run.Out);

        // Both checkpoints load, the tuned one differs from the pretrained one, and the index opens with the demo documents.
        var pretrained = Checkpoint.Load(Path.Combine(output, Quickstart.PretrainFolderName, "checkpoint"));
        var tuned = Checkpoint.Load(Path.Combine(output, Quickstart.TunedFolderName, "checkpoint"));
        Assert.Equal(pretrained.Config.Dim, tuned.Config.Dim);
        Assert.True(File.Exists(Path.Combine(output, Quickstart.TunedFolderName, "checkpoint", Tokenizer.FileName)));
        Assert.True(File.Exists(Path.Combine(output, Quickstart.IndexFolderName, RetrievalIndex.ManifestFile)));
        Assert.True(File.Exists(Path.Combine(output, Quickstart.LossPlotFileName)));

        // The answers list their sources (member ids such as "M:System..." or "T:...").
        Assert.Matches(@"Sources[^\n]*:\s*\n\s*\[1\] [A-Z]:\S+", run.Out.Replace("\r", ""));
        var questions = run.Out.Split('\n').Where(line => line.StartsWith("Q: What does ", StringComparison.Ordinal)).ToList();
        Assert.Equal(QuickstartPlan.For(fast: true).Questions, questions.Count);

        // The report: evaluation table with real numbers, both samples, the plots embedded, and its path printed.
        string reportPath = Path.Combine(output, Quickstart.ReportFileName);
        Assert.Contains("report: " + Path.GetFullPath(reportPath), run.Out);
        string html = File.ReadAllText(reportPath);
        Assert.Contains("validation perplexity", html);
        Assert.Contains("ROUGE-L before tuning", html);
        Assert.Contains("ROUGE-L after tuning", html);
        Assert.Contains("retrieval hit rate", html);
        Assert.Contains("before tuning", html);
        Assert.Contains("after tuning", html);
        Assert.Contains("data:image/png;base64,", html);
        Assert.Contains("What does ", html);
        var perplexity = System.Text.RegularExpressions.Regex.Match(html, @"validation perplexity</td><td>([0-9.]+)<");
        Assert.True(perplexity.Success, "perplexity row missing");
        double value = double.Parse(perplexity.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // Better than a uniform guess over the vocabulary, so pretraining learned something.
        Assert.InRange(value, 1.0, pretrained.Config.VocabSize * 0.5);

        // A second run into the same folder is allowed (it is a previous quickstart run).
        Assert.True(File.Exists(Path.Combine(output, Quickstart.MarkerFileName)));
    }

    [Fact]
    public void RefusesAForeignNonEmptyFolderAndBadOptions()
    {
        string foreign = Path.Combine(root, "foreign");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "notes.txt"), "mine");
        var refused = Loom("quickstart", "--fast", "--out", foreign);
        Assert.NotEqual(0, refused.Exit);
        Assert.Single(refused.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("not a previous quickstart run", refused.Error);
        Assert.Contains("(choose another --out)", refused.Error);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(foreign, "notes.txt")));

        var badMinutes = Loom("quickstart", "--fast", "--out", Path.Combine(root, "a"), "--minutes", "0");
        Assert.NotEqual(0, badMinutes.Exit);
        Assert.Contains("--minutes must be positive, got 0", badMinutes.Error);
        Assert.DoesNotContain("QuickstartOptions", badMinutes.Error);

        var badCorpus = Loom("quickstart", "--fast", "--out", Path.Combine(root, "b"), "--corpus", Path.Combine(root, "missing.txt"));
        Assert.NotEqual(0, badCorpus.Exit);
        Assert.Single(badCorpus.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("missing.txt", badCorpus.Error);
    }
}

/// <summary>One `--fast` quickstart run through the library alone (no CLI), shared by the tests below.</summary>
public sealed class QuickstartLibraryRun : IAsyncLifetime
{
    public string Root { get; } = Directory.CreateTempSubdirectory("loom-quickstart-library-").FullName;
    public List<PipelineProgress> Events { get; } = [];
    public QuickstartResult Result { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Result = await Quickstart.RunAsync(new QuickstartOptions { OutputFolder = Path.Combine(Root, "run"), Fast = true, Threads = 2 }, new EventLog(Events));

    public Task DisposeAsync()
    {
        Directory.Delete(Root, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>Keeps every event in order, synchronously.</summary>
    sealed class EventLog(List<PipelineProgress> events) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => events.Add(value);
    }
}

[Trait(TestCategories.Category, TestCategories.Slow)]
[Collection(Training.SerialTrainingCollection.Name)]
public sealed class QuickstartLibraryTests(QuickstartLibraryRun run) : IClassFixture<QuickstartLibraryRun>
{
    QuickstartResult Result => run.Result;

    [Fact]
    public void CheckpointsAndIndexAreWhereTheResultSaysAndLoad()
    {
        string output = Path.Combine(run.Root, "run");
        Assert.Equal(Path.Combine(output, Quickstart.PretrainFolderName, "checkpoint"), Result.Pretrained.CheckpointFolder);
        Assert.Equal(Path.Combine(output, Quickstart.TunedFolderName, "checkpoint"), Result.Tuned.CheckpointFolder);
        var pretrained = Checkpoint.Load(Result.Pretrained.CheckpointFolder);
        var tuned = Checkpoint.Load(Result.Tuned.CheckpointFolder);
        var plan = QuickstartPlan.For(fast: true);
        Assert.Equal(plan.Model.Dim, pretrained.Config.Dim);
        Assert.Equal(pretrained.Config, tuned.Config);
        Assert.Equal(Result.Tokens.Shards.VocabSize, pretrained.Config.VocabSize);
        Assert.Equal(pretrained.Config.VocabSize, Tokenizer.Load(Result.Tuned.CheckpointFolder).VocabSize);
        // Tuning changed the weights it was given.
        Assert.Contains(pretrained.Parameters.Zip(tuned.Parameters), pair => !pair.First.Span.SequenceEqual(pair.Second.Span));
        Assert.True(File.Exists(Path.Combine(Result.IndexFolder, RetrievalIndex.ManifestFile)));
        Assert.True(Result.Index.DocumentsAdded >= plan.Questions);
        Assert.True(File.Exists(Path.Combine(output, Quickstart.MarkerFileName)));
    }

    [Fact]
    public void NumbersAreFiniteAndConsistent()
    {
        var plan = QuickstartPlan.For(fast: true);
        Assert.InRange(Result.Pretrained.Training.StepsDone, 1, plan.PretrainSteps);
        Assert.Equal(Result.Pretrained.Training.StepsDone, Result.Pretrained.TrainCurve.Count);
        Assert.All(Result.Pretrained.TrainCurve, point => Assert.True(float.IsFinite(point.Loss)));
        Assert.True(double.IsFinite(Result.Perplexity.Loss));
        // Perplexity is exp(loss), and better than a uniform guess over the vocabulary.
        Assert.Equal(Math.Exp(Result.Perplexity.Loss), Result.Perplexity.Perplexity, 6);
        Assert.InRange(Result.Perplexity.Perplexity, 1.0, Result.Tokens.Shards.VocabSize * 0.5);
        Assert.InRange(Result.Tuned.Tuning.Steps, 1, plan.TuneSteps);
        Assert.All(Result.Tuned.Curve, point => Assert.True(float.IsFinite(point.Value)));
        Assert.Equal(plan.HeldOut, Result.HeldOut.Count);
        Assert.Equal(plan.HeldOut, Result.Before.Answers.Count);
        Assert.Equal(plan.HeldOut, Result.After.Answers.Count);
        foreach (var scores in new[] { Result.Before, Result.After })
        {
            Assert.InRange(scores.RougeL, 0, 1);
            Assert.InRange(scores.TokenF1, 0, 1);
            // The mean is the mean of the per-answer scores.
            double expected = scores.Answers.Select((answer, i) => Loom.Evaluation.TextMetrics.RougeL(answer, Result.HeldOut[i].Reference)).Average();
            Assert.Equal(expected, scores.RougeL, 9);
        }
        Assert.Equal(plan.Questions, Result.Answers.Count);
        Assert.All(Result.Answers, answer => Assert.NotEmpty(answer.Answer.AllSources));
    }

    [Fact]
    public void ReportHoldsTheNumbersAndPlots()
    {
        Assert.Equal(Path.Combine(run.Root, "run", Quickstart.ReportFileName), Result.ReportPath);
        string html = File.ReadAllText(Result.ReportPath);
        string perplexity = Result.Perplexity.Perplexity.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains($"validation perplexity</td><td>{perplexity}<", html);
        Assert.Contains("ROUGE-L after tuning", html);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(html, "data:image/png;base64,").Count);
        Assert.True(File.Exists(Result.Pretrained.PlotPath));
        Assert.True(File.Exists(Result.Tuned.PlotPath));
        Assert.All(Result.Answers, answer => Assert.Contains(System.Net.WebUtility.HtmlEncode(answer.Question), html));
    }

    [SkippableFact]
    public async Task ReportFitsAt1280PixelsAndExplainsEveryMetric()
    {
        Evaluation.ReportBrowser.RequireChromium();
        var measure = await Evaluation.ReportBrowser.OpenAsync(Result.ReportPath);
        Assert.True(measure.ScrollWidth <= 1280, $"the quickstart report is {measure.ScrollWidth} px wide at a 1280 px viewport");
        Assert.True(measure.MetricRows >= 10);
        Assert.Equal(measure.MetricRows, measure.ExplainedRows);
    }

    [Fact]
    public void ProgressNamesEveryStageInOrder()
    {
        var started = run.Events.Where(e => e.Kind == PipelineEventKind.StageStarted).ToList();
        var completed = run.Events.Where(e => e.Kind == PipelineEventKind.StageCompleted).ToList();
        Assert.Equal(Result.Timings.Select(t => t.Stage), completed.Select(e => e.Stage));
        Assert.Equal(started.Select(e => e.Stage), completed.Select(e => e.Stage));
        Assert.Equal(Enumerable.Range(1, started.Count), started.Select(e => e.StageNumber));
        Assert.Contains("pretrain", started.Select(e => e.Stage));
        Assert.Equal("write the report", completed[^1].Stage);
        // Every message belongs to the stage that was running when it came.
        int current = 0;
        foreach (var e in run.Events)
        {
            if (e.Kind == PipelineEventKind.StageStarted) current = e.StageNumber;
            else Assert.Equal(current, e.StageNumber);
        }
        Assert.Contains(run.Events, e => e.Kind == PipelineEventKind.Message && e.Stage == "pretrain" && e.Message.StartsWith("step ", StringComparison.Ordinal));
    }

    /// <summary>
    /// `loom ask` and `loom serve`'s NAME+rag answer the demo questions with the quickstart's own tuned model and index: the
    /// grounded prompt fits its 256-token context, and the sources given include the member asked about whenever the
    /// quickstart's own grounded answer found it.
    /// </summary>
    [Fact]
    public async Task AskAndServeAnswerTheDemoQuestionsWithItsModelAndIndex()
    {
        string model = Result.Tuned.CheckpointFolder;
        int context = Checkpoint.Load(model).Config.MaxSeq;
        Assert.NotEmpty(Result.Answers);
        foreach (var demo in Result.Answers)
        {
            var (exit, output, error) = CliRun.Run("ask", "--index", Result.IndexFolder, "--model", model, "--threads", "1", demo.Question);
            Assert.True(exit == 0, error);
            Assert.Contains("[1] ", output);
            if (demo.Found) Assert.Contains(demo.ExpectedSource, output);
        }

        using var serve = await Server.ServeProcess.StartAsync("--model", model, "--port", "0", "--threads", "1", "--index", Result.IndexFolder);
        using var http = new HttpClient { BaseAddress = serve.Address, Timeout = TimeSpan.FromSeconds(120) };
        string name = (string)JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
        foreach (var demo in Result.Answers)
        {
            using var response = await http.PostAsJsonAsync("/v1/chat/completions", new JsonObject
            {
                ["model"] = name + "+rag",
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = demo.Question }),
                ["temperature"] = 0,
            });
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
            var sources = body["sources"]!.AsArray();
            Assert.NotEmpty(sources);
            if (demo.Found) Assert.Contains(sources, s => (string)s!["source"]! == demo.ExpectedSource);
            Assert.True((int)body["usage"]!["total_tokens"]! <= context, body["usage"]!.ToJsonString());
        }
    }

    [Fact]
    public async Task BadOptionsNameTheProperty()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            Quickstart.RunAsync(new QuickstartOptions { OutputFolder = Path.Combine(run.Root, "bad"), Fast = true, Minutes = -1 }));
        Assert.Equal("QuickstartOptions.Minutes must be positive, got -1", error.Message);
        Assert.False(Directory.Exists(Path.Combine(run.Root, "bad")));
    }
}
