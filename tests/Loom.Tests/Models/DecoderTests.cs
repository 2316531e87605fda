using Loom.Models;
using Loom.Tensors;

namespace Loom.Tests.Models;

/// <summary>Small random Llama models for inference tests.</summary>
internal static class TestModels
{
    /// <summary>Grouped-query heads, untied head, context 48: small enough for exact comparisons in milliseconds.</summary>
    public static readonly LlamaConfig Tiny = new() { VocabSize = 61, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 48, MaxSeq = 48, RopeTheta = 500f, TiedEmbeddings = false };

    /// <summary>A model with weights uniform in ±<paramref name="range"/>/2 (large enough that attention is far from uniform) and norms near 1.</summary>
    public static Transformer Random(LlamaConfig config, int seed, float range = 0.5f)
    {
        var model = new Transformer(config, (ulong)seed);
        var random = new Random(seed);
        foreach (var p in model.Parameters)
        {
            var span = p.Span;
            for (int i = 0; i < span.Length; i++)
                span[i] = p.Rank == 1 ? 1f + (float)(random.NextDouble() - 0.5) * 0.4f : (float)(random.NextDouble() - 0.5) * range;
        }
        return model;
    }

    public static int[] Ids(int count, int vocab, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(vocab))];
    }

    /// <summary>Logits at every position from one cache-free forward pass: [tokens, vocab].</summary>
    public static float[] FullForward(Transformer model, int[] ids)
    {
        var tape = new Tape { Recording = false };
        return model.Forward(tape, ids, 1, ids.Length).Span.ToArray();
    }

    /// <summary>Greedy continuation of one prompt through a decoder slot.</summary>
    public static int[] Greedy(IBatchDecoder decoder, int slot, int[] prompt, int count)
    {
        var logits = new float[decoder.VocabSize];
        decoder.Prefill(slot, prompt, logits);
        var output = new int[count];
        for (int i = 0; i < count; i++)
        {
            output[i] = Sampler.ArgMax(logits);
            if (i + 1 < count) decoder.Decode([slot], [output[i]], logits);
        }
        decoder.Release(slot);
        return output;
    }
}

