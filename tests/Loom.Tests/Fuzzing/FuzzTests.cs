using Loom.Fuzzing;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Retrieval;
using Loom.Server;
using Loom.Text;

namespace Loom.Tests.Fuzzing;

/// <summary>
/// The short CI run of the fuzzer (every target, a fixed seed, a few hundred executions each), the engine's own
/// behaviour (replayable inputs, crashes and hangs caught), and one test per crash the fuzzer found: its input is
/// a regression-* seed in tests/fuzz-corpus and the parser now refuses it with one line.
/// </summary>
public class FuzzTests
{
    static readonly string Corpus = Path.Combine(Text.TestData.RepositoryRoot, "tests", "fuzz-corpus");

    public static TheoryData<string> Targets => [.. FuzzTargets.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(Targets))]
    public void ShortRunFindsNoCrashOrHang(string name)
    {
        var target = FuzzTargets.Find(name);
        var seeds = FuzzTargets.Seeds(Corpus, target);
        var report = FuzzRunner.Run(target, seeds, new FuzzOptions { Executions = seeds.Count + 15L * target.Weight, Seed = 18 });
        Assert.True(report.Findings.Count == 0,
            string.Join("\n", report.Findings.Take(5).Select(f => $"{f.Kind} #{f.Execution}: {f.Reason}\n  input: {f.Preview()}")));
        Assert.Equal(report.Executions, report.Accepted + report.Rejected);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void SeedsOtherThanRegressionsAreAccepted(string name)
    {
        var target = FuzzTargets.Find(name);
        var files = Directory.GetFiles(Path.Combine(Corpus, name)).Where(f => !Path.GetFileName(f).StartsWith("regression-", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(files);
        using var scratch = new FuzzScratch();
        foreach (string file in files)
            target.Run(File.ReadAllBytes(file), scratch);
    }

    [Fact]
    public void InputsDependOnlyOnSeedTargetAndExecution()
    {
        var target = FuzzTargets.Find("config");
        var seeds = FuzzTargets.Seeds(Corpus, target);
        var options = new FuzzOptions { Seed = 7, MaxInputBytes = 4096 };
        for (long i = seeds.Count; i < seeds.Count + 50; i++)
        {
            var input = FuzzRunner.Input(target, seeds, options, i);
            Assert.Equal(input, FuzzRunner.Input(target, seeds, options, i));
            Assert.True(input.Length <= 4096);
        }
        var first = Enumerable.Range(seeds.Count, 20).Select(i => FuzzRunner.Input(target, seeds, options, i)).ToList();
        var other = Enumerable.Range(seeds.Count, 20).Select(i => FuzzRunner.Input(target, seeds, options with { Seed = 8 }, i)).ToList();
        Assert.Contains(first.Zip(other), pair => !pair.First.AsSpan().SequenceEqual(pair.Second));
        Assert.Equal(seeds[0], FuzzRunner.Input(target, seeds, options, 0));
    }

    [Fact]
    public void GgufFieldsAreFoundWhereTheReaderReadsThem()
    {
        var seed = File.ReadAllBytes(Path.Combine(Corpus, "gguf", "char-f32.gguf"));
        var fields = FormatFields.Gguf(seed);
        Assert.Equal(new FieldSpan(0, 4), fields[0]);   // magic
        Assert.Equal(new FieldSpan(4, 4), fields[1]);   // version
        Assert.Equal(new FieldSpan(8, 8), fields[2]);   // tensor count
        Assert.Equal(new FieldSpan(16, 8), fields[3]);  // key count
        Assert.Equal(new FieldSpan(24, 8), fields[4]);  // length of the first key
        using var reader = GgufReader.Open(Path.Combine(Corpus, "gguf", "char-f32.gguf"));
        // Each tensor ends with a 4-byte type and an 8-byte offset; the last one ends where the header does.
        Assert.Equal(reader.DataOffset, (fields[^1].Offset + 8 + reader.Alignment - 1) / reader.Alignment * reader.Alignment);
    }

    [Fact]
    public void CrashesAndUnexpectedMessagesAreFindingsAndRefusalsAreNot()
    {
        var target = new FuzzTarget
        {
            Name = "synthetic",
            Description = "throws by the first byte",
            Rejections = [typeof(FormatException)],
            Run = (input, _) =>
            {
                switch (input.Length == 0 ? 0 : input[0] % 4)
                {
                    case 1: throw new FormatException("one line");
                    case 2: throw new FormatException("two\nlines");
                    case 3: throw new IndexOutOfRangeException();
                }
            },
        };
        byte[][] seeds = [[0], [1], [2], [3]];
        string crashes = Directory.CreateTempSubdirectory("loom-fuzz-test-").FullName;
        try
        {
            var report = FuzzRunner.Run(target, seeds, new FuzzOptions { Executions = 4, CrashFolder = crashes });
            Assert.Equal(1, report.Accepted);
            Assert.Equal(1, report.Rejected);
            Assert.Equal(2, report.Crashes);
            Assert.Contains(report.Findings, f => f.Reason.Contains("multi-line") && f.Input.SequenceEqual(new byte[] { 2 }));
            Assert.Contains(report.Findings, f => f.Reason.StartsWith("IndexOutOfRangeException") && f.SavedPath is not null && File.ReadAllBytes(f.SavedPath).SequenceEqual(new byte[] { 3 }));
        }
        finally
        {
            Directory.Delete(crashes, recursive: true);
        }
    }

    [Fact]
    public void AnExecutionThatNeverReturnsIsAHangAndTheRunGoesOn()
    {
        using var never = new ManualResetEventSlim(false);
        var target = new FuzzTarget
        {
            Name = "blocking",
            Description = "blocks on a zero byte",
            Run = (input, _) =>
            {
                if (input[0] == 0) never.Wait();
            },
        };
        var report = FuzzRunner.Run(target, [[1], [0], [1], [1]], new FuzzOptions { Executions = 4, StuckLimit = TimeSpan.FromMilliseconds(300) });
        var hang = Assert.Single(report.Findings);
        Assert.Equal("hang", hang.Kind);
        Assert.Equal(1, hang.Execution);
        Assert.Equal(3, report.Accepted);
    }

    // One test per crash the fuzzer found; each input is also a seed, so the short run mutates it further.

    static string Regression(string target, string file) => Path.Combine(Corpus, target, file);

    static T OneLine<T>(Action action) where T : Exception
    {
        var error = Assert.ThrowsAny<T>(action);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
        return error;
    }

    [Theory]
    [InlineData("request-chat", "regression-duplicate-field.json", "Duplicate")]
    [InlineData("request-completion", "regression-multiline-message.json", "malformed JSON")]
    [InlineData("request-chat", "regression-multiline-role.json", "messages[0].role 'us ' is not supported")]
    public void RequestBodiesAreOneLine400s(string target, string file, string expected)
    {
        var error = OneLine<ApiException>(() => OpenAiProtocol.ParseCompletion(OpenAiProtocol.ParseObject(File.ReadAllBytes(Regression(target, file))), chat: target == "request-chat"));
        Assert.Equal(400, error.Status);
        Assert.Contains(expected, error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("regression-duplicate-field.json", "vocab_size")]
    [InlineData("regression-surrogate-name.json", "field name is not valid text")]
    [InlineData("regression-surrogate-value.json", "model_type is not valid text")]
    [InlineData("regression-surrogate-int.json", "field intermediate_size must be an integer, got a string that is not valid text")]
    [InlineData("regression-multiline-model-type.json", "model_type is 'lla ullud800ma', expected 'llama'")]
    public void ConfigJsonCrashesAreOneLineFormatErrors(string file, string expected) =>
        Assert.Contains(expected, OneLine<FormatException>(() => LlamaConfig.Load(Regression("config", file))).Message);

    [Theory]
    [InlineData("regression-invalid-utf8.safetensors", "not valid UTF-8")]
    [InlineData("regression-surrogate.safetensors", "unpaired UTF-16 surrogate")]
    [InlineData("regression-multiline-message.safetensors", "not valid JSON")]
    public void SafetensorsCrashesAreOneLineErrors(string file, string expected) =>
        Assert.Contains(expected, OneLine<InvalidDataException>(() => SafeTensors.Read(Regression("safetensors", file))).Message);

    [Theory]
    [InlineData("regression-id-range.json", "is beyond the")]
    [InlineData("regression-added-token-null-id.json", "added_tokens[0] needs a string \"content\" and an integer \"id\"")]
    [InlineData("regression-added-token-no-content.json", "added_tokens[0] needs")]
    [InlineData("regression-surrogate.json", "unpaired UTF-16 surrogate")]
    [InlineData("regression-invalid-utf8.json", "not valid UTF-8")]
    [InlineData("regression-multiline-vocab-key.json", "is not an integer id")]
    [InlineData("regression-empty-merge.json", "model.merges[0]")]
    [InlineData("regression-multiline-message.json", "not valid JSON")]
    [InlineData("regression-empty-token.json", "only byte-level BPE and character vocabularies are supported")]
    [InlineData("regression-multiline-token.json", "vocabulary: token")]
    public void TokenizerJsonCrashesAreOneLineErrors(string file, string expected) =>
        Assert.Contains(expected, OneLine<InvalidDataException>(() => Tokenizer.Load(Regression("tokenizer", file))).Message);

    [Theory]
    [InlineData("regression-tensor-offset.gguf", "past the end of the file")]
    [InlineData("regression-block-count.gguf", "'llama.block_count' 1000000 needs 9000000 block tensors")]
    [InlineData("regression-multiline-name.gguf", "unknown architecture")]
    public void GgufCrashesAreOneLineErrors(string file, string expected) =>
        Assert.Contains(expected, OneLine<GgufException>(() => LlamaGguf.Import(Regression("gguf", file))).Message);

    [Fact]
    public void AJsonDocumentWithALoneSurrogateEscapeIsSkippedWithAReason()
    {
        var result = FileReader.Read(Regression("json", "regression-surrogate.json"), new Dictionary<string, string>());
        Assert.Null(result.Document);
        Assert.Equal("malformed json: a string is not valid text (an unpaired UTF-16 surrogate escape)", result.SkipReason);
    }

    [Fact]
    public void AFeedbackLineWhoseReasonQuotesANewlineIsSkippedWithOneLine()
    {
        string path = Regression("feedback", "regression-multiline-reason.jsonl");
        var skipped = Assert.Single(FeedbackDatasets.Read(path).Skipped);
        Assert.EndsWith("regression-multiline-reason.jsonl:1: messages[1].role 'assist ant' is not system, user or assistant", skipped);
        OneLine<FormatException>(() => FeedbackDatasets.Read(path, strict: true));
    }

    [Theory]
    [InlineData("logs", "regression-layout-backtracking.log")]
    [InlineData("gguf", "regression-block-count.gguf")]
    public void InputsThatHungNowFinishWithinTheHangLimit(string name, string file)
    {
        var report = FuzzRunner.Run(FuzzTargets.Find(name), [File.ReadAllBytes(Regression(name, file))], new FuzzOptions { Executions = 1 });
        Assert.Empty(report.Findings);
    }
}
