using Loom.Models.Gguf;
using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>
/// Every int8 kernel (scalar, AVX2, AVX-VNNI) against float64 references: the dequantised weights times the
/// dequantised activations (what the kernel computes, to float rounding), and times the exact activations
/// (within the bound that 8-bit activation rounding allows).
/// </summary>
public sealed class QuantizedGemvTests
{
    static float[] Uniform(int count, int seed, float bound)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => bound * (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    public static TheoryData<GgmlType, QuantizedKernel, int> Cases()
    {
        var data = new TheoryData<GgmlType, QuantizedKernel, int>();
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K })
            foreach (var kernel in new[] { QuantizedKernel.Scalar, QuantizedKernel.Avx2, QuantizedKernel.AvxVnni })
                foreach (int m in new[] { 1, 3, 6 })
                    data.Add(type, kernel, m);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesTheDequantisedReference(GgmlType type, QuantizedKernel kernel, int m)
    {
        const int n = 37;
        int k = type == GgmlType.Q4_K ? 512 : 544; // 17 blocks of 32: the SIMD Q8_0 dot's odd last block
        var weights = Uniform(n * k, 1, 0.1f);
        var x = Uniform(m * k, 2, 2f);
        x[5] = 7f; // an outlier widens one activation block's scale
        var w = QuantizedMatrix.Quantize(weights, n, k, type);
        var y = new float[m * n];
        if (!QuantizedGemv.IsSupported(kernel))
        {
            Assert.Throws<PlatformNotSupportedException>(() => QuantizedGemv.Multiply(x, m, w, y, kernel: kernel));
            return;
        }
        QuantizedGemv.Multiply(x, m, w, y, kernel: kernel);

        var wd = new float[n * k];
        w.Dequantize(wd);
        var xd = new float[m * k]; // the activations as the kernel sees them
        var blockError = new float[m * k / 32]; // half a step of each activation block
        var q = new sbyte[32];
        for (int b = 0; b < m * k / 32; b++)
        {
            QuantizedGemv.QuantizeBlock(x.AsSpan(b * 32, 32), q, out float scale, out _);
            for (int i = 0; i < 32; i++) xd[b * 32 + i] = scale * q[i];
            blockError[b] = scale / 2;
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double quantized = 0, exact = 0, magnitude = 0, bound = 0;
                for (int p = 0; p < k; p++)
                {
                    double wv = wd[j * k + p];
                    quantized += wv * xd[i * k + p];
                    exact += wv * x[i * k + p];
                    magnitude += Math.Abs(wv * xd[i * k + p]);
                    bound += Math.Abs(wv) * blockError[(i * k + p) / 32];
                }
                float actual = y[i * n + j];
                Assert.True(Math.Abs(actual - quantized) <= 2e-6 * magnitude + 1e-6, $"{type} {kernel} y[{i}, {j}] = {actual}, dequantised reference {quantized}");
                Assert.True(Math.Abs(actual - exact) <= bound + 2e-6 * magnitude + 1e-6, $"{type} {kernel} y[{i}, {j}] = {actual}, float reference {exact}, bound {bound}");
            }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_K)]
    public void ARowGetsTheSameBitsAloneInABatchAndOnAnyThreadCount(GgmlType type)
    {
        const int n = 300, k = 768, m = 7;
        var w = QuantizedMatrix.Quantize(Uniform(n * k, 3, 0.05f), n, k, type);
        var x = Uniform(m * k, 4, 1f);
        var batch = new float[m * n];
        using var two = new ComputeContext(2);
        QuantizedGemv.Multiply(x, m, w, batch, two);
        var single = new float[n];
        using var one = new ComputeContext(1);
        for (int i = 0; i < m; i++)
        {
            QuantizedGemv.Multiply(x.AsSpan(i * k, k), 1, w, single, one);
            Assert.Equal(batch.AsSpan(i * n, n).ToArray(), single);
        }
    }

    [Fact]
    public void ProjectionThroughAQuantisedWeightRunsTheKernelAndGivesXItsGradient()
    {
        const int n = 48, k = 256, rows = 20;
        var wValues = Uniform(n * k, 5, 0.1f);
        var w = Tensor.FromQuantized("w", QuantizedMatrix.Quantize(wValues, n, k, GgmlType.Q4_K));
        Assert.False(w.RequiresGrad);
        Assert.Throws<InvalidOperationException>(() => w.Span.Length);
        var x = Tensor.From(Uniform(rows * k, 6, 1f), 2, rows / 2, k);
        x.RequiresGrad = true;
        var tape = new Tape();
        var y = tape.Project(x, w); // [2, 10, n]
        Assert.Equal(new[] { 2, rows / 2, n }, y.Shape.ToArray());
        var direct = new float[rows * n];
        QuantizedGemv.Multiply(x.Span, rows, w.Quantized!, direct);
        Assert.Equal(direct, y.Span.ToArray());

        // loss = Σ y ⊙ g, so dX = g · W (W as stored).
        var g = Tensor.From(Uniform(rows * n, 7, 1f), 2, rows / 2, n);
        var loss = tape.Sum(tape.Mul(y, g)); // [1]
        tape.Backward(loss);
        var wd = new float[n * k];
        w.Quantized!.Dequantize(wd);
        for (int i = 0; i < rows; i++)
            for (int p = 0; p < k; p++)
            {
                double expected = 0;
                for (int j = 0; j < n; j++) expected += g.Span[i * n + j] * (double)wd[j * k + p];
                Assert.Equal(expected, x.Grad!.Span[i * k + p], 4);
            }
    }

    [Fact]
    public void ThreeQuantisedWeightsInOnePassEqualThreeSeparateProducts()
    {
        const int k = 256;
        var x = Tensor.From(Uniform(3 * k, 8, 1f), 1, 3, k);
        var weights = new[] { 64, 32, 32 }.Select((n, i) => Tensor.FromQuantized($"w{i}", QuantizedMatrix.Quantize(Uniform(n * k, 9 + i, 0.1f), n, k, GgmlType.Q8_0))).ToArray();
        var tape = new Tape { Recording = false };
        var (a, b, c) = tape.Project(x, weights[0], weights[1], weights[2]);
        var fused = new[] { a.Span.ToArray(), b.Span.ToArray(), c.Span.ToArray() };
        for (int i = 0; i < 3; i++) Assert.Equal(tape.Project(x, weights[i]).Span.ToArray(), fused[i]);
    }

    [Fact]
    public void AQuantisedEmbeddingTableExpandsTheRowsItLooksUp()
    {
        const int vocab = 10, dim = 64;
        var values = Uniform(vocab * dim, 10, 1f);
        var table = Tensor.FromQuantized("embed", QuantizedMatrix.Quantize(values, vocab, dim, GgmlType.Q8_0));
        var tape = new Tape { Recording = false };
        var y = tape.Embedding(table, [3, 9], 1, 2); // [1, 2, dim]
        var expected = new float[dim];
        table.Quantized!.DequantizeRow(9, expected);
        Assert.Equal(expected, y.Span.Slice(dim, dim).ToArray());
    }

    [SkippableFact]
    public unsafe void VectorActivationQuantisationEqualsTheScalarBlockBitForBit()
    {
        Skip.IfNot(System.Runtime.Intrinsics.X86.Avx2.IsSupported, "AVX2 is not supported on this CPU: the vector quantiser does not run");
        var random = new Random(11);
        var x = new float[32];
        var expected = new sbyte[32];
        var actual = new sbyte[32];
        for (int trial = 0; trial < 2000; trial++)
        {
            float bound = (float)Math.Pow(10, random.Next(-8, 4));
            for (int i = 0; i < 32; i++) x[i] = bound * (float)(random.NextDouble() * 2 - 1);
            // Halfway cases: values at q + 0.5 steps of the scale, which both must round to even.
            if (trial % 3 == 0) for (int i = 0; i < 32; i++) x[i] = (random.Next(-254, 255) / 2f) * (bound / 127f);
            if (trial % 7 == 0) Array.Clear(x);
            QuantizedGemv.QuantizeBlock(x, expected, out float scale, out float sum);
            float vectorScale, vectorSum;
            fixed (float* px = x)
            fixed (sbyte* pq = actual)
                QuantizedGemv.QuantizeBlock(px, pq, out vectorScale, out vectorSum);
            Assert.Equal(expected, actual);
            Assert.Equal(BitConverter.SingleToUInt32Bits(scale), BitConverter.SingleToUInt32Bits(vectorScale));
            Assert.Equal(BitConverter.SingleToUInt32Bits(sum), BitConverter.SingleToUInt32Bits(vectorSum));
        }
    }

    [Fact]
    public unsafe void F16ScalesConvertLikeHalfForEveryBitPattern()
    {
        for (int bits = 0; bits < 65536; bits++)
        {
            ushort h = (ushort)bits;
            float expected = (float)BitConverter.UInt16BitsToHalf(h);
            float actual = QuantizedGemv.Half16((byte*)&h);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"f16 {bits:X4}");
            else Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
        }
    }

    [SkippableTheory]
    [InlineData(GgmlType.Q8_0, QuantizedKernel.Avx2)]
    [InlineData(GgmlType.Q8_0, QuantizedKernel.AvxVnni)]
    [InlineData(GgmlType.Q4_0, QuantizedKernel.Avx2)]
    [InlineData(GgmlType.Q4_0, QuantizedKernel.AvxVnni)]
    [InlineData(GgmlType.Q4_K, QuantizedKernel.Avx2)]
    [InlineData(GgmlType.Q4_K, QuantizedKernel.AvxVnni)]
    public void SimdKernelsEqualTheScalarKernelWithinFloatRounding(GgmlType type, QuantizedKernel kernel)
    {
        // The int32 block dots are exact in every kernel; only the order of the float additions differs (SIMD kernels
        // keep 8 lanes and two chains), so the results agree to a few float32 roundings of the sum of magnitudes.
        Skip.IfNot(QuantizedGemv.IsSupported(kernel), $"{kernel} is not supported on this CPU");
        const int n = 64, k = 1536, m = 2;
        var w = QuantizedMatrix.Quantize(Uniform(n * k, 12, 0.1f), n, k, type);
        var x = Uniform(m * k, 13, 1f);
        var scalar = new float[m * n];
        var simd = new float[m * n];
        QuantizedGemv.Multiply(x, m, w, scalar, kernel: QuantizedKernel.Scalar);
        QuantizedGemv.Multiply(x, m, w, simd, kernel: kernel);
        for (int i = 0; i < m * n; i++)
            Assert.True(Math.Abs(simd[i] - scalar[i]) <= 1e-5f * (1 + Math.Abs(scalar[i])), $"{type} {kernel} y[{i}] = {simd[i]}, scalar {scalar[i]}");
    }
}
