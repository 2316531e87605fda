using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Training;
using Loom.Training.Tuning;

namespace Loom.Tests.Training;

/// <summary>
/// LoRA on a frozen base held in BF16 or a quantised type (QLoRA): the adapters' gradients equal those of the same adapters
/// on the dequantised float32 base, the base takes no gradient and no float32 storage, and merging gives a float32 model.
/// </summary>
public sealed class QLoraTests
{
    // Rows of 256 (dim) and 512 (MLP) are whole Q4_K super-blocks, so every type applies to every matrix.
    static readonly LlamaConfig Config = new() { ModelType = LlamaConfig.Qwen2Type, VocabSize = 64, Dim = 256, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 512, MaxSeq = 16 };
    static readonly LoraOptions Options = new() { Rank = 4, Alpha = 8, Targets = LoraOptions.AllTargets };

    static int[] Ids(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(Config.VocabSize))];
    }

    /// <summary>Attaches the adapters (seeded) and gives every lora_B the same nonzero values, so A's gradient is not zero.</summary>
    static IReadOnlyList<Tensor> Adapt(Transformer model)
    {
        var trainable = Lora.Attach(model, Options, seed: 7);
        var random = new Random(8);
        foreach (var t in trainable.Where(t => t.Name!.Contains("lora_B", StringComparison.Ordinal)))
            for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() - 0.5) * 0.1f;
        return trainable;
    }

    static float LossAndGradients(Transformer model)
    {
        int batch = 2, tokens = 12;
        var ids = Ids(batch * tokens, 1);
        var targets = Ids(batch * tokens, 2);
        var tape = new Tape();
        var loss = model.Loss(tape, ids, targets, batch, tokens);
        tape.Backward(loss);
        return loss.Scalar();
    }

    static double RelativeDifference(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            difference += Math.Pow(actual[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        return Math.Sqrt(difference / norm);
    }

    // BF16 keeps float32 activations (only the order of sums differs); Q8_0 and Q4 quantise the activations to 8 bits in the forward pass.
    [Theory]
    [InlineData(GgmlType.BF16, 1e-4)]
    [InlineData(GgmlType.Q8_0, 3e-2)]
    [InlineData(GgmlType.Q4_0, 3e-2)]
    [InlineData(GgmlType.Q4_K, 3e-2)]
    public void AdapterGradientsThroughAFrozenBaseEqualThoseOnTheDequantisedBase(GgmlType type, double tolerance)
    {
        var frozen = new Transformer(Config, seed: 3);
        var counts = Lora.FreezeBase(frozen, type);
        Assert.Equal(Config.Layers * 7 + 1, counts[type]); // every projection and the tied embedding table
        var dequantised = Lora.MergedFloat(frozen); // no adapters yet: the float32 values the frozen base stands for
        Assert.Null(dequantised.QuantizedType);

        var trainable = Adapt(frozen);
        var reference = Adapt(dequantised);
        float loss = LossAndGradients(frozen);
        float referenceLoss = LossAndGradients(dequantised);
        Assert.True(Math.Abs(loss - referenceLoss) < 10 * tolerance * Math.Abs(referenceLoss), $"{type}: loss {loss} vs {referenceLoss}");
        for (int i = 0; i < trainable.Count; i++)
        {
            Assert.Equal(reference[i].Name, trainable[i].Name);
            var expected = reference[i].Grad!.Span;
            Assert.True(expected.ToArray().Any(g => g != 0f), $"{reference[i].Name}: the reference gradient is zero");
            double difference = RelativeDifference(trainable[i].Grad!.Span, expected);
            Assert.True(difference < tolerance, $"{type}, {trainable[i].Name}: relative gradient difference {difference:E2} (tolerance {tolerance:E0})");
        }
        foreach (var p in frozen.Parameters)
        {
            Assert.False(p.RequiresGrad);
            Assert.Null(p.Grad);
            if (p.Rank == 2)
            {
                Assert.Equal(type, p.Quantized!.Type);
                Assert.Throws<InvalidOperationException>(() => p.Span.Length); // no float32 copy of a frozen matrix
            }
        }
    }

    [Fact]
    public void RowsThatAreNotWholeBlocksFallBackAsLlamaCppDoes()
    {
        // SmolLM2's 576 channels: not whole Q4_K super-blocks (256), whole Q4_0 blocks (32).
        var config = new LlamaConfig { VocabSize = 64, Dim = 576, Layers = 1, Heads = 9, KvHeads = 3, HiddenDim = 1536, MaxSeq = 8 };
        var model = new Transformer(config, seed: 1);
        var counts = Lora.FreezeBase(model, GgmlType.Q4_K);
        Assert.Equal(1, counts[GgmlType.Q4_K]); // down_proj: rows of 1536
        Assert.Equal(7, counts[GgmlType.Q4_0]); // q, k, v, o, gate, up and the embedding table: rows of 576
    }

    [Fact]
    public void MergingIntoAQuantisedBaseGivesTheFloat32ModelOfTheDequantisedWeightsPlusTheAdapters()
    {
        var frozen = new Transformer(Config, seed: 4);
        Lora.FreezeBase(frozen, GgmlType.Q8_0);
        var reference = Lora.MergedFloat(frozen);
        Adapt(frozen);
        Adapt(reference);
        Lora.Merge(reference);

        var merged = Lora.MergedFloat(frozen);
        Assert.NotSame(frozen, merged);
        Assert.Null(merged.QuantizedType);
        Assert.Empty(Lora.Adapters(merged));
        Assert.NotEmpty(Lora.Adapters(frozen)); // the frozen model keeps its adapters
        var ids = Ids(10, 3);
        var expected = reference.Forward(new Tape { Recording = false }, ids, 1, 10).Span.ToArray();
        var actual = merged.Forward(new Tape { Recording = false }, ids, 1, 10).Span.ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void FullFineTuningOfAFrozenBaseIsRefusedNamingTheOption()
    {
        var model = new Transformer(Config, seed: 5);
        Lora.FreezeBase(model, GgmlType.Q4_0);
        var options = new TuneOptions { OutputFolder = "unused" };
        var error = Assert.Throws<ArgumentException>(() => TuningLoop.Trainable(model, options));
        Assert.Contains("TuneOptions.Lora", error.Message, StringComparison.Ordinal);
        var trainable = TuningLoop.Trainable(model, options with { Lora = Options });
        Assert.Equal(Config.Layers * 7 * 2, trainable.Count);
        Assert.All(trainable, t => Assert.Contains(".lora_", t.Name!, StringComparison.Ordinal));
    }

    [Fact]
    public void AShortSftRunOnAQ8BaseLowersTheLoss()
    {
        var model = new Transformer(Config, seed: 6);
        Lora.FreezeBase(model, GgmlType.Q8_0);
        var trainable = Lora.Attach(model, Options, seed: 2);
        var optimizer = new AdamW(trainable, new AdamWOptions(1e-2f, 0.9f, 0.999f, 1e-8f, 0f));
        // One repeated sequence: next token = (token + 1) mod vocab.
        var ids = Enumerable.Range(0, 16).Select(i => (5 * i) % Config.VocabSize).ToArray();
        var targets = ids.Select(i => (i + 1) % Config.VocabSize).ToArray();
        float first = 0, last = 0;
        for (int step = 0; step < 15; step++)
        {
            foreach (var t in trainable) t.ZeroGrad();
            var tape = new Tape();
            var loss = model.Loss(tape, ids, targets, 1, 16);
            tape.Backward(loss);
            optimizer.Step();
            if (step == 0) first = loss.Scalar();
            last = loss.Scalar();
        }
        Assert.True(last < 0.5f * first, $"loss {first} → {last}");
    }
}
