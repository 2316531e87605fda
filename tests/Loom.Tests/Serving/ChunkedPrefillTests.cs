using Loom.Models;
using Loom.Serving;
using Loom.Tests.Models;

namespace Loom.Tests.Serving;

public class ChunkedPrefillTests
{
    static readonly LlamaConfig Config = TestModels.Tiny with { MaxSeq = 512 };

    /// <summary>Prefills the prompt in slices of the given sizes (the first by Prefill, the rest by Append); returns the last logits.</summary>
    static float[] PrefillInSlices(TransformerDecoder decoder, int slot, int[] prompt, int[] sizes)
    {
        var logits = new float[decoder.VocabSize];
        int at = 0;
        foreach (int size in sizes)
        {
            if (at == 0) decoder.Prefill(slot, prompt.AsSpan(0, size), logits);
            else decoder.Append(slot, prompt.AsSpan(at, size), logits);
            at += size;
            Assert.Equal(at, decoder.Length(slot));
        }
        Assert.Equal(prompt.Length, at);
        return logits;
    }

    /// <summary>The cached keys (or values) of the first count positions of a slot, over all layers.</summary>
    static float[] CacheRows(KvCache cache, int slot, int count, bool keys)
    {
        var rows = new List<float>();
        for (int layer = 0; layer < cache.Layers; layer++)
        {
            var tensor = keys ? cache.Keys(layer) : cache.Values(layer); // [slots, maxTokens, kvDim]
            int kvDim = tensor.Dim(2);
            rows.AddRange(tensor.Span.Slice(slot * tensor.Dim(1) * kvDim, count * kvDim).ToArray());
        }
        return [.. rows];
    }

    [Theory]
    [InlineData(300, new[] { 64, 64, 64, 64, 44 })]
    [InlineData(300, new[] { 128, 172 })]
    [InlineData(300, new[] { 64, 192, 44 })]
    [InlineData(150, new[] { 64, 86 })]
    public void SlicesGiveTheLogitsCacheAndDecodeOfTheWholePrompt(int length, int[] sizes)
    {
        var model = TestModels.Random(Config, 11);
        int[] prompt = TestModels.Ids(length, Config.VocabSize, 12);
        using var whole = new TransformerDecoder(model, slotCount: 2);
        using var sliced = new TransformerDecoder(model, slotCount: 2);
        var expected = new float[Config.VocabSize];
        whole.Prefill(0, prompt, expected);
        // Slot 1 of the sliced decoder: keys and values must land at the slot's own positions.
        var actual = PrefillInSlices(sliced, 1, prompt, sizes);
        Assert.Equal(expected, actual);
        Assert.Equal(CacheRows(whole.Cache, 0, prompt.Length, keys: true), CacheRows(sliced.Cache, 1, prompt.Length, keys: true));
        Assert.Equal(CacheRows(whole.Cache, 0, prompt.Length, keys: false), CacheRows(sliced.Cache, 1, prompt.Length, keys: false));

        // Decoding on from either gives the same logits, step after step.
        var a = new float[Config.VocabSize];
        var b = new float[Config.VocabSize];
        int token = 5;
        for (int step = 0; step < 4; step++)
        {
            whole.Decode([0], [token], a);
            sliced.Decode([1], [token], b);
            Assert.Equal(a, b);
            token = Array.IndexOf(a, a.Max());
        }
        Assert.Equal(whole.Length(0), sliced.Length(1));
    }

    [Fact]
    public void AppendNeedsAPrefilledSlotAndRoom()
    {
        var model = TestModels.Random(Config with { MaxSeq = 80 }, 13);
        using var decoder = new TransformerDecoder(model);
        var logits = new float[Config.VocabSize];
        Assert.Contains("prefill it first", Assert.Throws<ArgumentException>(() => decoder.Append(0, [1, 2], logits)).Message);
        decoder.Prefill(0, TestModels.Ids(64, Config.VocabSize, 14), logits);
        Assert.Contains("context of 80", Assert.Throws<ArgumentException>(() => decoder.Append(0, TestModels.Ids(17, Config.VocabSize, 15), logits)).Message);
        Assert.Equal(64, decoder.Length(0));
    }

