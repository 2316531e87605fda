using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>Gemm tests count process-wide allocations, so they run alone.</summary>
[CollectionDefinition(nameof(GemmCollection), DisableParallelization = true)]
public class GemmCollection;

[Collection(nameof(GemmCollection))]
public class GemmTests
{
    public static TheoryData<int, int, int> Sizes => new()
    {
        { 1, 1, 1 },
        { 3, 3, 3 },
        { 17, 63, 65 },
        { 65, 17, 130 },
        { 130, 65, 17 },
        { 15, 257, 33 },  // one row past a 14-row tile, one step past a 256 block of k, one column past 32
        { 29, 130, 97 },
        { 63, 520, 1 },
        { 1, 300, 63 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void MatchesReferenceForEveryLayoutAndThreadCount(int m, int k, int n)
    {
        foreach (int threads in new[] { 1, 2 })
            foreach (bool wide in WidthsToTest())
                foreach (bool transposeA in new[] { false, true })
                    foreach (bool transposeB in new[] { false, true })
                        foreach (bool accumulate in new[] { false, true })
                            CheckAgainstReference(m, k, n, transposeA, transposeB, accumulate, threads, wide);
    }

    [Theory]
    [InlineData(64, 1100, 48)]   // transposeA with a long reduction: split between threads, partial sums added in order
    [InlineData(20, 1024, 20)]
    [InlineData(16, 2100, 24)]   // four parts of the reduction over two threads
    [InlineData(520, 1100, 20)]  // a tall A: row blocks against the shared packed B, in two parts of the reduction
    public void WeightGradientShapesMatchReference(int m, int k, int n)
    {
        foreach (int threads in new[] { 1, 2 })
            foreach (bool accumulate in new[] { false, true })
                CheckAgainstReference(m, k, n, transposeA: true, transposeB: false, accumulate, threads, wide: Gemm.UseVector512);
    }

    [Fact]
    public void LargerProductWithTwoThreadsMatchesReference()
    {
        CheckAgainstReference(300, 270, 290, false, true, false, 2, Gemm.UseVector512);
        CheckAgainstReference(300, 270, 290, false, false, true, 2, Gemm.UseVector512);
    }

    [Fact]
    public void OneThreadIsBitIdenticalAcrossCalls()
    {
        var random = new Random(5);
        int m = 70, k = 600, n = 90;
        var a = RandomMatrix(random, m * k);
        var b = RandomMatrix(random, k * n);
        var first = new float[m * n];
        var second = new float[m * n];
        WithThreads(1, compute =>
        {
            Gemm.Multiply(a, b, m, k, n, first, transposeA: true, transposeB: true, compute: compute);
            Gemm.Multiply(a, b, m, k, n, second, transposeA: true, transposeB: true, compute: compute);
        });
        Assert.Equal(first, second);
    }

    [Fact]
    public void TwoThreadsAreDeterministicToo()
    {
        var random = new Random(6);
        int m = 96, k = 2048, n = 80;
        var a = RandomMatrix(random, m * k);
        var b = RandomMatrix(random, k * n);
        var first = new float[m * n];
        var second = new float[m * n];
        WithThreads(2, compute =>
        {
            Gemm.Multiply(a, b, m, k, n, first, transposeA: true, compute: compute);
            Gemm.Multiply(a, b, m, k, n, second, transposeA: true, compute: compute);
        });
        Assert.Equal(first, second);
    }

    [Fact]
    public void SubnormalInputsAreFlushedAndResultsStayCorrect()
    {
        var random = new Random(7);
        int m = 33, k = 70, n = 41;
        var a = RandomMatrix(random, m * k);
        var b = RandomMatrix(random, k * n);
        // Every third element of A and B subnormal: they count as zero (each contributes < 1e-38).
        for (int i = 0; i < a.Length; i += 3) a[i] = 1e-40f * (i % 2 == 0 ? 1 : -1);
        for (int i = 1; i < b.Length; i += 3) b[i] = -3e-39f;
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
            {
                var c = new float[m * n];
                Gemm.Multiply(a, b, m, k, n, c, transposeA, transposeB);
                var expected = Reference(a, b, m, k, n, transposeA, transposeB, null);
                AssertClose(expected, c, $"subnormal tA={transposeA} tB={transposeB}");
            }
        // All subnormal: the product is exactly zero.
        var tiny = Enumerable.Repeat(1e-39f, m * k).ToArray();
        var tinyB = Enumerable.Repeat(2e-39f, k * n).ToArray();
        var zero = Enumerable.Repeat(5f, m * n).ToArray();
        Gemm.Multiply(tiny, tinyB, m, k, n, zero);
        Assert.All(zero, v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(200, 600, 150)]  // row blocks against a shared packed B
    [InlineData(40, 1100, 48)]   // short A, blocked B; transposeA splits the reduction at 2 threads
    [InlineData(600, 1100, 40)]  // row blocks; transposeA splits the reduction at 2 threads
    public void CallAllocatesNoManagedMemoryAfterWarmUp(int m, int k, int n)
    {
        var random = new Random(8);
        var a = RandomMatrix(random, m * k);
        var b = RandomMatrix(random, k * n);
        var c = new float[m * n];
        foreach (int threads in new[] { 1, 2 })
            WithThreads(threads, compute =>
            {
                // Warm up past the JIT's tiering (30 calls, then a background recompile that allocates on its own).
                for (int warm = 0; warm < 40; warm++) RunAllLayouts(a, b, m, k, n, c, compute);
                Thread.Sleep(300);
                Assert.Equal(0, AllocationProbe.FewestBytes(() => RunAllLayouts(a, b, m, k, n, c, compute), warmUp: 0));
            });
    }

    public static TheoryData<int, int, int, int> Blockings => new()
    {
        { 384, 168, 320, 1024 }, // sizes a Zen-like cache rule gives: kc not a power of two, mc of 12 tiles
        { 100, 20, 40, 64 },     // odd sizes: kc not a multiple of 16, mc and nc not whole 14x32 tiles (rounded down)
        { 512, 14, 32, 32 },     // one tile per block
    };

    [Theory]
    [MemberData(nameof(Blockings))]
    public void OtherBlockingsMatchReferenceAndAgreeAcrossThreads(int blockK, int blockRows, int blockCols, int splitCols)
    {
        var saved = Gemm.Blocking;
        try
        {
            Gemm.Blocking = new GemmBlocking(blockK, blockRows, blockCols, splitCols);
            foreach (var (m, k, n) in new[] { (130, 333, 97), (15, 257, 33), (64, 1100, 48), (300, 600, 70) })
                foreach (bool transposeA in new[] { false, true })
                    foreach (bool transposeB in new[] { false, true })
                    {
                        foreach (int threads in new[] { 1, 2 })
                            foreach (bool wide in WidthsToTest())
                                CheckAgainstReference(m, k, n, transposeA, transposeB, accumulate: threads == 2, threads, wide);
                        if (transposeA) continue; // threads split a transposed A's reduction: sums in another order
                        var random = new Random(m + k + n);
                        var a = RandomMatrix(random, m * k);
                        var b = RandomMatrix(random, k * n);
                        var one = new float[m * n];
                        var two = new float[m * n];
                        WithThreads(1, compute => Gemm.Multiply(a, b, m, k, n, one, transposeA, transposeB, compute: compute));
                        WithThreads(2, compute => Gemm.Multiply(a, b, m, k, n, two, transposeA, transposeB, compute: compute));
                        Assert.Equal(one, two);
                    }
        }
        finally { Gemm.Blocking = saved; }
    }

    [Fact]
    public void RejectsShortSpans()
    {
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[5], new float[6], 2, 3, 2, new float[4]));
        Assert.Contains("2x3", ex.Message);
    }

    static void RunAllLayouts(float[] a, float[] b, int m, int k, int n, float[] c, ComputeContext compute)
    {
        Gemm.Multiply(a, b, m, k, n, c, compute: compute);
        Gemm.Multiply(a, b, m, k, n, c, transposeB: true, accumulate: true, compute: compute);
        Gemm.Multiply(a, b, m, k, n, c, transposeA: true, compute: compute);
        Gemm.Multiply(a, b, m, k, n, c, transposeA: true, transposeB: true, accumulate: true, compute: compute);
    }

    static IEnumerable<bool> WidthsToTest() => Gemm.UseVector512 ? [true, false] : [false];

    static void CheckAgainstReference(int m, int k, int n, bool transposeA, bool transposeB, bool accumulate, int threads, bool wide)
    {
        var random = new Random(m * 7919 + k * 104729 + n * 31 + (transposeA ? 1 : 0) + (transposeB ? 2 : 0));
        var a = RandomMatrix(random, m * k);
        var b = RandomMatrix(random, k * n);
        var initial = RandomMatrix(random, m * n);
        var c = (float[])initial.Clone();
        bool saved = Gemm.UseVector512;
        try
        {
            Gemm.UseVector512 = wide;
            WithThreads(threads, compute => Gemm.Multiply(a, b, m, k, n, c, transposeA, transposeB, accumulate, compute));
        }
        finally { Gemm.UseVector512 = saved; }
        var expected = Reference(a, b, m, k, n, transposeA, transposeB, accumulate ? initial : null);
        AssertClose(expected, c, $"m={m} k={k} n={n} tA={transposeA} tB={transposeB} acc={accumulate} threads={threads} wide={wide}");
    }

    static double[] Reference(float[] a, float[] b, int m, int k, int n, bool transposeA, bool transposeB, float[]? initial)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = initial is null ? 0 : initial[i * n + j];
                for (int p = 0; p < k; p++)
                {
                    double x = transposeA ? a[p * m + i] : a[i * k + p];
                    double y = transposeB ? b[j * k + p] : b[p * n + j];
                    sum += x * y;
                }
                c[i * n + j] = sum;
            }
        return c;
    }

    /// <summary>Relative error against the reference, scaled by the largest reference magnitude.</summary>
    static void AssertClose(double[] expected, float[] actual, string what)
    {
        double scale = Math.Max(1e-30, expected.Max(Math.Abs));
        double worst = 0;
        int worstIndex = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]) / scale;
            if (error > worst) { worst = error; worstIndex = i; }
        }
        Assert.True(worst < 1e-5, $"{what}: relative error {worst:E2} at {worstIndex} (expected {expected[worstIndex]}, got {actual[worstIndex]})");
    }

    static float[] RandomMatrix(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    static void WithThreads(int threads, Action<ComputeContext> action)
    {
        using var compute = new ComputeContext(threads);
        action(compute);
    }
}
