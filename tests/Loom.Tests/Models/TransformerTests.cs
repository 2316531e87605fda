using Loom.Models;
using Loom.Tensors;
using Loom.Tests.Tensors;

namespace Loom.Tests.Models;

public class TransformerTests
{
    static readonly LlamaConfig Tiny = new() { VocabSize = 11, Dim = 8, Layers = 2, Heads = 2, KvHeads = 1, HiddenDim = 12, MaxSeq = 8, RopeTheta = 100f, NormEps = 1e-5f };

    /// <summary>A model with large random weights (so every nonlinearity matters) and its float64 twin.</summary>
    static (Transformer Model, LlamaReference Reference) Build(LlamaConfig config, int seed)
    {
        var model = new Transformer(config, (ulong)seed);
        var random = new Random(seed);
        foreach (var p in model.Parameters)
        {
            var span = p.Span;
            for (int i = 0; i < span.Length; i++)
                span[i] = p.Rank == 1 ? 1f + (float)(random.NextDouble() - 0.5) * 0.6f : (float)(random.NextDouble() - 0.5);
        }
        var reference = new LlamaReference(config.VocabSize, config.Dim, config.Layers, config.Heads, config.KvHeads, config.HiddenDim, config.RopeTheta, config.NormEps, config.TiedEmbeddings)
        {
            Weights = model.Parameters.ToDictionary(p => p.Name!, p => p.Span.ToArray().Select(v => (double)v).ToArray()),
        };
        return (model, reference);
    }

    static int[] Ids(int count, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => random.Next(vocab)).ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ForwardMatchesFloat64Reference(bool tied)
    {
        var config = Tiny with { TiedEmbeddings = tied };
        var (model, reference) = Build(config, 3);
        int batch = 2, tokens = 6;
        var ids = Ids(batch * tokens, config.VocabSize, 5);
        var tape = new Tape { Recording = false };
        var logits = model.Forward(tape, ids, batch, tokens);
        Assert.Equal([batch, tokens, config.VocabSize], logits.Shape.ToArray());
        var expected = reference.Logits(ids, batch, tokens);
        double error = GradCheck.RelativeError(logits.Span.ToArray().Select(v => (double)v).ToArray(), expected);
        Assert.True(error < 1e-5, $"logits relative error {error:E3}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ParameterGradientsMatchFiniteDifferences(bool tied)
    {
        var config = Tiny with { TiedEmbeddings = tied };
        var (model, reference) = Build(config, 7);
        int batch = 2, tokens = 5;
        var ids = Ids(batch * tokens, config.VocabSize, 8);
        var targets = Ids(batch * tokens, config.VocabSize, 9);
        var tape = new Tape();
        var loss = model.Loss(tape, ids, targets, batch, tokens);
        Assert.Equal(reference.Loss(ids, targets, batch, tokens), loss.Scalar(), 4);
        tape.Backward(loss);

        var random = new Random(11);
        string[] checkedNames = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
            "model.layers.1.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
            "model.norm.weight", .. tied ? Array.Empty<string>() : ["lm_head.weight"]];
        reference.AssertGradientsMatch(model, ids, targets, batch, tokens, checkedNames, samples: 6, random, label: "");
    }

    [Fact]
    public void InitialisationFollowsTheScheme()
    {
        var config = LlamaConfig.Preset("tiny");
        var model = new Transformer(config, 42);
        Assert.Equal(config.ParameterCount, model.Parameters.Sum(p => (long)p.Length));
        Assert.Equal(model.Parameters.Count, model.Parameters.Select(p => p.Name).Distinct().Count());
        static double Std(Tensor t) => Math.Sqrt(t.Span.ToArray().Select(v => (double)v * v).Average());
        Assert.InRange(Std(model.TokenEmbedding), 0.019, 0.021);
        Assert.InRange(Std(model.Blocks[0].Mlp.Down), 0.02 / Math.Sqrt(4) * 0.95, 0.02 / Math.Sqrt(4) * 1.05);
        Assert.All(model.FinalNorm.Span.ToArray(), v => Assert.Equal(1f, v));
        Assert.Same(model.TokenEmbedding, model.LmHead);
        var again = new Transformer(config, 42);
        Assert.Equal(model.Blocks[1].Attention.Query.Span.ToArray(), again.Blocks[1].Attention.Query.Span.ToArray());
        Assert.NotEqual(model.Blocks[1].Attention.Query.Span.ToArray(), new Transformer(config, 43).Blocks[1].Attention.Query.Span.ToArray());
    }

    [Fact]
    public void FromTensorsNamesTheBadTensor()
    {
        var config = LlamaConfig.Preset("tiny");
        var model = new Transformer(config, 1);
        var tensors = model.Parameters.ToDictionary(p => p.Name!);
        var copy = Transformer.FromTensors(config, tensors, "m.safetensors");
        Assert.Equal(model.Blocks[0].Mlp.Up.Span.ToArray(), copy.Blocks[0].Mlp.Up.Span.ToArray());

        tensors.Remove("model.layers.1.mlp.up_proj.weight");
        Assert.Contains("'model.layers.1.mlp.up_proj.weight' is missing", Assert.Throws<InvalidDataException>(() => Transformer.FromTensors(config, tensors, "m.safetensors")).Message);
        tensors["model.layers.1.mlp.up_proj.weight"] = new Tensor(3, 4) { Name = "model.layers.1.mlp.up_proj.weight" };
        Assert.Contains("has shape [3, 4]", Assert.Throws<InvalidDataException>(() => Transformer.FromTensors(config, tensors, "m.safetensors")).Message);
    }
}