    [Fact]
    public void TheChunkSizeIsChecked()
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(16, maxSeq: 512);
        using var decoder = new TransformerDecoder(model);
        var error = Assert.Throws<ArgumentException>(() => new GenerationEngine("char", decoder, tokenizer, new GenerationEngineOptions { PrefillChunkTokens = 100 }));
        Assert.Contains("GenerationEngineOptions.PrefillChunkTokens", error.Message);
    }

    static string Letters(int count, int seed)
    {
        var random = new Random(seed);
        return new string([.. Enumerable.Range(0, count).Select(_ => (char)('a' + random.Next(26)))]);
    }

    static async Task<string> Run(GenerationEngine engine, GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        await foreach (var update in engine.GenerateAsync(request, cancellationToken)) text.Append(update.Text);
        return text.ToString();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ConcurrentSequencesGiveTheSameTextWithAndWithoutSlices(bool sampled)
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(17, maxSeq: 512);
        int[] lengths = [420, 12, 200, 90, 150];
        var requests = lengths.Select((n, i) => new GenerationRequest
        {
            Prompt = Letters(n, 18 + i),
            MaxTokens = 12 + 5 * i,
            Sampling = sampled ? new SamplingOptions { Temperature = 0.9f, TopK = 12, Seed = 19 + i } : SamplingOptions.Greedy,
        }).ToArray();

        async Task<(string[] Texts, RecordingDecoder Decoder)> All(int chunk)
        {
            var decoder = new RecordingDecoder(new TransformerDecoder(model, slotCount: 3));
            await using var engine = new GenerationEngine("char", decoder, tokenizer, new GenerationEngineOptions { PrefillChunkTokens = chunk });
            var texts = await Task.WhenAll(requests.Select(r => Task.Run(() => Run(engine, r)))).WaitAsync(TimeSpan.FromMinutes(2));
            return (texts, decoder);
        }

        var (whole, wholeDecoder) = await All(0);
        var (sliced, slicedDecoder) = await All(64);
        Assert.Equal(whole, sliced);
        Assert.All(whole, t => Assert.NotEmpty(t));
        Assert.Equal(0, wholeDecoder.Appends);
        // Continued slices: 420 = 64·6 + 36 (6), 200 = 64 + 64 + 72 (a tail of 8 joins the last: 2), 150 = 64 + 64 + 22 (2), 90 = 64 + 26 (1).
        Assert.Equal(11, slicedDecoder.Appends);
    }

    [Fact]
    public async Task RunningStreamsDecodeBetweenTheSlicesOfALongPrompt()
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(20, maxSeq: 512);
        var decoder = new RecordingDecoder(new TransformerDecoder(model, slotCount: 2));
        await using var engine = new GenerationEngine("char", decoder, tokenizer, new GenerationEngineOptions { PrefillChunkTokens = 64 });
        var started = new TaskCompletionSource();
        var running = Task.Run(async () =>
        {
            int updates = 0;
            await foreach (var update in engine.GenerateAsync(new GenerationRequest { Prompt = "abc", MaxTokens = 300, Sampling = SamplingOptions.Greedy }))
                if (++updates == 3) started.TrySetResult();
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        string longPrompt = Letters(400, 21);
        string longText = await Run(engine, new GenerationRequest { Prompt = longPrompt, MaxTokens = 3, Sampling = SamplingOptions.Greedy }).WaitAsync(TimeSpan.FromMinutes(1));
        await running.WaitAsync(TimeSpan.FromMinutes(1));

        using var alone = new TransformerDecoder(model);
        Assert.Equal(tokenizer.Decode(TestModels.Greedy(alone, 0, tokenizer.Encode(longPrompt), 3)), longText);
        // The long prompt's slices (a prefill of 64, appends of 64, 64, 64, 64 and 80) each come after a decode step of the running stream.
        var log = decoder.Log;
        int first = log.FindIndex(e => e == "prefill 64");
        int last = log.FindLastIndex(e => e.StartsWith("append", StringComparison.Ordinal));
        Assert.True(first >= 0 && last > first, string.Join(", ", log));
        var slices = log.Skip(first).Take(last - first + 1).ToList();
        Assert.Equal(["prefill 64", "append 64", "append 64", "append 64", "append 64", "append 80"], slices.Where(e => !e.StartsWith("decode", StringComparison.Ordinal)));
        for (int i = 1; i < slices.Count; i++)
            if (slices[i].StartsWith("append", StringComparison.Ordinal)) Assert.Equal("decode 1", slices[i - 1]);
    }

    [Fact]
    public async Task CancellingMidPrefillFreesTheSlot()
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(22, maxSeq: 512);
        var decoder = new RecordingDecoder(new TransformerDecoder(model, slotCount: 1)) { AppendDelay = TimeSpan.FromMilliseconds(30) };
        await using var engine = new GenerationEngine("char", decoder, tokenizer, new GenerationEngineOptions { PrefillChunkTokens = 64 });
        using var cancel = new CancellationTokenSource();
        decoder.OnAppend = cancel.Cancel;
        var cancelled = Run(engine, new GenerationRequest { Prompt = Letters(450, 23), MaxTokens = 5 }, cancel.Token);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled).WaitAsync(TimeSpan.FromSeconds(30));

        // The one slot is free again: the next request runs to the end, alone.
        string next = await Run(engine, new GenerationRequest { Prompt = "xyz", MaxTokens = 5, Sampling = SamplingOptions.Greedy }).WaitAsync(TimeSpan.FromSeconds(30));
        using var alone = new TransformerDecoder(model);
        Assert.Equal(tokenizer.Decode(TestModels.Greedy(alone, 0, tokenizer.Encode("xyz"), 5)), next);
        // 450 tokens are a prefill and six appends; cancelled during the first append, no other ran.
        Assert.Equal(1, decoder.Appends);
    }

    /// <summary>The real decoder, with a log of its calls (and an optional pause in each Append).</summary>
    sealed class RecordingDecoder(TransformerDecoder inner) : IBatchDecoder
    {
        readonly object gate = new();
        readonly List<string> log = [];
        public List<string> Log { get { lock (gate) return [.. log]; } }
        public int Appends { get { lock (gate) return log.Count(e => e.StartsWith("append", StringComparison.Ordinal)); } }
        public TimeSpan AppendDelay { get; init; }
        public Action? OnAppend { get; set; }
        public int VocabSize => inner.VocabSize;
        public int ContextLength => inner.ContextLength;
        public int SlotCount => inner.SlotCount;

        void Add(string entry) { lock (gate) log.Add(entry); }

        public void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
        {
            Add($"prefill {tokens.Length}");
            inner.Prefill(slot, tokens, logits);
        }

        public void Append(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
        {
            Add($"append {tokens.Length}");
            OnAppend?.Invoke();
            Thread.Sleep(AppendDelay);
            inner.Append(slot, tokens, logits);
        }

        public void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
        {
            Add($"decode {slots.Length}");
            inner.Decode(slots, tokens, logits);
        }

        public void Release(int slot) => inner.Release(slot);
        public void Dispose() => inner.Dispose();
    }
}
