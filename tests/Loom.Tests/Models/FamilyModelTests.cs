using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Tests.Tensors;

namespace Loom.Tests.Models;

/// <summary>
/// The families in Loom's one forward pass, against plain float64 references: Qwen2's q/k/v biases (with gradients),
/// Llama 3's scaled RoPE frequencies, Mistral's sliding window in training attention, prefill and cached decode.
/// </summary>
public sealed class FamilyModelTests
{
    static readonly LlamaConfig Plain = new() { VocabSize = 23, Dim = 16, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 24, MaxSeq = 160, RopeTheta = 500f, NormEps = 1e-5f, TiedEmbeddings = false };

    public static TheoryData<string> Families => ["qwen2", "llama3", "mistral", "headdim"];

    static LlamaConfig Family(string name) => name switch
    {
        "qwen2" => Plain with { ModelType = LlamaConfig.Qwen2Type, TiedEmbeddings = true },
        // Factor 4 on an original context of 16 positions: every kind of frequency (kept, stretched, smoothed) at head size 4.
        "llama3" => Plain with { RopeScaling = new RopeScaling(4, 1, 4, 16), RopeTheta = 50f },
        "mistral" => Plain with { ModelType = LlamaConfig.MistralType, SlidingWindow = 5 },
        "headdim" => Plain with { ModelType = LlamaConfig.MistralType, HeadDim = 6, SlidingWindow = 70 },
        _ => throw new ArgumentException(name),
    };