public class DecoderTests
{
    static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        float worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        return worst;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(6)]
    public void PrefillAndDecodeMatchAFullForwardAtEveryPosition(int promptLength)
    {
        var config = TestModels.Tiny;
        var model = TestModels.Random(config, 3);
        int[] ids = TestModels.Ids(30, config.VocabSize, 4);
        var expected = TestModels.FullForward(model, ids); // [tokens, vocab]
        int vocab = config.VocabSize;
        Assert.True(expected.Max() - expected.Min() > 2f, "the test model's logits are too flat to tell positions apart");

        using var decoder = new TransformerDecoder(model, slotCount: 3);
        var logits = new float[vocab];
        decoder.Prefill(2, ids.AsSpan(0, promptLength), logits);
        Assert.True(MaxAbsDiff(logits, expected.AsSpan((promptLength - 1) * vocab, vocab)) < 1e-4f);
        for (int t = promptLength; t < ids.Length; t++)
        {
            decoder.Decode([2], [ids[t]], logits);
            float diff = MaxAbsDiff(logits, expected.AsSpan(t * vocab, vocab));
            Assert.True(diff < 1e-4f, $"position {t}: max abs diff {diff}");
        }
        Assert.Equal(ids.Length, decoder.Length(2));
    }

    [Fact]
    public void SequencesDecodedTogetherGiveTheSameTokensAsAlone()
    {
        var config = TestModels.Tiny;
        var model = TestModels.Random(config, 5);
        int[][] prompts = [TestModels.Ids(3, config.VocabSize, 10), TestModels.Ids(9, config.VocabSize, 11), TestModels.Ids(1, config.VocabSize, 12), TestModels.Ids(15, config.VocabSize, 13)];
        const int count = 12;
        int[][] alone;
        using (var single = new TransformerDecoder(model, slotCount: 1))
            alone = [.. prompts.Select(p => TestModels.Greedy(single, 0, p, count))];

        // Together, in slots that do not match prompt order; the last two join two steps late.
        int vocab = config.VocabSize;
        using var decoder = new TransformerDecoder(model, slotCount: 5);
        int[] slotOf = [4, 0, 2, 1];
        var generated = prompts.Select(_ => new List<int>()).ToArray();
        var row = new float[vocab];
        void Start(int s)
        {
            decoder.Prefill(slotOf[s], prompts[s], row);
            generated[s].Add(Sampler.ArgMax(row));
        }
        Start(0);
        Start(1);
        var logits = new float[4 * vocab];
        for (int step = 0; generated.Any(g => g.Count < count); step++)
        {
            if (step == 2) { Start(2); Start(3); }
            var active = Enumerable.Range(0, 4).Where(s => generated[s].Count > 0 && generated[s].Count < count).ToArray();
            int[] slots = [.. active.Select(s => slotOf[s])];
            int[] tokens = [.. active.Select(s => generated[s][^1])];
            decoder.Decode(slots, tokens, logits);
            for (int i = 0; i < active.Length; i++) generated[active[i]].Add(Sampler.ArgMax(logits.AsSpan(i * vocab, vocab)));
        }
        for (int s = 0; s < prompts.Length; s++) Assert.Equal(alone[s], generated[s]);
    }

    [Fact]
    public void TheCacheMakesEachTokenCostLinearWork()
    {
        var config = TestModels.Tiny;
        var model = TestModels.Random(config, 7);
        using var decoder = new TransformerDecoder(model);
        var logits = new float[config.VocabSize];
        int[] prompt = TestModels.Ids(4, config.VocabSize, 1);
        decoder.Prefill(0, prompt, logits);
        Assert.Equal(4, decoder.ProcessedRows);
        Assert.Equal(config.Layers * config.Heads * (4 * 5 / 2), decoder.AttentionDotProducts);
        for (int position = 4; position < 40; position++)
        {
            long rows = decoder.ProcessedRows, dots = decoder.AttentionDotProducts;
            decoder.Decode([0], [position % config.VocabSize], logits);
            // One new row through the projections and MLP; attention reads each cached position once.
            Assert.Equal(1, decoder.ProcessedRows - rows);
            Assert.Equal((long)config.Layers * config.Heads * (position + 1), decoder.AttentionDotProducts - dots);
        }
    }

    [Fact]
    public void BadInputGetsOneLineErrors()
    {
        var config = TestModels.Tiny;
        using var decoder = new TransformerDecoder(TestModels.Random(config, 1), slotCount: 2, contextLength: 10);
        Assert.Equal(10, decoder.ContextLength);
        var logits = new float[config.VocabSize];
        var tooLong = Assert.Throws<ArgumentException>(() => decoder.Prefill(0, new int[11], logits));
        Assert.Contains("11 tokens", tooLong.Message);
        Assert.DoesNotContain('\n', tooLong.Message);
        Assert.Throws<ArgumentException>(() => decoder.Prefill(2, [1], logits));
        Assert.Throws<ArgumentException>(() => decoder.Prefill(0, [config.VocabSize], logits));
        Assert.Contains("prefill", Assert.Throws<ArgumentException>(() => decoder.Decode([1], [1], logits)).Message);
        decoder.Prefill(0, new int[10], logits);
        Assert.Contains("full", Assert.Throws<ArgumentException>(() => decoder.Decode([0], [1], logits)).Message);
        decoder.Prefill(1, [1, 2], logits);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => decoder.Decode([1, 1], [1, 2], new float[2 * config.VocabSize])).Message);
        decoder.Release(0);
        Assert.Equal(0, decoder.Length(0));
    }

    [Fact]
    public void RopeAtPerRowPositionsMatchesTheTapeOp()
    {
        const int heads = 3, headDim = 34, tokens = 9;
        var random = new Random(2);
        var x = GradCheckRandom(random, 1, tokens, heads * headDim);
        var tape = new Tape { Recording = false };
        var expected = tape.Rope(x, heads, headDim, 1000f, positionOffset: 5).Span.ToArray(); // [1, tokens, heads·headDim]
        // The same rows, shuffled, as a batch of one-token sequences, each rotated at its own position.
        int[] order = [4, 0, 8, 2, 7, 1, 3, 6, 5];
        int width = heads * headDim;
        var shuffled = new Tensor(tokens, 1, width); // [tokens, 1, heads·headDim]
        for (int i = 0; i < tokens; i++) x.Span.Slice(order[i] * width, width).CopyTo(shuffled.Span.Slice(i * width));
        var rows = tape.Rope(shuffled, heads, headDim, 1000f, [.. order.Select(o => o + 5)]).Span; // [tokens, 1, heads·headDim]
        for (int i = 0; i < tokens; i++)
            Assert.True(MaxAbsDiff(rows.Slice(i * width, width), expected.AsSpan(order[i] * width, width)) < 1e-6f);
    }

    [Fact]
    public void RopeAtPerSequenceOffsetsBackpropagatesLikeEachSequenceAlone()
    {
        const int heads = 2, headDim = 6, tokens = 4, width = heads * headDim;
        int[] offsets = [5, 0, 9];
        var random = new Random(3);
        var x = GradCheckRandom(random, offsets.Length, tokens, width);
        x.RequiresGrad = true;
        var seed = GradCheckRandom(random, offsets.Length, tokens, width).Span.ToArray(); // [batch, tokens, heads·headDim]
        var tape = new Tape();
        tape.Backward(tape.Rope(x, heads, headDim, 1000f, offsets), seed);
        var together = x.Grad!.Span.ToArray();
        for (int b = 0; b < offsets.Length; b++)
        {
            var row = Tensor.From(x.Span.Slice(b * tokens * width, tokens * width), 1, tokens, width);
            row.RequiresGrad = true;
            var alone = new Tape();
            alone.Backward(alone.Rope(row, heads, headDim, 1000f, positionOffset: offsets[b]), seed.AsSpan(b * tokens * width, tokens * width));
            Assert.True(MaxAbsDiff(row.Grad!.Span, together.AsSpan(b * tokens * width, tokens * width)) < 1e-6f);
        }
    }

    static Tensor GradCheckRandom(Random random, params int[] shape)
    {
        var t = new Tensor(shape);
        for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() * 2 - 1);
        return t;
    }
}

/// <summary>A decode step allocates nothing after warm-up (runs alone: the counter is process-wide).</summary>
[Collection(nameof(Loom.Tests.Tensors.AllocationCollection))]
public class DecoderAllocationTests
{
    [Fact]
    public void DecodeStepAllocatesNothingAfterWarmUp()
    {
        var config = TestModels.Tiny;
        using var decoder = new TransformerDecoder(TestModels.Random(config, 2), slotCount: 3);
        var row = new float[config.VocabSize];
        var logits = new float[3 * config.VocabSize];
        decoder.Prefill(0, [1, 2, 3], row);
        decoder.Prefill(2, [4], row);
        int[] slots = [2, 0];
        int[] tokens = [5, 6];
        Assert.Equal(0, AllocationProbe.FewestBytes(() => decoder.Decode(slots, tokens, logits), warmUp: 2));
    }
}
