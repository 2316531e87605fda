using Loom.Cli;
using Loom.Models;
using Loom.Retrieval;
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
    readonly int savedThreads = WorkerPool.ThreadCount;

    public void Dispose()
    {
        WorkerPool.ThreadCount = savedThreads;
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
        var pretrained = Checkpoint.Load(Path.Combine(output, QuickstartRun.PretrainFolderName, "checkpoint"));
        var tuned = Checkpoint.Load(Path.Combine(output, QuickstartRun.TunedFolderName, "checkpoint"));
        Assert.Equal(pretrained.Config.Dim, tuned.Config.Dim);
        Assert.True(File.Exists(Path.Combine(output, QuickstartRun.TunedFolderName, "checkpoint", Tokenizer.FileName)));
        Assert.True(File.Exists(Path.Combine(output, QuickstartRun.IndexFolderName, RetrievalIndex.ManifestFile)));
        Assert.True(File.Exists(Path.Combine(output, "loss.png")));

        // The answers list their sources (member ids such as "M:System..." or "T:...").
        Assert.Matches(@"Sources[^\n]*:\s*\n\s*\[1\] [A-Z]:\S+", run.Out.Replace("\r", ""));
        var questions = run.Out.Split('\n').Where(line => line.StartsWith("Q: What does ", StringComparison.Ordinal)).ToList();
        Assert.Equal(QuickstartPlan.For(fast: true).Questions, questions.Count);

        // The report: evaluation table with real numbers, both samples, the plots embedded, and its path printed.
        string reportPath = Path.Combine(output, QuickstartRun.ReportFileName);
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
        Assert.True(File.Exists(Path.Combine(output, QuickstartRun.MarkerFileName)));
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
        Assert.Equal("mine", File.ReadAllText(Path.Combine(foreign, "notes.txt")));

        var badMinutes = Loom("quickstart", "--fast", "--out", Path.Combine(root, "a"), "--minutes", "0");
        Assert.NotEqual(0, badMinutes.Exit);
        Assert.Contains("--minutes", badMinutes.Error);

        var badCorpus = Loom("quickstart", "--fast", "--out", Path.Combine(root, "b"), "--corpus", Path.Combine(root, "missing.txt"));
        Assert.NotEqual(0, badCorpus.Exit);
        Assert.Single(badCorpus.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("missing.txt", badCorpus.Error);
    }
}