    /// <summary>A model with large random weights (biases too) and its float64 twin.</summary>
    static (Transformer Model, LlamaReference Reference) Build(LlamaConfig config, int seed)
    {
        var model = new Transformer(config, (ulong)seed);
        var random = new Random(seed);
        foreach (var p in model.Parameters)
        {
            var span = p.Span;
            bool norm = p.Rank == 1 && !p.Name!.EndsWith(".bias", StringComparison.Ordinal);
            for (int i = 0; i < span.Length; i++)
                span[i] = norm ? 1f + (float)(random.NextDouble() - 0.5) * 0.6f : (float)(random.NextDouble() - 0.5);
        }
        var weights = model.Parameters.ToDictionary(p => p.Name!, p => p.Span.ToArray().Select(v => (double)v).ToArray());
        return (model, LlamaReference.For(config, weights));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ForwardMatchesTheFloat64Reference(string family)
    {
        var config = Family(family);
        var (model, reference) = Build(config, 3);
        int batch = 2, tokens = 75; // past one attention block of 64, and far past a window of 5
        var ids = TestModels.Ids(batch * tokens, config.VocabSize, 5);
        var logits = model.Forward(new Tape { Recording = false }, ids, batch, tokens); // [batch, tokens, vocab]
        double error = GradCheck.RelativeError([.. logits.Span.ToArray().Select(v => (double)v)], reference.Logits(ids, batch, tokens));
        Assert.True(error < 1e-5, $"{family}: logits relative error {error:E3}");
    }

    [Fact]
    public void TheFamilyFeaturesChangeTheLogits()
    {
        // Each feature matters in the reference runs above: without it the logits differ.
        var ids = TestModels.Ids(40, Plain.VocabSize, 6);
        foreach (string family in new[] { "qwen2", "llama3", "mistral" })
        {
            var (model, _) = Build(Family(family), 4);
            var plain = Transformer.FromTensors(Plain with { TiedEmbeddings = model.Config.TiedEmbeddings },
                model.Parameters.Where(p => !p.Name!.EndsWith(".bias", StringComparison.Ordinal)).ToDictionary(p => p.Name!), "plain");
            var a = TestModels.FullForward(model, ids);
            var b = TestModels.FullForward(plain, ids);
            double difference = GradCheck.RelativeError([.. a.Select(v => (double)v)], [.. b.Select(v => (double)v)]);
            Assert.True(difference > 1e-3, $"{family}: the logits barely change ({difference:E2})");
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ParameterGradientsMatchFiniteDifferences(string family)
    {
        var config = Family(family) with { MaxSeq = 12 };
        var (model, reference) = Build(config, 7);
        int batch = 2, tokens = 9;
        var ids = TestModels.Ids(batch * tokens, config.VocabSize, 8);
        var targets = TestModels.Ids(batch * tokens, config.VocabSize, 9);
        var tape = new Tape();
        var loss = model.Loss(tape, ids, targets, batch, tokens); // [1]
        Assert.Equal(reference.Loss(ids, targets, batch, tokens), loss.Scalar(), 4);
        tape.Backward(loss);
        var random = new Random(11);
        string[] names = config.AttentionBias
            ? ["model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias", "model.layers.1.self_attn.v_proj.bias", "model.layers.1.self_attn.q_proj.weight"]
            : ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight", "model.embed_tokens.weight"];
        reference.AssertGradientsMatch(model, ids, targets, batch, tokens, names, samples: 8, random, label: $"{family} ");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void PrefillAppendAndDecodeGiveTheTrainingLogits(string family)
    {
        var config = Family(family);
        var (model, _) = Build(config, 12);
        int vocab = config.VocabSize;
        var ids = TestModels.Ids(150, vocab, 13);
        var expected = TestModels.FullForward(model, ids); // [tokens, vocab]
        using var decoder = new TransformerDecoder(model, slotCount: 2);
        var logits = new float[2 * vocab];
        void Check(int position, ReadOnlySpan<float> actual, string what)
        {
            for (int v = 0; v < vocab; v++)
                Assert.True(Math.Abs(expected[position * vocab + v] - actual[v]) < 1e-4f, $"{family} {what} at position {position}: {actual[v]} vs {expected[position * vocab + v]}");
        }
        // A prompt of 64, continued by a chunk from the block boundary (the flash kernel over the slot), then by one
        // that starts mid-block (one query at a time), then decoded token by token beside a second sequence.
        decoder.Prefill(0, ids.AsSpan(0, 64), logits.AsSpan(0, vocab));
        Check(63, logits.AsSpan(0, vocab), "prefill");
        decoder.Append(0, ids.AsSpan(64, 70), logits.AsSpan(0, vocab));
        Check(133, logits.AsSpan(0, vocab), "append from a block boundary");
        decoder.Append(0, ids.AsSpan(134, 6), logits.AsSpan(0, vocab));
        Check(139, logits.AsSpan(0, vocab), "append mid-block");
        decoder.Prefill(1, ids.AsSpan(0, 3), logits.AsSpan(0, vocab));
        for (int step = 0; step < 10; step++)
        {
            decoder.Decode([0, 1], [ids[140 + step], ids[3 + step]], logits);
            Check(140 + step, logits.AsSpan(0, vocab), "decode");
            Check(3 + step, logits.AsSpan(vocab, vocab), "decode");
        }
    }

    /// <summary>Causal attention within a window, written plainly: position t attends to t − window + 1 .. t.</summary>
    static double[] WindowReference(double[] q, double[] k, double[] v, int batch, int tokens, int heads, int kvHeads, int headDim, int window)
    {
        var output = new double[q.Length];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / (heads / kvHeads);
                for (int t = 0; t < tokens; t++)
                {
                    int first = window > 0 ? Math.Max(0, t - window + 1) : 0;
                    var scores = new double[t + 1 - first];
                    for (int s = first; s <= t; s++)
                    {
                        double dot = 0;
                        for (int i = 0; i < headDim; i++)
                            dot += q[((b * tokens + t) * heads + h) * headDim + i] * k[((b * tokens + s) * kvHeads + g) * headDim + i];
                        scores[s - first] = dot / Math.Sqrt(headDim);
                    }
                    double max = scores.Max(), sum = scores.Sum(x => Math.Exp(x - max));
                    for (int s = first; s <= t; s++)
                        for (int i = 0; i < headDim; i++)
                            output[((b * tokens + t) * heads + h) * headDim + i] += Math.Exp(scores[s - first] - max) / sum * v[((b * tokens + s) * kvHeads + g) * headDim + i];
                }
            }
        return output;
    }

    [Theory]
    [InlineData(1, 70, 1)]
    [InlineData(1, 70, 3)]
    [InlineData(2, 70, 64)]
    [InlineData(1, 70, 65)]
    [InlineData(2, 70, 200)]
    [InlineData(2, 20, 7)]
    public void SlidingWindowAttentionAndItsGradientsMatchTheReference(int batch, int tokens, int window)
    {
        const int heads = 2, kvHeads = 1, headDim = 4;
        var random = new Random(window * 100 + batch);
        var q = GradCheck.Random(random, 1f, batch, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        GradCheck.Assert(
            x => WindowReference(x[0], x[1], x[2], batch, tokens, heads, kvHeads, headDim, window),
            (tape, t) => tape.CausalAttention(t[0], t[1], t[2], heads, kvHeads, window),
            [q, k, v]);
    }

    [Fact]
    public void LongWindowedAttentionMatchesTheReference()
    {
        // Three blocks of queries, a window that skips whole key blocks, grouped heads of 16 channels.
        const int batch = 1, tokens = 200, heads = 4, kvHeads = 2, headDim = 16, window = 70;
        var random = new Random(3);
        var q = GradCheck.Random(random, 1f, batch, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = false;
        GradCheck.Assert(
            x => WindowReference(x[0], x[1], x[2], batch, tokens, heads, kvHeads, headDim, window),
            (tape, t) => tape.CausalAttention(t[0], t[1], t[2], heads, kvHeads, window),
            [q, k, v]);
    }

    [Fact]
    public void AddBiasAndItsGradientsMatchTheReference()
    {
        var random = new Random(5);
        var x = GradCheck.Random(random, 1f, 2, 3, 5);
        var bias = GradCheck.Random(random, 1f, 5);
        GradCheck.Assert(
            v => [.. v[0].Select((value, i) => value + v[1][i % 5])],
            (tape, t) => tape.AddBias(t[0], t[1]),
            [x, bias]);
    }

    [Fact]
    public void BiasesAreParametersNamedAsHuggingFaceAndStartAtZero()
    {
        var config = Family("qwen2");
        var model = new Transformer(config, 1);
        Assert.Equal(config.ParameterCount, model.Parameters.Sum(p => (long)p.Length));
        var bias = model.Parameters.Single(p => p.Name == "model.layers.1.self_attn.k_proj.bias");
        Assert.Equal([config.KvDim], bias.Shape.ToArray());
        Assert.All(bias.Span.ToArray(), value => Assert.Equal(0f, value));
        Assert.DoesNotContain(model.Parameters, p => p.Name!.Contains("o_proj.bias", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void GgufRoundTripKeepsTheFamily(string family)
    {
        var config = Family(family);
        var (model, _) = Build(config, 15);
        string path = Path.Combine(Path.GetTempPath(), $"loom-family-{family}-{Guid.NewGuid():N}.gguf");
        try
        {
            LlamaGguf.Export(path, model, tokenizer: null);
            using (var reader = GgufReader.Open(path))
            {
                Assert.Equal(config.ModelType == LlamaConfig.Qwen2Type ? "qwen2" : "llama", reader.GetString("general.architecture"));
                Assert.Equal(config.AttentionBias, reader.HasTensor("blk.0.attn_q.bias"));
                Assert.Equal(config.RopeScaling is not null, reader.HasTensor(LlamaGguf.RopeFrequenciesTensor));
            }
            var back = LlamaGguf.Import(path).Model;
            Assert.Equal(config, back.Config);
            foreach (var (p, q) in model.Parameters.Zip(back.Parameters))
                Assert.True(p.Span.SequenceEqual(q.Span), $"{p.Name} changed");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A copy of a GGUF without Loom's own keys, as llama.cpp's converter writes it; <paramref name="edit"/> may change a tensor's values.</summary>
    static void CopyWithoutLoomKeys(string from, string to, Action<string, float[]>? edit = null)
    {
        using var reader = GgufReader.Open(from);
        var writer = new GgufWriter();
        foreach (var (key, value) in reader.Metadata)
            if (!key.StartsWith("loom.", StringComparison.Ordinal)) writer.Set(key, value);
        foreach (var info in reader.Tensors)
        {
            var values = reader.ReadFloats(info);
            edit?.Invoke(info.Name, values);
            writer.AddTensor(info.Name, info.Shape, values, GgmlType.F32);
        }
        writer.Write(to);
    }

    [Fact]
    public void AConverterFileWithRopeFreqsReadsAsLlama3Scaling()
    {
        // Llama 3.2's rotary setup (heads of 64, theta 500000, factor 32) on a tiny model.
        var config = Plain with { Dim = 128, Heads = 2, KvHeads = 1, RopeTheta = 500000f, RopeScaling = new RopeScaling(32, 1, 4, 8192) };
        var (model, _) = Build(config, 16);
        string exported = Path.Combine(Path.GetTempPath(), $"loom-llama3-{Guid.NewGuid():N}.gguf");
        string converted = exported + ".converter.gguf";
        try
        {
            LlamaGguf.Export(exported, model, tokenizer: null);
            CopyWithoutLoomKeys(exported, converted);
            using (var reader = GgufReader.Open(converted)) Assert.False(reader.Contains("loom.rope_scaling.factor"));
            var back = LlamaGguf.Import(converted).Model;
            Assert.Equal(config, back.Config);
            var ids = TestModels.Ids(30, config.VocabSize, 17);
            Assert.Equal(TestModels.FullForward(model, ids), TestModels.FullForward(back, ids));

            CopyWithoutLoomKeys(exported, converted, (name, values) => { if (name == LlamaGguf.RopeFrequenciesTensor) values[5] *= 1.5f; });
            var e = Assert.Throws<GgufException>(() => LlamaGguf.Import(converted));
            Assert.Contains("tensor 'rope_freqs.weight' value 5", e.Message);
        }
        finally
        {
            File.Delete(exported);
            File.Delete(converted);
        }
    }
}
