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

    /// <summary>
    /// Starts a greedy stream on a character model, sends a prompt of <paramref name="promptTokens"/> letters while it
    /// runs (the stream is long enough never to end first, and is cancelled after), checks that prompt's 3 tokens equal
    /// a decoder's alone, and returns the decoder's call log.
    /// </summary>
    static async Task<RecordingDecoder> LongPromptBesideARunningStream(GenerationEngineOptions options, int promptTokens)
    {
        var (model, tokenizer) = GenerationEngineTests.CharModel(20, maxSeq: 4096);
        var decoder = new RecordingDecoder(new TransformerDecoder(model, slotCount: 2));
        await using var engine = new GenerationEngine("char", decoder, tokenizer, options);
        var started = new TaskCompletionSource();
        using var stop = new CancellationTokenSource();
        var running = Task.Run(async () =>
        {
            int updates = 0;
            try
            {
                await foreach (var update in engine.GenerateAsync(new GenerationRequest { Prompt = "abc", MaxTokens = 4000, Sampling = SamplingOptions.Greedy }, stop.Token))
                    if (++updates == 3) started.TrySetResult();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        string longPrompt = Letters(promptTokens, 21);
        string longText = await Run(engine, new GenerationRequest { Prompt = longPrompt, MaxTokens = 3, Sampling = SamplingOptions.Greedy }).WaitAsync(TimeSpan.FromMinutes(1));
        stop.Cancel();
        await running.WaitAsync(TimeSpan.FromMinutes(1));

        using var alone = new TransformerDecoder(model);
        Assert.Equal(tokenizer.Decode(TestModels.Greedy(alone, 0, tokenizer.Encode(longPrompt), 3)), longText);
        return decoder;
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

        async Task<(string[] Texts, RecordingDecoder Decoder)> All(int chunk, int along)
        {
            var decoder = new RecordingDecoder(new TransformerDecoder(model, slotCount: 3));
            await using var engine = new GenerationEngine("char", decoder, tokenizer, new GenerationEngineOptions { PrefillChunkTokens = chunk, PrefillTokensPerDecodeStep = along });
            var texts = await Task.WhenAll(requests.Select(r => Task.Run(() => Run(engine, r)))).WaitAsync(TimeSpan.FromMinutes(2));
            return (texts, decoder);
        }

        var (whole, wholeDecoder) = await All(0, 0);
        var (sliced, slicedDecoder) = await All(64, 0);
        Assert.Equal(whole, sliced);
        // Slices taken along decode steps give logits equal to rounding only, which these prompts do not feel.
        var (along, alongDecoder) = await All(64, 16);
        Assert.Equal(whole, along);
        Assert.Contains(alongDecoder.Log, e => e.StartsWith("along 16", StringComparison.Ordinal));
        Assert.All(whole, t => Assert.NotEmpty(t));
        Assert.Equal(0, wholeDecoder.Appends);
        // Continued slices: 420 = 64·6 + 36 (6), 200 = 64 + 64 + 72 (a tail of 8 joins the last: 2), 150 = 64 + 64 + 22 (2), 90 = 64 + 26 (1).
        Assert.Equal(11, slicedDecoder.Appends);
    }

    [Fact]
    public async Task RunningStreamsDecodeBetweenTheSlicesOfALongPrompt()
    {
        var decoder = await LongPromptBesideARunningStream(new GenerationEngineOptions { PrefillChunkTokens = 64, PrefillTokensPerDecodeStep = 0 }, promptTokens: 400);
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
    public async Task ALongPromptRidesAlongTheDecodeStepsOfARunningStream()
    {
        var decoder = await LongPromptBesideARunningStream(new GenerationEngineOptions { PrefillChunkTokens = 64, PrefillTokensPerDecodeStep = 16, PrefillStepBudget = 0 }, promptTokens: 200);
        // 200 tokens: twelve slices of 16 and one of 8, each inside a decode step of the running stream; no step of its own.
        var log = decoder.Log;
        Assert.Equal([.. Enumerable.Repeat("along 16 with 1", 12), "along 8 with 1"], log.Where(e => e.StartsWith("along", StringComparison.Ordinal)));
        Assert.DoesNotContain(log, e => e.StartsWith("append", StringComparison.Ordinal) || e == "prefill 200");
    }

    [Fact]
    public async Task PacedSlicesStartWithOneTokenAndCarryTheWholePrompt()
    {
        var decoder = await LongPromptBesideARunningStream(new GenerationEngineOptions { PrefillChunkTokens = 64, PrefillTokensPerDecodeStep = 16 }, promptTokens: 200);
        // Plain steps were timed before the prompt came, no slice step yet: the first slice measures one token's cost.
        // How many tokens the later ones take depends on the machine's pace; all of them ride along, none above the cap.
        var along = decoder.Log.Where(e => e.StartsWith("along", StringComparison.Ordinal)).Select(e => int.Parse(e.Split(' ')[1])).ToList();
        Assert.Equal(1, along[0]);
        Assert.Equal(200, along.Sum());
        Assert.All(along, n => Assert.InRange(n, 1, 16));
        Assert.DoesNotContain(decoder.Log, e => e.StartsWith("append", StringComparison.Ordinal) || e.StartsWith("prefill 200", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0, new[] { 16, 16, 5 })]   // a prompt started and continued along decode steps
    [InlineData(64, new[] { 16, 7, 1 })]  // continuing one prefilled by a chunk
    public void ASliceAlongADecodeStepGivesTheNumbersOfAppendAndDecode(int prefix, int[] sizes)
    {
        var model = TestModels.Random(Config, 24);
        int[] prompt = TestModels.Ids(prefix + sizes.Sum(), Config.VocabSize, 25);
        int[] other = TestModels.Ids(40, Config.VocabSize, 26);
        using var apart = new TransformerDecoder(model, slotCount: 3);
        using var along = new TransformerDecoder(model, slotCount: 3);
        var scratch = new float[Config.VocabSize];
        foreach (var decoder in new[] { apart, along })
        {
            decoder.Prefill(0, other, scratch);
            decoder.Prefill(2, other.AsSpan(0, 17), scratch);
            if (prefix > 0) decoder.Prefill(1, prompt.AsSpan(0, prefix), scratch);
        }
        int at = prefix;
        int token0 = 3, token2 = 4;
        foreach (int size in sizes)
        {
            var slice = prompt.AsSpan(at, size);
            var expectedSlice = new float[Config.VocabSize];
            var expected = new float[2 * Config.VocabSize];
            if (at == 0) apart.Prefill(1, slice, expectedSlice);
            else apart.Append(1, slice, expectedSlice);
            apart.Decode([0, 2], [token0, token2], expected);

            var actualSlice = new float[Config.VocabSize];
            var actual = new float[2 * Config.VocabSize];
            along.DecodeWithSlice([0, 2], [token0, token2], actual, 1, at, slice, actualSlice);
            at += size;
            AssertClose(expectedSlice, actualSlice);
            AssertClose(expected, actual);
            Assert.Equal(at, along.Length(1));
            Assert.Equal(apart.Length(0), along.Length(0));
            token0 = (token0 * 7 + 1) % Config.VocabSize;
            token2 = (token2 * 5 + 2) % Config.VocabSize;
        }
        AssertClose(CacheRows(apart.Cache, 1, at, keys: true), CacheRows(along.Cache, 1, at, keys: true));
        AssertClose(CacheRows(apart.Cache, 1, at, keys: false), CacheRows(along.Cache, 1, at, keys: false));
        // Decoding on from the slot prefilled along the way gives the same logits to rounding.
        var a = new float[Config.VocabSize];
        var b = new float[Config.VocabSize];
        apart.Decode([1], [9], a);
        along.Decode([1], [9], b);
        AssertClose(a, b);
    }

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * scale, $"entry {i}: {actual[i]} instead of {expected[i]} (largest {scale})");
    }

    [Fact]
    public void ASliceAlongADecodeStepIsChecked()
    {
        var model = TestModels.Random(Config, 27);
        using var decoder = new TransformerDecoder(model, slotCount: 2);
        var logits = new float[2 * Config.VocabSize];
        var sliceLogits = new float[Config.VocabSize];
        decoder.Prefill(0, [1, 2, 3], sliceLogits);
        Assert.Contains("both decoded and prefilled", Assert.Throws<ArgumentException>(() => decoder.DecodeWithSlice([0], [4], logits, 0, 3, [5], sliceLogits)).Message);
        Assert.Contains("at most 64", Assert.Throws<ArgumentException>(() => decoder.DecodeWithSlice([0], [4], logits, 1, 0, new int[65], sliceLogits)).Message);
        Assert.Contains("starts at 5", Assert.Throws<ArgumentException>(() => decoder.DecodeWithSlice([0], [4], logits, 0, 5, [1], sliceLogits)).Message);
        var error = Assert.Throws<ArgumentException>(() => new GenerationEngine("x", decoder, GenerationEngineTests.CharModel(16, maxSeq: 64).Tokenizer, new GenerationEngineOptions { PrefillTokensPerDecodeStep = 65 }));
        Assert.Contains("GenerationEngineOptions.PrefillTokensPerDecodeStep", error.Message);
        foreach (double budget in new[] { 0.5, 1, double.NaN })
        {
            error = Assert.Throws<ArgumentException>(() => new GenerationEngine("x", decoder, GenerationEngineTests.CharModel(16, maxSeq: 64).Tokenizer, new GenerationEngineOptions { PrefillStepBudget = budget }));
            Assert.Contains("GenerationEngineOptions.PrefillStepBudget", error.Message);
        }
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

        public void DecodeWithSlice(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits,
            int sliceSlot, int sliceStart, ReadOnlySpan<int> slice, Span<float> sliceLogits)
        {
            Add($"along {slice.Length} with {slots.Length}");
            inner.DecodeWithSlice(slots, tokens, logits, sliceSlot, sliceStart, slice, sliceLogits);
        }

        public void Release(int slot) => inner.Release(slot);
        public void Dispose() => inner.Dispose();
    }
}
