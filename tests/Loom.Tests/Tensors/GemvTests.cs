using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class GemvTests
{
    static float[] RandomValues(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];

    /// <summary>y[m, n] = x[m, k] · w[n, k]ᵀ in float64.</summary>
    static double[] Reference(float[] x, float[] w, int m, int k, int n)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)x[i * k + p] * w[j * k + p];
                y[i * n + j] = sum;
            }
        return y;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(1, 17, 5)]
    [InlineData(1, 100, 131)]
    [InlineData(2, 33, 13)]
    [InlineData(3, 16, 4)]
    [InlineData(4, 47, 9)]
    [InlineData(5, 64, 257)]
    [InlineData(7, 15, 30)]
    [InlineData(9, 129, 67)]
    public void MatchesTheScalarReference(int m, int k, int n)
    {
        var random = new Random(m * 1000 + k * 10 + n);
        var x = RandomValues(random, m * k);
        var w = RandomValues(random, n * k);
        var y = new float[m * n];
        y.AsSpan().Fill(float.NaN);
        Gemv.Multiply(x, w, m, k, n, y);
        var expected = Reference(x, w, m, k, n);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) < 1e-5 * Math.Max(1, Math.Sqrt(k)), $"y[{i}] = {y[i]}, expected {expected[i]}");
    }

    [Theory]
    [InlineData(200, 13)]  // 64-float steps, 16-float steps and a scalar tail; groups of four weight rows and a rest
    [InlineData(512, 1536)] // a decode projection of the small preset
    public void ARowIsBitIdenticalAloneOrInABatch(int k, int n)
    {
        // One row and two (one kernel call per x row and weight row), and five (four x rows per weight row, then one alone).
        var random = new Random(k + n);
        var x = RandomValues(random, 5 * k);
        var w = RandomValues(random, n * k);
        var batch = new float[5 * n];
        Gemv.Multiply(x, w, 5, k, n, batch);
        var expected = Reference(x, w, 5, k, n);
        for (int i = 0; i < batch.Length; i++)
            Assert.True(Math.Abs(batch[i] - expected[i]) < 1e-5 * Math.Sqrt(k), $"y[{i}] = {batch[i]}, expected {expected[i]}");
        foreach (int rows in new[] { 1, 2 })
            for (int first = 0; first + rows <= 5; first += rows)
            {
                var part = new float[rows * n];
                Gemv.Multiply(x.AsSpan(first * k, rows * k), w, rows, k, n, part);
                Assert.Equal(batch.AsSpan(first * n, rows * n).ToArray(), part);
            }
    }

    [Fact]
    public unsafe void FusedProductsMatchSeparateOnes()
    {
        const int m = 3, k = 40, n0 = 24, n1 = 11, n2 = 7;
        var random = new Random(9);
        var x = RandomValues(random, m * k);
        var w0 = RandomValues(random, n0 * k);
        var w1 = RandomValues(random, n1 * k);
        var w2 = RandomValues(random, n2 * k);
        var y0 = new float[m * n0];
        var y1 = new float[m * n1];
        var y2 = new float[m * n2];
        fixed (float* px = x, p0 = w0, p1 = w1, p2 = w2, q0 = y0, q1 = y1, q2 = y2)
            Gemv.Multiply(px, m, k, p0, n0, q0, p1, n1, q1, p2, n2, q2, ComputeContext.Default);
        foreach (var (w, y, n) in new[] { (w0, y0, n0), (w1, y1, n1), (w2, y2, n2) })
        {
            var expected = Reference(x, w, m, k, n);
            for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - expected[i]) < 1e-4);
        }
    }

    [Fact]
    public void ShortBuffersAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Gemv.Multiply(new float[5], new float[6], 2, 3, 2, new float[4]));
        Assert.Throws<ArgumentException>(() => Gemv.Multiply(new float[6], new float[6], 2, 3, 2, new float[3]));
    }
}
