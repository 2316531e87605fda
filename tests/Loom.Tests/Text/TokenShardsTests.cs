using System.Text;
using Loom.Text;

namespace Loom.Tests.Text;

public sealed class TokenShardsTests : IDisposable
{
    private readonly string directory = TestData.NewTemporaryDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void CharShakespeareSplitsLikeNanoGpt()
    {
        var output = Path.Combine(directory, "char");
        var info = CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "char", output));
        Assert.Equal(1_115_394, info.TokenCount);
        Assert.Equal(1_003_854, info.TrainTokens); // nanoGPT shakespeare_char: train has 1,003,854 tokens, val 111,540
        Assert.Equal("uint16", info.DataType);
        Assert.Null(info.DocumentSeparator);

        using var shards = TokenShards.Open(output);
        Assert.Equal(65, shards.Tokenizer.VocabSize);
        Assert.Equal(1_003_854, shards.Train.Length);
        Assert.Equal(111_540, shards.Validation.Length);
        var text = File.ReadAllText(TestData.TinyShakespeare);
        var train = new int[shards.Train.Length];
        shards.Train.Read(0, train);
        var validation = new int[shards.Validation.Length];
        shards.Validation.Read(0, validation);
        Assert.Equal(text[..1_003_854], shards.Tokenizer.Decode(train));
        Assert.Equal(text[1_003_854..], shards.Tokenizer.Decode(validation));
        Assert.Equal(46, shards.Train[text.IndexOf('h')]);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void BpeShardsEqualWholeTextEncodingAcrossChunkBoundaries()
    {
        var output = Path.Combine(directory, "bpe");
        var info = CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "bpe:512", output) { ValidationFraction = 0.25 });
        using var shards = TokenShards.Open(output);
        var tokenizer = shards.Tokenizer;
        Assert.Equal(512, tokenizer.VocabSize);
        // The file is longer than one 1M-char chunk: chunked encoding must equal encoding the whole text.
        var expected = tokenizer.Encode(File.ReadAllText(TestData.TinyShakespeare)).Append(tokenizer.EosId!.Value).ToArray();
        Assert.Equal(expected.Length, info.TokenCount);
        Assert.Equal((long)(expected.Length * 0.75), shards.Train.Length);
        var all = new int[info.TokenCount];
        shards.Train.Read(0, all.AsSpan(0, (int)shards.Train.Length));
        shards.Validation.Read(0, all.AsSpan((int)shards.Train.Length));
        Assert.Equal(expected, all);
    }

    [Fact]
    public void FolderCorpusSkipsBinaryAndHiddenFilesAndSeparatesDocuments()
    {
        var corpus = Path.Combine(directory, "corpus");
        Directory.CreateDirectory(Path.Combine(corpus, "sub"));
        Directory.CreateDirectory(Path.Combine(corpus, ".git"));
        File.WriteAllText(Path.Combine(corpus, "a.md"), "# Title\n\nSome *markdown* text.\n");
        File.WriteAllText(Path.Combine(corpus, "sub", "b.cs"), "public static class B { }\n");
        File.WriteAllText(Path.Combine(corpus, "sub", "c.log"), "2024-01-01 12:00:00 INFO started\n");
        File.WriteAllBytes(Path.Combine(corpus, "image.png"), [0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 13]);
        File.WriteAllBytes(Path.Combine(corpus, "latin1.txt"), [0x63, 0x61, 0x66, 0xE9, 0x20, 0x6F, 0x6B]);
        File.WriteAllText(Path.Combine(corpus, ".git", "HEAD"), "ref: refs/heads/main\n");
        var tokenizerDirectory = Path.Combine(directory, "tokenizer");
        var tokenizer = BpeTrainer.Train([File.ReadAllText(TestData.TinyShakespeare)[..100_000]], 300);
        tokenizer.Save(tokenizerDirectory);

        var output = Path.Combine(directory, "tokens");
        var info = CorpusPreparer.Prepare(new PrepareOptions(corpus, tokenizerDirectory, output) { ValidationFraction = 0 });
        Assert.Equal(["a.md", "b.cs", "c.log"], info.Files.Select(file => Path.GetFileName(file.Path)));
        Assert.Equal(["image.png", "latin1.txt"], info.Skipped.Select(file => Path.GetFileName(file.Path)).Order());
        Assert.Contains(info.Skipped, file => file.Reason.Contains("binary", StringComparison.Ordinal));
        Assert.Equal(3, info.Documents);

        using var shards = TokenShards.Open(output);
        Assert.Equal(0, shards.Validation.Length);
        var ids = new int[shards.Train.Length];
        shards.Train.Read(0, ids);
        var expected = new StringBuilder();
        foreach (var file in info.Files)
        {
            var text = File.ReadAllText(file.Path);
            Assert.Equal(tokenizer.Encode(text).Length + 1, file.Tokens);
            expected.Append(text).Append(SpecialTokens.EndOfText);
        }
        Assert.Equal(expected.ToString(), shards.Tokenizer.Decode(ids));
        Assert.Equal(3, ids.Count(id => id == tokenizer.EosId));
    }

    [Fact]
    public void TokenizerSampleOfAHugeCorpusTakesEvenlySpacedBlocks()
    {
        var corpus = TextCorpus.Open(TestData.TinyShakespeare);
        var whole = File.ReadAllBytes(TestData.TinyShakespeare);
        Assert.Equal(Encoding.UTF8.GetString(whole), string.Concat(corpus.Sample(budgetBytes: 2 << 20)));
        // 1.1 MB is two 1 MB blocks; a budget of about half keeps only the second.
        var sample = Assert.Single(corpus.Sample(budgetBytes: 600_000));
        Assert.Equal(Encoding.UTF8.GetString(whole, 1 << 20, whole.Length - (1 << 20)), sample);

        var output = Path.Combine(directory, "sampled");
        var info = CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "bpe:300", output) { TokenizerSampleBytes = 600_000 });
        using var shards = TokenShards.Open(output);
        Assert.Equal(300, shards.Tokenizer.VocabSize);
        Assert.True(info.TokenCount > 300_000);
    }

    [Fact]
    public void GlobsSelectMatchingFiles()
    {
        var corpus = Path.Combine(directory, "logs");
        Directory.CreateDirectory(Path.Combine(corpus, "deep"));
        File.WriteAllText(Path.Combine(corpus, "app-1.log"), "one\n");
        File.WriteAllText(Path.Combine(corpus, "app-2.log"), "two\n");
        File.WriteAllText(Path.Combine(corpus, "notes.txt"), "three\n");
        File.WriteAllText(Path.Combine(corpus, "deep", "app-3.log"), "four\n");
        Assert.Equal(["app-1.log", "app-2.log"], TextCorpus.Open(Path.Combine(corpus, "app-*.log")).Files.Select(Path.GetFileName));
        Assert.Equal(["app-1.log", "app-2.log", "app-3.log"], TextCorpus.Open(Path.Combine(corpus, "**", "*.log")).Files.Select(Path.GetFileName).Order());
        Assert.Throws<FileNotFoundException>(() => TextCorpus.Open(Path.Combine(corpus, "*.csv")));
    }

    [Fact]
    public void LargeVocabulariesUseInt32Tokens()
    {
        // 70,000 distinct characters: CJK ideographs and Hangul in the basic plane, then the supplementary plane.
        var builder = new StringBuilder();
        var codePoints = Enumerable.Range(0x4E00, 0x9FFF - 0x4E00 + 1)
            .Concat(Enumerable.Range(0xAC00, 0xD7A3 - 0xAC00 + 1))
            .Concat(Enumerable.Range(0x20000, 70_000));
        foreach (var codePoint in codePoints.Take(70_000))
        {
            builder.Append(char.ConvertFromUtf32(codePoint));
            if (builder.Length % 80 == 0)
            {
                builder.Append('\n');
            }
        }
        var corpus = Path.Combine(directory, "wide.txt");
        File.WriteAllText(corpus, builder.ToString());
        var output = Path.Combine(directory, "wide");
        var info = CorpusPreparer.Prepare(new PrepareOptions(corpus, "char", output));
        Assert.Equal("int32", info.DataType);
        Assert.True(info.VocabSize > 65536);
        using var shards = TokenShards.Open(output);
        var ids = new int[shards.Train.Length + shards.Validation.Length];
        shards.Train.Read(0, ids.AsSpan(0, (int)shards.Train.Length));
        shards.Validation.Read(0, ids.AsSpan((int)shards.Train.Length));
        Assert.Equal(builder.ToString(), shards.Tokenizer.Decode(ids));
        Assert.Contains(ids, id => id > 65535);
    }

    [Fact]
    public void ReadsAreThreadSafeAndBoundsChecked()
    {
        var output = Path.Combine(directory, "char");
        CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "char", output));
        using var shards = TokenShards.Open(output);
        var reference = new int[shards.Train.Length];
        shards.Train.Read(0, reference);
        Parallel.For(0, 2000, i =>
        {
            var random = new Random(i);
            var window = new int[257];
            var offset = random.NextInt64(shards.Train.Length - window.Length);
            shards.Train.Read(offset, window);
            Assert.True(window.AsSpan().SequenceEqual(reference.AsSpan((int)offset, window.Length)));
        });
        Assert.Throws<ArgumentOutOfRangeException>(() => shards.Train.Read(shards.Train.Length - 1, new int[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => shards.Validation.Read(-1, new int[1]));
    }

    [Fact]
    public void OpenNamesTheBrokenFile()
    {
        var output = Path.Combine(directory, "char");
        CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "char", output));
        using (var stream = new FileStream(Path.Combine(output, TokenShards.TokenFileName), FileMode.Open))
        {
            stream.SetLength(stream.Length - 2);
        }
        var error = Assert.Throws<InvalidDataException>(() => TokenShards.Open(output));
        Assert.Contains(TokenShards.TokenFileName, error.Message);
        var missing = Assert.Throws<FileNotFoundException>(() => TokenShards.Open(directory));
        Assert.Contains(TokenShards.InfoFileName, missing.Message);
    }

    [Theory]
    [InlineData("../tokens.bin")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    public void TokenFileMustBeAFileNameBesideTheInfo(string tokenFile)
    {
        var output = Path.Combine(directory, "char");
        CorpusPreparer.Prepare(new PrepareOptions(TestData.TinyShakespeare, "char", output));
        string infoPath = Path.Combine(output, TokenShards.InfoFileName);
        var info = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(infoPath))!.AsObject();
        info["token_file"] = tokenFile;
        File.WriteAllText(infoPath, info.ToJsonString());
        var error = Assert.Throws<InvalidDataException>(() => TokenShards.Open(output));
        Assert.Contains("token_file", error.Message);
        Assert.Contains(infoPath, error.Message);
    }
}
