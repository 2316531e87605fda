using Loom.Models;
using Loom.Text;
using AtomicFile = Loom.IO.AtomicFile;

namespace Loom.Tests.Training;

/// <summary>The `loom pretrain` and `loom eval perplexity` commands, run in-process as a user would.</summary>
[Collection(SerialTrainingCollection.Name)]
public sealed class PretrainCommandTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-cli-").FullName;

    public void Dispose()
    {
        AtomicFile.ResetCreateStream();
        Directory.Delete(root, recursive: true);
    }

    static (int Exit, string Out, string Error) Loom(params string[] args) => CliRun.Run(args);

    static void AssertOneLineError((int Exit, string Out, string Error) result, string expected)
    {
        Assert.NotEqual(0, result.Exit);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got: {result.Error}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    /// <summary>Every command that computes declares the same --threads and refuses 0 in one line before doing any work.</summary>
    [Theory]
    [InlineData("pretrain --data nowhere --out nowhere")]
    [InlineData("eval perplexity --model nowhere --data nowhere")]
    [InlineData("finetune sft --model nowhere --out nowhere --data nowhere")]
    [InlineData("finetune sample --model nowhere --prompt hi")]
    [InlineData("generate hi --model nowhere")]
    [InlineData("chat --model nowhere")]
    [InlineData("ask --index nowhere question")]
    [InlineData("serve --model nowhere")]
    [InlineData("quickstart --out nowhere")]
    public void EveryCommandRefusesZeroThreads(string command)
    {
        var result = Loom([.. command.Split(' '), "--threads", "0"]);
        Assert.NotEqual(0, result.Exit);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got: {result.Error}");
        Assert.Contains("--threads must be positive, got 0", lines[0]);
    }

    string[] Tiny(string data, string output, params string[] more) =>
        ["pretrain", "--data", data, "--out", output, "--dim", "32", "--layers", "1", "--heads", "2", "--block", "16",
         "--batch", "2", "--steps", "6", "--warmup", "2", "--eval-every", "3", "--eval-batches", "1", "--save-every", "3", "--threads", "1", .. more];

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void TrainsEvaluatesAndWritesItsFiles()
    {
        string data = TrainingData.Prepare(root, 4000);
        string output = Path.Combine(root, "run");
        var run = Loom(Tiny(data, output));
        Assert.True(run.Exit == 0, run.Error);
        Assert.Contains("val loss", run.Out);
        Assert.Contains("MFU", run.Out);
        Assert.Equal(6 + 2, File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Length);
        var png = File.ReadAllBytes(Path.Combine(output, "loss.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "training_state/state.json", "training_state/optimizer.safetensors" })
            Assert.True(File.Exists(Path.Combine(output, "checkpoint", file)), file);

        var eval = Loom("eval", "perplexity", "--model", output, "--data", Path.Combine(root, "corpus.txt"), "--threads", "1");
        Assert.True(eval.Exit == 0, eval.Error);
        Assert.Contains("perplexity", eval.Out);
        Assert.Contains("bits/byte", eval.Out);
        var shardsEval = Loom("eval", "perplexity", "--model", output, "--data", data, "--threads", "1");
        Assert.True(shardsEval.Exit == 0, shardsEval.Error);

        // --resume keeps the checkpoint's architecture: a flag that differs is refused, a matching one is fine.
        string[] Changed(string flag, string value) => [.. Tiny(data, output).Select((arg, i) => i > 0 && Tiny(data, output)[i - 1] == flag ? value : arg), "--resume"];
        AssertOneLineError(Loom(Changed("--dim", "64")), "--dim 64 differs from the checkpoint's 32");
        AssertOneLineError(Loom(Changed("--block", "8")), "--block 8 differs from the checkpoint's 16");

        // A checkpoint whose tokenizer has more tokens than its vocab_size is refused by both commands.
        new CharTokenizer(Enumerable.Range(0x4E00, 400).Select(c => new System.Text.Rune(c))).Save(Path.Combine(output, "checkpoint"));
        AssertOneLineError(Loom("eval", "perplexity", "--model", output, "--data", data), "tokenizer.json");
        AssertOneLineError(Loom([.. Tiny(data, output), "--resume"]), "tokenizer.json");
    }

    [Fact]
    public void BadInputGivesOneLineErrors()
    {
        string missing = Path.Combine(root, "nope");
        AssertOneLineError(Loom(Tiny(missing, Path.Combine(root, "o1"))), missing);

        string empty = Directory.CreateDirectory(Path.Combine(root, "empty")).FullName;
        AssertOneLineError(Loom(Tiny(empty, Path.Combine(root, "o2"))), "tokens.json");

        string small = Path.Combine(root, "small");
        File.WriteAllText(Path.Combine(root, "small.txt"), "to be or not");
        CorpusPreparer.Prepare(new PrepareOptions(Path.Combine(root, "small.txt"), "char", small));
        AssertOneLineError(Loom(Tiny(small, Path.Combine(root, "o3"))), "fewer than block size");

        string data = TrainingData.Prepare(root, 4000);
        AssertOneLineError(Loom("pretrain", "--data", data, "--out", Path.Combine(root, "o4"), "--preset", "enormous"), "unknown preset 'enormous'");
        AssertOneLineError(Loom("pretrain", "--data", data, "--out", Path.Combine(root, "o5"), "--dim", "32", "--heads", "3"), "Dim (32) must be a multiple of Heads (3)");
        AssertOneLineError(Loom([.. Tiny(data, Path.Combine(root, "o6")), "--resume"]), "no checkpoint to resume from");
        AssertOneLineError(Loom("eval", "perplexity", "--model", Path.Combine(root, "o7"), "--data", data), "checkpoint folder not found");
        AssertOneLineError(Loom("pretrain", "--data", data, "--out", Path.Combine(root, "o8"), "--batch", "x"), "'x'");
        AssertOneLineError(Loom("pretrain", "--out", Path.Combine(root, "o9")), "--data");
    }

    [Fact]
    public void FullDiskWhileSavingLeavesNoPartialCheckpoint()
    {
        string data = TrainingData.Prepare(root, 4000);
        string output = Path.Combine(root, "run");
        AtomicFile.CreateStream = path => new Models.CheckpointTests.FullDiskStream(path, 4096);
        AssertOneLineError(Loom(Tiny(data, output)), "No space left on device");
        Assert.False(Directory.Exists(Path.Combine(output, "checkpoint")));
        Assert.Empty(Directory.GetDirectories(output));
    }
}
