using Loom.Evaluation;
using Loom.Models;
using Loom.Text;

using Loom.Cli.Commands;

namespace Loom.Tests.Evaluation;

/// <summary>`loom eval --task` end to end: results JSON, the HTML report, and the gate against a baseline run.</summary>
public sealed class EvalCommandTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-eval-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    const string Text = "to be or not to be that is the question whether tis nobler in the mind to suffer the slings and arrows of outrageous fortune ";

    string SaveModel(string name, float scale)
    {
        var tokenizer = CharTokenizer.Train([Text]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 16 };
        var model = new Transformer(config, 7);
        foreach (var p in model.Parameters)
            if (p.Rank == 2) for (int i = 0; i < p.Length; i++) p[i] *= scale;
        string folder = Path.Combine(root, name);
        Checkpoint.Save(folder, model, tokenizer.Save);
        return folder;
    }

    string WriteTasks()
    {
        File.WriteAllText(Path.Combine(root, "corpus.txt"), Text + Text);
        File.WriteAllText(Path.Combine(root, "perplexity.json"),
            """{"name": "corpus", "kind": "perplexity", "data": "corpus.txt", "tolerances": {"bits_per_byte": 0.05}}""");
        File.WriteAllLines(Path.Combine(root, "choices.jsonl"),
        [
            """{"context": "to be or not to", "choices": ["be", "mf", "ww"], "answer": 0}""",
            """{"context": "the slings and", "choices": ["arrows", "dd"], "answer": 0}""",
        ]);
        File.WriteAllText(Path.Combine(root, "choices.json"), """{"name": "choices", "kind": "multiple_choice", "data": "choices.jsonl"}""");
        return root;
    }

    [Fact]
    public void DamagedCheckpointFailsTheGateNamingTheMetric()
    {
        string good = SaveModel("good", 1f);
        string damaged = SaveModel("damaged", 25f); // weights scaled: confident, wrong predictions
        WriteTasks();
        string baseline = Path.Combine(root, "baseline.json");
        string perplexityTask = Path.Combine(root, "perplexity.json"), choicesTask = Path.Combine(root, "choices.json");

        var first = CliRun.Run("eval", "--task", perplexityTask, "--task", choicesTask, "--model", good, "--out", baseline, "--threads", "1");
        Assert.True(first.ExitCode == 0, first.Error);
        var run = EvalRun.Load(baseline);
        Assert.Equal(ModelVersion.Of(good).Hash, run.Model.Hash);
        var corpus = Assert.Single(run.Tasks, t => t.Name == "corpus");
        Assert.Equal(["word_perplexity", "byte_perplexity", "bits_per_byte"], corpus.Metrics.Keys);
        var choices = Assert.Single(run.Tasks, t => t.Name == "choices");
        Assert.Equal(2, choices.Metrics["acc"].N);
        Assert.NotNull(choices.Metrics["acc"].Low);

        // The same model against its own baseline passes; the damaged one fails on bits_per_byte (task tolerance) and,
        // with --fail-under, on the perplexities too.
        var same = CliRun.Run("eval", "--task", perplexityTask, "--model", good, "--baseline", baseline, "--threads", "1");
        Assert.True(same.ExitCode == 0, same.Error);
        string html = Path.Combine(root, "report.html");
        var worse = CliRun.Run("eval", "--task", perplexityTask, "--model", damaged, "--baseline", baseline, "--html", html, "--threads", "1");
        Assert.Equal(EvalCommand.GateFailed, worse.ExitCode);
        Assert.Contains("corpus/bits_per_byte", worse.Error);
        Assert.DoesNotContain("word_perplexity", worse.Error);
        Assert.Contains("baseline", File.ReadAllText(html));
        var strict = CliRun.Run("eval", "--task", perplexityTask, "--model", damaged, "--baseline", baseline, "--fail-under", "word_perplexity=0.5", "--threads", "1");
        Assert.Equal(EvalCommand.GateFailed, strict.ExitCode);
        Assert.Contains("corpus/word_perplexity", strict.Error);

        // A chain of baselines (oldest first): the gate compares with the last, the report plots every metric across all of them.
        string second = Path.Combine(root, "second.json"), chained = Path.Combine(root, "chain.html");
        Assert.Equal(0, CliRun.Run("eval", "--task", perplexityTask, "--model", good, "--out", second, "--threads", "1").ExitCode);
        var chain = CliRun.Run("eval", "--task", perplexityTask, "--model", damaged, "--baseline", baseline, "--baseline", second, "--html", chained, "--threads", "1");
        Assert.Equal(EvalCommand.GateFailed, chain.ExitCode);
        string report = File.ReadAllText(chained);
        Assert.Contains("Trends across 3 versions", report);
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(report, "<figcaption>corpus: \\w+ across versions \\(v1 [0-9a-f]{8}, v2 [0-9a-f]{8}, v3 [0-9a-f]{8}\\)").Count);
    }

    [Fact]
    public void BadTaskFilesAreOneLineErrorsNamingTheField()
    {
        string good = SaveModel("good", 1f);
        File.WriteAllText(Path.Combine(root, "bad.json"), """{"name": "x", "kind": "perplexity", "data": "c.txt", "metrics": ["acc"]}""");
        var result = CliRun.Run("eval", "--task", Path.Combine(root, "bad.json"), "--model", good);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("metric \"acc\" is not one of perplexity's", result.Error);
        Assert.Single(result.Error.Trim().Split('\n'));
        File.WriteAllText(Path.Combine(root, "bad2.json"), """{"name": "x", "kind": "perplexity", "data": "c.txt", "options": {"max_items": 0}}""");
        Assert.Contains("options.max_items must be positive", CliRun.Run("eval", "--task", Path.Combine(root, "bad2.json"), "--model", good).Error);
        File.WriteAllText(Path.Combine(root, "bad3.json"), """{"name": "x", "kind": "essay", "data": "c.txt"}""");
        Assert.Contains("\"kind\" is \"essay\"", CliRun.Run("eval", "--task", Path.Combine(root, "bad3.json"), "--model", good).Error);
        Assert.Contains("unknown metric \"nope\"", CliRun.Run("eval", "--task", Path.Combine(root, "bad3.json"), "--model", good, "--baseline", "b.json", "--fail-under", "nope=1").Error);
    }
}
