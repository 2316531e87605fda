using Loom.Models;
using Loom.Tensors;

namespace Loom.Tests.Models;

public sealed class LoraTests : IDisposable
{
    readonly string directory = Path.Combine(Path.GetTempPath(), "loom-lora-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    static readonly LlamaConfig Tiny = new() { VocabSize = 32, Dim = 16, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 24, MaxSeq = 8 };

    static int[] Ids(int count, int vocab, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(vocab))];
    }

    static float[] Logits(Transformer model, int[] ids, int batch, int tokens) =>
        model.Forward(new Tape { Recording = false }, ids, batch, tokens).Span.ToArray();

    /// <summary>Rank 8 on a 4-layer, 256-dim model (vocabulary 4096, MLP 768): q_proj+v_proj train 0.73 % of the weights, all four attention projections 1.47 %.</summary>
    [Theory]
    [InlineData("q_proj,v_proj", 32_768)]
    [InlineData("q_proj,k_proj,v_proj,o_proj", 65_536)]
    public void Rank8AdaptersAreAtMostTwoPercentOfTheModel(string targets, int expected)
    {
        var config = new LlamaConfig { VocabSize = 4096, Dim = 256, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 768, MaxSeq = 64 };
        var model = new Transformer(config);
        var trainable = Lora.Attach(model, new LoraOptions { Rank = 8, Alpha = 16, Targets = targets.Split(',') });
        long adapterParameters = trainable.Sum(t => (long)t.Length);
        Assert.Equal(expected, adapterParameters);
        Assert.True(adapterParameters <= 0.02 * config.ParameterCount, $"{adapterParameters} of {config.ParameterCount}");
        Assert.All(model.Parameters, p => Assert.False(p.RequiresGrad));
        Assert.All(trainable, t => Assert.True(t.RequiresGrad));
    }

    [Fact]
    public void FreshAdapterLeavesTheModelUnchanged()
    {
        var model = new Transformer(Tiny, 3);
        var ids = Ids(2 * 6, Tiny.VocabSize, 1);
        var before = Logits(model, ids, 2, 6);
        Lora.Attach(model, new LoraOptions { Rank = 4, Targets = LoraOptions.AllTargets });
        Assert.Equal(before, Logits(model, ids, 2, 6));
    }

    [Fact]
    public void MergedModelGivesTheAdaptedLogits()
    {
        var model = new Transformer(Tiny, 3);
        var trainable = Lora.Attach(model, new LoraOptions { Rank = 4, Alpha = 8, Targets = LoraOptions.AllTargets });
        var random = new Random(5);
        foreach (var t in trainable.Where(t => t.Name!.Contains("lora_B")))
            for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
        var ids = Ids(2 * 7, Tiny.VocabSize, 2);
        var plain = new Transformer(Tiny, 3);
        var basis = Logits(plain, ids, 2, 7);
        var adapted = Logits(model, ids, 2, 7);
        Assert.True(adapted.Zip(basis).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the adapters must change the logits for this test to mean anything");

        Lora.Merge(model);
        Assert.Empty(Lora.Adapters(model));
        var merged = Logits(model, ids, 2, 7);
        double maxError = adapted.Zip(merged).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(maxError < 1e-5, $"merged logits differ by {maxError:E2}");
    }

    [Fact]
    public void OnlyAdaptersGetGradients()
    {
        var model = new Transformer(Tiny, 3);
        var trainable = Lora.Attach(model, new LoraOptions { Rank = 2, Targets = ["q_proj", "down_proj"] });
        foreach (var t in trainable.Where(t => t.Name!.Contains("lora_B"))) t.Span.Fill(0.1f);
        var ids = Ids(6, Tiny.VocabSize, 3);
        var tape = new Tape();
        var loss = model.Loss(tape, ids, [.. ids.Skip(1), 0], 1, 6);
        tape.Backward(loss);
        Assert.All(model.Parameters, p => Assert.Null(p.Grad));
        Assert.All(trainable, t => Assert.True(t.Grad!.Span.ToArray().Any(v => v != 0), t.Name));
    }

    [Fact]
    public void SavesInPeftLayoutAndLoadsBack()
    {
        var model = new Transformer(Tiny, 3);
        var options = new LoraOptions { Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"] };
        var trainable = Lora.Attach(model, options);
        foreach (var t in trainable) t.Span.Fill(0.01f * t.Name!.Length);
        Lora.Save(directory, model, options);

        var content = SafeTensors.Read(Path.Combine(directory, Lora.WeightsFileName));
        Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", content.Tensors.Keys);
        Assert.Contains("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", content.Tensors.Keys);
        Assert.Equal([4, 16], content.Tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].Shape.ToArray());
        string config = File.ReadAllText(Path.Combine(directory, Lora.ConfigFileName));
        Assert.Contains("\"peft_type\": \"LORA\"", config);
        Assert.Contains("\"r\": 4", config);

        var other = new Transformer(Tiny, 3);
        var loaded = Lora.Load(directory, other);
        Assert.Equal(trainable.Select(t => t.Name), loaded.Select(t => t.Name));
        for (int i = 0; i < trainable.Count; i++) Assert.Equal(trainable[i].Span.ToArray(), loaded[i].Span.ToArray());
        var ids = Ids(5, Tiny.VocabSize, 4);
        Assert.Equal(Logits(model, ids, 1, 5), Logits(other, ids, 1, 5));
    }

    [Fact]
    public void UnknownTargetIsAOneLineError()
    {
        var e = Assert.Throws<ArgumentException>(() => new LoraOptions { Targets = ["q_proj", "qkv"] }.Validate());
        Assert.Contains("unknown module 'qkv'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
