using Loom.Cli;
using Loom.Text;

namespace Loom.Tests.Text;

[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;

[Collection(nameof(ConsoleCollection))]
public sealed class TextCommandTests : IDisposable
{
    private readonly string directory = TestData.NewTemporaryDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args) => CliRun.Run(args);

    private string WriteCorpus(string name, string text)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string[] EntriesOf(string folder) => [.. Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order()!];

    [Fact]
    public void TokenizerTrainWritesALoadableTokenizer()
    {
        var corpus = WriteCorpus("small.txt", File.ReadAllText(TestData.TinyShakespeare)[..50_000]);
        var output = Path.Combine(directory, "tok");
        var (code, stdout, stderr) = Run("tokenizer", "train", "--corpus", corpus, "--vocab", "400", "--out", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("400 ids", stdout);
        var tokenizer = Assert.IsType<ByteLevelBpeTokenizer>(Tokenizer.Load(output));
        Assert.Equal(400, tokenizer.VocabSize);

        (code, _, stderr) = Run("tokenizer", "train", "--corpus", corpus, "--kind", "char", "--out", Path.Combine(directory, "chars"));
        Assert.True(code == 0, stderr);
        Assert.IsType<CharTokenizer>(Tokenizer.Load(Path.Combine(directory, "chars")));
    }

    [Fact]
    public void PrepareWritesATokenFolder()
    {
        var corpus = WriteCorpus("small.txt", File.ReadAllText(TestData.TinyShakespeare)[..20_000]);
        var output = Path.Combine(directory, "tokens");
        var (code, stdout, stderr) = Run("prepare", "--corpus", corpus, "--tokenizer", "char", "--out", output, "--val-fraction", "0.2");
        Assert.True(code == 0, stderr);
        Assert.Contains("20,000 tokens", stdout);
        Assert.Equal([Tokenizer.FileName, TokenShards.TokenFileName, TokenShards.InfoFileName], EntriesOf(output).Order());
        using (var shards = TokenShards.Open(output))
        {
            Assert.Equal(16_000, shards.Train.Length);
        }
        // Running again replaces the folder.
        (code, _, stderr) = Run("prepare", "--corpus", corpus, "--tokenizer", "bpe:300", "--out", output);
        Assert.True(code == 0, stderr);
        using var again = TokenShards.Open(output);
        Assert.Equal(300, again.Tokenizer.VocabSize);
        Assert.Equal(["small.txt", "tokens"], EntriesOf(directory));
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("empty")]
    [InlineData("binary")]
    [InlineData("badfraction")]
    [InlineData("badtokenizer")]
    [InlineData("outisfolder")]
    public void BadInputGivesOneLineErrorAndNoOutput(string problem)
    {
        var output = Path.Combine(directory, "out");
        var corpus = Path.Combine(directory, "corpus");
        var tokenizer = "char";
        var fraction = "0.1";
        var expected = corpus;
        switch (problem)
        {
            case "missing":
                break;
            case "empty":
                Directory.CreateDirectory(corpus);
                File.WriteAllText(Path.Combine(corpus, "empty.txt"), "");
                expected = "empty";
                break;
            case "binary":
                Directory.CreateDirectory(corpus);
                File.WriteAllBytes(Path.Combine(corpus, "blob.bin"), [1, 2, 0, 3]);
                expected = "blob.bin: binary";
                break;
            case "badfraction":
                corpus = WriteCorpus("ok.txt", "hello\n");
                fraction = "1.5";
                expected = "--val-fraction";
                break;
            case "badtokenizer":
                corpus = WriteCorpus("ok.txt", "hello\n");
                tokenizer = Path.Combine(directory, "no-such-tokenizer");
                expected = tokenizer;
                break;
            case "outisfolder":
                corpus = WriteCorpus("ok.txt", "hello\n");
                Directory.CreateDirectory(output);
                File.WriteAllText(Path.Combine(output, "precious.txt"), "keep me");
                expected = output;
                break;
        }
        var before = EntriesOf(directory);
        var (code, stdout, stderr) = Run("prepare", "--corpus", corpus, "--tokenizer", tokenizer, "--out", output, "--val-fraction", fraction);
        Assert.NotEqual(0, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
        Assert.Equal(before, EntriesOf(directory));
        if (problem == "outisfolder")
        {
            Assert.Equal("keep me", File.ReadAllText(Path.Combine(output, "precious.txt")));
        }
    }

    [Fact]
    public void TokenizerTrainOnMissingCorpusFails()
    {
        var corpus = Path.Combine(directory, "nothing-here.txt");
        var (code, _, stderr) = Run("tokenizer", "train", "--corpus", corpus, "--vocab", "300", "--out", Path.Combine(directory, "tok"));
        Assert.Equal(1, code);
        Assert.Contains(corpus, stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory));
    }
}
