using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>Runs in the allocation collection: its no-allocation check reads a process-wide counter, so no other test may run beside it.</summary>
[Collection(nameof(AllocationCollection))]
public class AttentionTests
{
    // Small shapes: forward against the float64 reference and every gradient against finite differences.
    // Block size is 64 rows/keys, so 65 and 130 tokens cross block boundaries and leave tails.
    [Theory]
    [InlineData(1, 1, 1, 1, 8)]
    [InlineData(2, 3, 2, 2, 12)]
    [InlineData(1, 3, 4, 1, 16)]
    [InlineData(1, 17, 4, 2, 8)]
    [InlineData(2, 17, 4, 1, 20)]
    [InlineData(1, 63, 2, 2, 5)]
    [InlineData(1, 65, 4, 2, 4)]
    [InlineData(1, 130, 2, 1, 3)]
    public void MatchesReferenceAndFiniteDifferences(int batch, int tokens, int heads, int kvHeads, int headDim)
    {
        var random = new Random(batch * 100000 + tokens * 1000 + heads * 100 + kvHeads * 10 + headDim);
        var q = GradCheck.Random(random, 1f, batch, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        GradCheck.Assert(
            x => Reference(x[0], x[1], x[2], batch, tokens, heads, kvHeads, headDim),
            (tape, t) => tape.CausalAttention(t[0], t[1], t[2], heads, kvHeads),
            [q, k, v]);
    }

    // Larger shapes (full-size heads, several blocks): gradients against the float64 analytic backward.
    [Theory]
    [InlineData(2, 130, 4, 2, 64)]
    [InlineData(1, 65, 4, 4, 32)]
    [InlineData(2, 63, 4, 1, 20)]
    [InlineData(1, 130, 2, 1, 128)]
    [InlineData(1, 200, 4, 1, 12)]
    public void GradientsMatchAnalyticReference(int batch, int tokens, int heads, int kvHeads, int headDim)
    {
        var random = new Random(tokens * 1000 + heads * 100 + kvHeads * 10 + headDim);
        var q = GradCheck.Random(random, 1.5f, batch, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1.5f, batch, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var dOutput = new float[batch * tokens * heads * headDim];
        for (int i = 0; i < dOutput.Length; i++) dOutput[i] = (float)(random.NextDouble() * 2 - 1);

        var tape = new Tape();
        var output = tape.CausalAttention(q, k, v, heads, kvHeads);
        tape.Backward(output, dOutput);

        double[] x0 = ToDouble(q.Span), x1 = ToDouble(k.Span), x2 = ToDouble(v.Span);
        var expected = Reference(x0, x1, x2, batch, tokens, heads, kvHeads, headDim);
        var (dQ, dK, dV) = ReferenceBackward(x0, x1, x2, ToDouble(dOutput), batch, tokens, heads, kvHeads, headDim);
        AssertClose(expected, output.Span, 1e-5, "output");
        AssertClose(dQ, q.Grad!.Span, 1e-4, "dQ");
        AssertClose(dK, k.Grad!.Span, 1e-4, "dK");
        AssertClose(dV, v.Grad!.Span, 1e-4, "dV");
    }

    [Fact]
    public void GradientsAccumulateIntoExistingGradients()
    {
        var random = new Random(7);
        var q = GradCheck.Random(random, 1f, 1, 9, 2 * 8);
        var k = GradCheck.Random(random, 1f, 1, 9, 8);
        var v = GradCheck.Random(random, 1f, 1, 9, 8);
        var seed = new float[9 * 16];
        for (int i = 0; i < seed.Length; i++) seed[i] = (float)(random.NextDouble() * 2 - 1);
        var tape = new Tape();
        tape.Backward(tape.CausalAttention(q, k, v, 2, 1), seed);
        var once = new[] { q.Grad!.Span.ToArray(), k.Grad!.Span.ToArray(), v.Grad!.Span.ToArray() };
        tape.Reset();
        tape.Backward(tape.CausalAttention(q, k, v, 2, 1), seed);
        var twice = new[] { q.Grad!.Span.ToArray(), k.Grad!.Span.ToArray(), v.Grad!.Span.ToArray() };
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < once[t].Length; i++)
                Assert.Equal(2 * once[t][i], twice[t][i], 1e-5f);
    }

    [Fact]
    public void OnlyKeysAndValuesNeedGradients()
    {
        var random = new Random(8);
        var q = GradCheck.Random(random, 1f, 1, 70, 2 * 8);
        q.RequiresGrad = false;
        var k = GradCheck.Random(random, 1f, 1, 70, 8);
        var v = GradCheck.Random(random, 1f, 1, 70, 8);
        GradCheck.Assert(
            x => Reference(x[0], x[1], x[2], 1, 70, 2, 1, 8),
            (tape, t) => tape.CausalAttention(t[0], t[1], t[2], 2, 1),
            [q, k, v]);
        Assert.Null(q.Grad);
    }

    [Theory]
    [InlineData(1, 1, 1, 8)]
    [InlineData(70, 4, 2, 20)]
    [InlineData(130, 8, 2, 64)]
    [InlineData(33, 4, 1, 12)]
    public void DecodeEqualsLastRowOfCausalAttention(int tokens, int heads, int kvHeads, int headDim)
    {
        var random = new Random(tokens + heads + headDim);
        var q = GradCheck.Random(random, 1.5f, 1, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1.5f, 1, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, 1, tokens, kvHeads * headDim);
        var tape = new Tape { Recording = false };
        var full = tape.CausalAttention(q, k, v, heads, kvHeads); // [1, tokens, heads*headDim]
        int width = heads * headDim, kvWidth = kvHeads * headDim;
        // A cache with spare capacity beyond the cached tokens, as a generation loop keeps it; the last token is appended by the op.
        var kCache = new Tensor(1, tokens + 5, kvWidth); // [slots, maxTokens, kvHeads*headDim]
        var vCache = new Tensor(1, tokens + 5, kvWidth); // [slots, maxTokens, kvHeads*headDim]
        k.Span[..((tokens - 1) * kvWidth)].CopyTo(kCache.Span);
        v.Span[..((tokens - 1) * kvWidth)].CopyTo(vCache.Span);
        var decoded = tape.CachedAttention(Tensor.From(q.Span[^width..], 1, 1, width), Tensor.From(k.Span[^kvWidth..], 1, 1, kvWidth),
            Tensor.From(v.Span[^kvWidth..], 1, 1, kvWidth), kCache, vCache, [0], [tokens - 1], heads, kvHeads).Span.ToArray(); // [1, 1, heads*headDim]
        var lastRow = full.Span.Slice((tokens - 1) * width, width);
        var expected = Reference(ToDouble(q.Span), ToDouble(k.Span), ToDouble(v.Span), 1, tokens, heads, kvHeads, headDim);
        AssertClose(ToDouble(lastRow), decoded, 1e-5, "decode vs causal attention");
        AssertClose(expected.AsSpan((tokens - 1) * width, width).ToArray(), decoded, 1e-5, "decode vs reference");
    }

    // (1, 1) runs the split backward (fewer (batch, kv head) pairs than threads) whenever there are several threads.
    [Theory]
    [InlineData(2, 2)]
    [InlineData(1, 1)]
    public void ForwardAndBackwardAllocateNothingAfterWarmUp(int batch, int kvHeads)
    {
        var random = new Random(3);
        int tokens = 130, heads = 4, headDim = 20;
        var q = GradCheck.Random(random, 1f, batch, tokens, heads * headDim);
        var k = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
        var seed = new float[batch * tokens * heads * headDim];
        seed.AsSpan().Fill(0.01f);
        var tape = new Tape();
        // Steps 0-1 warm up (arena, gradients, per-thread scratch); after that a step allocates nothing.
        Assert.Equal(0, AllocationProbe.FewestBytes(() =>
        {
            tape.Reset();
            q.ZeroGrad(); k.ZeroGrad(); v.ZeroGrad();
            tape.Backward(tape.CausalAttention(q, k, v, heads, kvHeads), seed);
        }, warmUp: 2));
    }

    // With (batch, kv head) pairs fewer than the threads the backward splits into key-block and query-block
    // passes; those run the same tiles in the same order, so every thread count gives the same bits.
    [Theory]
    [InlineData(2, 150, 4, 1, 24)]
    [InlineData(1, 150, 4, 1, 24)]
    [InlineData(1, 70, 2, 2, 64)]
    public void ResultsAreBitIdenticalAcrossRunsAndThreadCounts(int batch, int tokens, int heads, int kvHeads, int headDim)
    {
        using var one = new ComputeContext(1);
        using var four = new ComputeContext(4);
        var first = Run(ComputeContext.Default);
        var second = Run(ComputeContext.Default);
        var single = Run(one);
        var many = Run(four);
        for (int t = 0; t < first.Length; t++)
        {
            Assert.True(first[t].AsSpan().SequenceEqual(second[t]), $"result {t} differs between two runs");
            Assert.True(first[t].AsSpan().SequenceEqual(single[t]), $"result {t} differs with one thread");
            Assert.True(first[t].AsSpan().SequenceEqual(many[t]), $"result {t} differs with four threads");
        }

        float[][] Run(ComputeContext compute)
        {
            var random = new Random(11);
            var q = GradCheck.Random(random, 1f, batch, tokens, heads * headDim);
            var k = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
            var v = GradCheck.Random(random, 1f, batch, tokens, kvHeads * headDim);
            var seed = new float[batch * tokens * heads * headDim];
            for (int i = 0; i < seed.Length; i++) seed[i] = (float)(random.NextDouble() * 2 - 1);
            var tape = new Tape(compute);
            var output = tape.CausalAttention(q, k, v, heads, kvHeads);
            tape.Backward(output, seed);
            return [output.Span.ToArray(), q.Grad!.Span.ToArray(), k.Grad!.Span.ToArray(), v.Grad!.Span.ToArray()];
        }
    }

    [Fact]
    public void RejectsBadShapes()
    {
        var tape = new Tape();
        var q = new Tensor(1, 4, 8);
        var k = new Tensor(1, 4, 4);
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(q, k, k, 3, 1));               // 8 channels, 3 heads
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(q, k, k, 4, 3));               // 4 % 3 != 0
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(q, k, k, 2, 2));               // k needs 2x4 channels
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(q, k, new Tensor(1, 4, 2), 2, 1));
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(q, new Tensor(1, 5, 4), new Tensor(1, 5, 4), 2, 1));
        Assert.Throws<ArgumentException>(() => tape.CausalAttention(new Tensor(4, 8), k, k, 2, 1));
        var cache = new Tensor(1, 4, 4);
        Assert.Throws<ArgumentException>(() => new Tape { Recording = false }.CachedAttention(q, k, k, cache, cache, [1], [0], 2, 1)); // no slot 1
        Assert.Throws<ArgumentException>(() => new Tape { Recording = false }.CachedAttention(q, k, k, cache, cache, [0], [1], 2, 1)); // 1 + 4 tokens > 4
    }

    /// <summary>Causal attention in float64, written plainly: scores, softmax, weighted sum.</summary>
    static double[] Reference(double[] q, double[] k, double[] v, int batch, int tokens, int heads, int kvHeads, int headDim)
    {
        int qWidth = heads * headDim, kvWidth = kvHeads * headDim, group = heads / kvHeads;
        double scale = 1 / Math.Sqrt(headDim);
        var output = new double[batch * tokens * qWidth];
        var weights = new double[tokens];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                for (int i = 0; i < tokens; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j <= i; j++)
                    {
                        double s = 0;
                        for (int d = 0; d < headDim; d++)
                            s += q[(b * tokens + i) * qWidth + h * headDim + d] * k[(b * tokens + j) * kvWidth + g * headDim + d];
                        weights[j] = s * scale;
                        max = Math.Max(max, weights[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) sum += weights[j] = Math.Exp(weights[j] - max);
                    for (int d = 0; d < headDim; d++)
                    {
                        double o = 0;
                        for (int j = 0; j <= i; j++) o += weights[j] * v[(b * tokens + j) * kvWidth + g * headDim + d];
                        output[(b * tokens + i) * qWidth + h * headDim + d] = o / sum;
                    }
                }
            }
        return output;
    }

    /// <summary>The textbook backward in float64: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS·K·scale, dK = dSᵀ·Q·scale.</summary>
    static (double[] dQ, double[] dK, double[] dV) ReferenceBackward(double[] q, double[] k, double[] v, double[] dOutput,
        int batch, int tokens, int heads, int kvHeads, int headDim)
    {
        int qWidth = heads * headDim, kvWidth = kvHeads * headDim, group = heads / kvHeads;
        double scale = 1 / Math.Sqrt(headDim);
        double[] dQ = new double[q.Length], dK = new double[k.Length], dV = new double[v.Length];
        var p = new double[tokens];
        var dP = new double[tokens];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                for (int i = 0; i < tokens; i++)
                {
                    int qi = (b * tokens + i) * qWidth + h * headDim;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j <= i; j++)
                    {
                        double s = 0;
                        for (int d = 0; d < headDim; d++) s += q[qi + d] * k[(b * tokens + j) * kvWidth + g * headDim + d];
                        p[j] = s * scale;
                        max = Math.Max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) sum += p[j] = Math.Exp(p[j] - max);
                    double rowDot = 0;
                    for (int j = 0; j <= i; j++)
                    {
                        p[j] /= sum;
                        int kj = (b * tokens + j) * kvWidth + g * headDim;
                        double s = 0;
                        for (int d = 0; d < headDim; d++)
                        {
                            s += dOutput[qi + d] * v[kj + d];
                            dV[kj + d] += p[j] * dOutput[qi + d];
                        }
                        dP[j] = s;
                        rowDot += p[j] * s;
                    }
                    for (int j = 0; j <= i; j++)
                    {
                        double dS = p[j] * (dP[j] - rowDot) * scale;
                        int kj = (b * tokens + j) * kvWidth + g * headDim;
                        for (int d = 0; d < headDim; d++)
                        {
                            dQ[qi + d] += dS * k[kj + d];
                            dK[kj + d] += dS * q[qi + d];
                        }
                    }
                }
            }
        return (dQ, dK, dV);
    }

    static double[] ToDouble(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = values[i];
        return result;
    }

    static void AssertClose(double[] expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        double error = GradCheck.RelativeError(ToDouble(actual), expected);
        Assert.True(error < tolerance, $"{what}: relative error {error:E3} ≥ {tolerance:E0}");
    }
}
