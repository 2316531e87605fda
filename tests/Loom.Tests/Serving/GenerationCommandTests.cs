using Loom.Cli;
using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Tests.Text;
using Loom.Text;

namespace Loom.Tests.Serving;

/// <summary><c>loom generate</c> and <c>loom chat</c> end to end, on checkpoints saved by the test.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class GenerationCommandTests : IDisposable
{
    readonly string directory = TestData.NewTemporaryDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    static (int ExitCode, string Output, string Error) Run(string input, params string[] args) => CliRun.WithInput(input, args);

    string Save(string name, Transformer model, ITokenizer tokenizer)
    {
        string folder = Path.Combine(directory, name);
        Checkpoint.Save(folder, model, tokenizer.Save);
        return folder;
    }

    [Fact]
    public void GenerateStreamsTheGreedyContinuation()
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(11);
        string folder = Save("char", model, tokenizer);
        using var decoder = new TransformerDecoder(model);
        string expected = tokenizer.Decode(TestModels.Greedy(decoder, 0, tokenizer.Encode("to be"), 12));

        var (code, output, error) = Run("", "generate", "--model", folder, "to be", "--temperature", "0", "--max-tokens", "12", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.Equal(expected + Environment.NewLine, output);
        Assert.Contains("12 generated", error);

        string stop = expected.Substring(5, 2);
        (code, output, _) = Run("", "generate", "--model", folder, "to be", "--temperature", "0", "--max-tokens", "12", "--stop", stop);
        Assert.Equal(0, code);
        Assert.Equal(expected[..expected.IndexOf(stop, StringComparison.Ordinal)] + Environment.NewLine, output);

        // Sampling with a seed is repeatable.
        string[] sampled = ["generate", "--model", folder, "to be", "--temperature", "1.2", "--top-k", "10", "--top-p", "0.9", "--min-p", "0.01", "--repetition-penalty", "1.1", "--seed", "5", "--max-tokens", "20"];
        Assert.Equal(Run("", sampled).Output, Run("", sampled).Output);
    }

    [Fact]
    public void GenerateErrorsAreOneLine()
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(12, maxSeq: 16);
        string folder = Save("char", model, tokenizer);
        foreach (var args in new[]
        {
            new[] { "generate", "--model", Path.Combine(directory, "missing"), "hi" },
            ["generate", "--model", folder, new string('a', 40)],
            ["generate", "--model", folder, "hi", "--temperature", "-1"],
            ["generate", "hi"],
            ["generate", "--gguf", Path.Combine(directory, "missing.gguf"), "hi"],
            ["chat"],
        })
        {
            var (code, output, error) = Run("", args);
            Assert.NotEqual(0, code);
            Assert.Equal("", output);
            Assert.StartsWith("error: ", error);
            Assert.Single(error.TrimEnd().Split('\n'));
        }
        Assert.Contains("context", Run("", "generate", "--model", folder, new string('a', 40)).Error);
    }

    [Fact]
    public async Task ChatKeepsTheConversationAndQuitsOnExit()
    {
        var tokenizer = BpeTrainer.Train(["the quick brown fox jumps over the lazy dog, hello there"], 300);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 128 };
        var model = TestModels.Random(config, 13);
        string folder = Save("bpe", model, tokenizer);

        var (code, output, error) = Run("hello\n\nthe fox\n/exit\nnever read\n", "chat", "--model", folder, "--system", "be brief", "--temperature", "0", "--max-tokens", "6");
        Assert.True(code == 0, error);

        // The same conversation through the engine: each answer continues the whole conversation so far.
        await using var loom = LoomModel.Create("bpe", model, tokenizer);
        var turns = new List<ChatTurn> { new("system", "be brief") };
        var expected = new System.Text.StringBuilder();
        foreach (var message in new[] { "hello", "the fox" })
        {
            turns.Add(new ChatTurn("user", message));
            var request = new GenerationRequest { PromptTokens = loom.Engine.EncodeChat(turns), MaxTokens = 6, Sampling = SamplingOptions.Greedy, Stop = [ChatTemplate.End] };
            string answer = "";
            await foreach (var update in loom.Engine.GenerateAsync(request)) answer += update.Text;
            turns.Add(new ChatTurn("assistant", answer));
            expected.Append(answer).Append(Environment.NewLine);
        }
        Assert.Equal(expected.ToString(), output);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void GenerateWithGgufRunsTheExportedModelInLlamaCpp()
    {
        // A character model exported to GGUF (F32): llama.cpp's greedy text equals Loom's.
        var (model, tokenizer) = GenerationEngineTests.CharModel(14);
        var config = model.Config;
        var characters = Enumerable.Range(0, tokenizer.VocabSize).Select(i => tokenizer.IdToToken(i)!).ToList();
        string path = Path.Combine(directory, "char.gguf");
        LlamaGguf.Write(path, config,
            model.Parameters.ToDictionary(p => p.Name!), GgufVocabulary.FromCharacters(characters), GgmlType.F32, "char");
        using var decoder = new TransformerDecoder(model);
        string expected = tokenizer.Decode(TestModels.Greedy(decoder, 0, tokenizer.Encode("to be"), 10));

        var (code, output, error) = Run("", "generate", "--gguf", path, "to be", "--temperature", "0", "--max-tokens", "10", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.Equal(expected + Environment.NewLine, output);

        using var llama = LlamaCppDecoder.Load(path, slots: 2, new LlamaCppOptions(Threads: 1, Float32Cache: true));
        Assert.Equal(config.MaxSeq, llama.ContextLength);
        Assert.Equal(TestModels.Greedy(new TransformerDecoder(model), 0, [1, 2, 3], 8), TestModels.Greedy(llama, 1, [1, 2, 3], 8));
    }
}
