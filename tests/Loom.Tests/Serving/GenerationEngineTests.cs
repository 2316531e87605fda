using System.Text;
using Loom.Models;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;

namespace Loom.Tests.Serving;

public class GenerationEngineTests
{
    const string Alphabet = "abcdefghijklmnopqrstuvwxyz .,;!?\n";

    /// <summary>A character-level model (every token is whole text, so streamed pieces concatenate exactly).</summary>
    internal static (Transformer Model, ITokenizer Tokenizer) CharModel(int seed, int maxSeq = 64)
    {
        var tokenizer = CharTokenizer.Train([Alphabet]);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = maxSeq };
        return (TestModels.Random(config, seed), tokenizer);
    }

    static async Task<(List<GenerationUpdate> Updates, string Text)> Collect(ITextGenerator generator, GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var updates = new List<GenerationUpdate>();
        await foreach (var update in generator.GenerateAsync(request, cancellationToken)) updates.Add(update);
        return (updates, string.Concat(updates.Select(u => u.Text)));
    }

    static string GreedyAlone(Transformer model, ITokenizer tokenizer, string prompt, int count)
    {
        using var decoder = new TransformerDecoder(model);
        return tokenizer.Decode(TestModels.Greedy(decoder, 0, tokenizer.Encode(prompt), count));
    }

    [Fact]
    public async Task StreamsTheGreedyTextAndHonoursMaxTokens()
    {
        var (model, tokenizer) = CharModel(1);
        await using var loom = LoomModel.Create("char", model, tokenizer);
        var (updates, text) = await Collect(loom.Engine, new GenerationRequest { Prompt = "the cat", MaxTokens = 9, Sampling = SamplingOptions.Greedy });
        Assert.Equal(GreedyAlone(model, tokenizer, "the cat", 9), text);
        Assert.True(updates.Count >= 9, "each token should arrive as its own update");
        var last = updates[^1];
        Assert.Equal(FinishReason.Length, last.FinishReason);
        Assert.Equal(9, last.CompletionTokens);
        Assert.Equal(7, last.PromptTokens);
        Assert.All(updates.SkipLast(1), u => Assert.Null(u.FinishReason));
    }

    [Fact]
    public async Task StopsAtAStopStringWithoutPrintingIt()
    {
        var (model, tokenizer) = CharModel(2);
        string full = GreedyAlone(model, tokenizer, "hello", 40);
        string stop = full.Substring(12, 3);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        await using var loom = LoomModel.Create("char", model, tokenizer);
        var (updates, text) = await Collect(loom.Engine, new GenerationRequest { Prompt = "hello", MaxTokens = 40, Stop = [stop], Sampling = SamplingOptions.Greedy });
        Assert.Equal(full[..at], text);
        Assert.Equal(FinishReason.Stop, updates[^1].FinishReason);
        Assert.True(updates[^1].CompletionTokens < 40);
    }

    [Fact]
    public async Task PromptsLongerThanTheContextAreRefused()
    {
        var (model, tokenizer) = CharModel(3, maxSeq: 16);
        await using var loom = LoomModel.Create("char", model, tokenizer);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Collect(loom.Engine, new GenerationRequest { Prompt = new string('a', 20) }));
        Assert.Contains("context", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task ACancelledRequestFreesItsSlot()
    {
        var (model, tokenizer) = CharModel(4, maxSeq: 512);
        await using var slow = new SlowDecoder(new TransformerDecoder(model, slotCount: 2));
        await using var engine = new GenerationEngine("char", slow, tokenizer);
        var cancels = new[] { new CancellationTokenSource(), new CancellationTokenSource() };
        var running = new List<Task>();
        for (int i = 0; i < 2; i++)
        {
            var token = cancels[i].Token;
            var started = new TaskCompletionSource();
            running.Add(Task.Run(async () =>
            {
                await foreach (var update in engine.GenerateAsync(new GenerationRequest { Prompt = "abc", Sampling = SamplingOptions.Greedy }, token))
                    started.TrySetResult();
            }));
            await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        foreach (var cancel in cancels) cancel.Cancel();
        foreach (var task in running) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);

        // Both slots are free again: two new requests run (together) to the end.
        string expected = GreedyAlone(model, tokenizer, "xyz", 5);
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ =>
            Collect(engine, new GenerationRequest { Prompt = "xyz", MaxTokens = 5, Sampling = SamplingOptions.Greedy })))
            .WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(results, r => Assert.Equal(expected, r.Text));
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Theory]
    [InlineData(16)]
    [InlineData(5)]
    public async Task SixteenConcurrentRequestsGiveTheSameTextAsAlone(int slots)
    {
        var (model, tokenizer) = CharModel(5);
        var random = new Random(6);
        var prompts = Enumerable.Range(0, 16).Select(i => new string([.. Enumerable.Range(0, 1 + i % 7 * 3).Select(_ => Alphabet[random.Next(26)])])).ToArray();
        int[] lengths = [.. Enumerable.Range(0, 16).Select(i => 4 + i % 5 * 3)];
        string[] alone = [.. prompts.Select((p, i) => GreedyAlone(model, tokenizer, p, lengths[i]))];

        await using var loom = LoomModel.Create("char", model, tokenizer, new LoomModelOptions { Slots = slots });
        var results = await Task.WhenAll(prompts.Select((p, i) => Task.Run(() =>
            Collect(loom.Engine, new GenerationRequest { Prompt = p, MaxTokens = lengths[i], Sampling = SamplingOptions.Greedy }))));
        for (int i = 0; i < 16; i++) Assert.Equal(alone[i], results[i].Text);
    }

    [Fact]
    public async Task ChatClientAnswersThroughTheChatTemplate()
    {
        var tokenizer = BpeTrainer.Train(["the quick brown fox jumps over the lazy dog. " + Alphabet], 300);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 96 };
        var model = TestModels.Random(config, 7);
        await using var loom = LoomModel.Create("bpe", model, tokenizer);
        var client = new LoomChatClient(loom.Engine);
        var response = await client.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, "hi")],
            new Microsoft.Extensions.AI.ChatOptions { Temperature = 0, MaxOutputTokens = 6 });
        // The same prompt decoded by hand: the template's tokens, then greedy until EOS, <|end|> or 6 tokens.
        int[] prompt = [.. ChatTemplate.Encode([new ChatTurn("user", "hi")], tokenizer, addGenerationPrompt: true).Ids];
        if (tokenizer.BosId is int bos) prompt = [bos, .. prompt];
        using var decoder = new TransformerDecoder(model);
        var tokens = TestModels.Greedy(decoder, 0, prompt, 6).TakeWhile(t => t != tokenizer.EosId).ToArray();
        string expected = tokenizer.Decode(tokens);
        int end = expected.IndexOf(ChatTemplate.End, StringComparison.Ordinal);
        if (end >= 0) expected = expected[..end];
        Assert.Equal(expected, response.Text);
    }

    /// <summary>Slows each decode step so that a test can act while requests are still running.</summary>
    sealed class SlowDecoder(IBatchDecoder inner) : IBatchDecoder, IAsyncDisposable
    {
        public int VocabSize => inner.VocabSize;
        public int ContextLength => inner.ContextLength;
        public int SlotCount => inner.SlotCount;
        public void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits) => inner.Prefill(slot, tokens, logits);
        public void Append(int slot, ReadOnlySpan<int> tokens, Span<float> logits) => inner.Append(slot, tokens, logits);
        public void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
        {
            Thread.Sleep(2);
            inner.Decode(slots, tokens, logits);
        }
        public void Release(int slot) => inner.Release(slot);
        public void Dispose() => inner.Dispose();
        public ValueTask DisposeAsync() { Dispose(); return ValueTask.CompletedTask; }
    }
}
