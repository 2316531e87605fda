using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Tests.Training;

public sealed class DataParallelLossTests
{
    static readonly LlamaConfig Config = new() { VocabSize = 50, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 64, MaxSeq = 12 };

    static (int[] Ids, int[] Targets) Batch(int batch, int tokens, ulong seed, bool ignoreSome)
    {
        var random = new DeterministicRandom(seed);
        var ids = new int[batch * tokens];
        var targets = new int[batch * tokens];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)random.NextInt64(Config.VocabSize);
            targets[i] = (int)random.NextInt64(Config.VocabSize);
        }
        // Unevenly: row 0 keeps 2 targets, row 1 all, row 2 none, so the parts' means need their weights.
        if (ignoreSome)
            for (int t = 0; t < tokens; t++)
            {
                if (t >= 2) targets[t] = -100;
                if (batch > 2) targets[2 * tokens + t] = -100;
            }
        return (ids, targets);
    }

    static float[][] Gradients(Transformer model) => [.. model.Parameters.Select(p => p.Grad!.Span.ToArray())];

    [Theory]
    [InlineData(4, 2, false, true)]
    [InlineData(5, 2, true, true)]  // rows split 2 + 3, one part with ignored targets
    [InlineData(3, 3, true, true)]  // one row per thread, a part with no counted target at all
    [InlineData(1, 2, false, true)] // fewer rows than threads: one part
    [InlineData(5, 2, true, false)] // each replica its own weight gradients, summed by the collect
    [InlineData(3, 3, true, false)]
    [InlineData(4, 2, false, true, false)] // an untied head: a weight of its own, the embedding's gradient collected at the replicas' tokens only
    public void LossAndGradientsEqualOneForwardOverTheWholeBatch(int batch, int threads, bool ignoreSome, bool shareWeightGradients, bool tied = true)
    {
        var config = Config with { TiedEmbeddings = tied };
        int tokens = config.MaxSeq;
        var (ids, targets) = Batch(batch, tokens, 7, ignoreSome);
        var reference = new Transformer(config, 3);
        using var single = new ComputeContext(1);
        var tape = new Tape(single);
        var referenceLoss = reference.Loss(tape, ids, targets, batch, tokens); // [1]
        float expected = referenceLoss.Scalar();
        tape.Backward(referenceLoss, 0.5f);

        var model = new Transformer(config, 3);
        using var compute = new ComputeContext(threads);
        using var split = new DataParallelLoss(model, compute, shareWeightGradients);
        float loss = split.ForwardBackward(ids, targets, batch, tokens, scale: 0.5f);
        split.CollectGradients();

        Assert.Equal(expected, loss, 1e-5f);
        for (int p = 0; p < model.Parameters.Count; p++)
        {
            var want = reference.Parameters[p].Grad!.Span;
            var got = model.Parameters[p].Grad!.Span;
            double maxAbs = 0, maxDiff = 0;
            for (int i = 0; i < want.Length; i++)
            {
                maxAbs = Math.Max(maxAbs, Math.Abs(want[i]));
                maxDiff = Math.Max(maxDiff, Math.Abs(want[i] - got[i]));
            }
            Assert.True(maxAbs > 0, $"{model.Parameters[p].Name}: the reference gradient is zero");
            Assert.True(maxDiff <= 1e-5 * maxAbs + 1e-9, $"{model.Parameters[p].Name}: gradients differ by {maxDiff} (largest {maxAbs})");
        }
    }

    [Fact]
    public void StepsRepeatBitForBitAndReplicaGradientsStartFromZero()
    {
        int batch = 4, tokens = Config.MaxSeq;
        var (ids, targets) = Batch(batch, tokens, 11, ignoreSome: true);
        float[][] Run(out float[][] second)
        {
            var model = new Transformer(Config, 5);
            using var compute = new ComputeContext(2);
            using var split = new DataParallelLoss(model, compute);
            split.ForwardBackward(ids, targets, batch, tokens);
            split.CollectGradients();
            var first = Gradients(model);
            foreach (var p in model.Parameters) p.ZeroGrad();
            split.ForwardBackward(ids, targets, batch, tokens);
            split.CollectGradients();
            second = Gradients(model);
            return first;
        }
        var a = Run(out var a2);
        var b = Run(out _);
        for (int p = 0; p < a.Length; p++)
        {
            Assert.Equal(a[p], b[p]);  // run to run: the same bits
            Assert.Equal(a[p], a2[p]); // a second step of the same rows: the replicas' gradients were zeroed by the collect
        }
    }

    /// <summary>
    /// A replica that fails (a token id out of range in its rows) releases the other, which would otherwise wait for
    /// it at the first weight gradient, and the failure is reported; the next batch runs as usual.
    /// </summary>
    [Fact]
    public void AReplicasFailureIsReportedAndTheOtherDoesNotWaitForIt()
    {
        int batch = 4, tokens = Config.MaxSeq;
        var (ids, targets) = Batch(batch, tokens, 13, ignoreSome: false);
        var model = new Transformer(Config, 5);
        using var compute = new ComputeContext(2);
        using var split = new DataParallelLoss(model, compute);
        var bad = (int[])ids.Clone();
        bad[^1] = Config.VocabSize;
        var error = Assert.ThrowsAny<Exception>(() => split.ForwardBackward(bad, targets, batch, tokens));
        Assert.Contains("outside", error.ToString());
        foreach (var p in model.Parameters) p.ZeroGrad();
        float loss = split.ForwardBackward(ids, targets, batch, tokens);
        Assert.True(float.IsFinite(loss) && loss > 0, $"loss {loss}");
    }

    [Fact]
    public void ReplicasReadTheModelsWeightsAndKeepTheirOwnGradients()
    {
        var model = new Transformer(Config, 9);
        var replica = model.Replica();
        model.Parameters[1].Span[0] = 42f;
        Assert.Equal(42f, replica.Parameters[1].Span[0]);
        Assert.NotSame(model.Parameters[1], replica.Parameters[1]);
        Assert.Equal(model.Parameters.Count, replica.Parameters.Count);
        Lora.Attach(model, new LoraOptions());
        Assert.Throws<InvalidOperationException>(() => model.Replica());
    }
}
