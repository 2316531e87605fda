using System.Diagnostics;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// The machine's attainable float32 FLOP rate, measured by timing Loom's own GEMM on a
/// representative shape on the threads of the run's <see cref="ComputeContext"/>. Model-FLOPs
/// utilisation (MFU) is a run's model FLOPs per second divided by this figure, so it says how much
/// of what the matrix kernel can do the whole training step achieves.
/// </summary>
public static class PeakFlops
{
    /// <summary>
    /// FLOP/s of C[m, n] = A[m, k]·B[k, n], best of repeated runs lasting at least <paramref name="minimumTime"/> in all,
    /// on <paramref name="compute"/>'s threads (null: <see cref="ComputeContext.Default"/>).
    /// </summary>
    public static double Measure(int m = 4096, int k = 256, int n = 1024, TimeSpan? minimumTime = null, ComputeContext? compute = null)
    {
        var budget = minimumTime ?? TimeSpan.FromMilliseconds(300);
        var a = new Tensor(m, k); // [m, k]
        var b = new Tensor(k, n); // [k, n]
        var c = new Tensor(m, n); // [m, n]
        var random = new DeterministicRandom(7);
        for (int i = 0; i < a.Length; i++) a[i] = (float)random.NextDouble() - 0.5f;
        for (int i = 0; i < b.Length; i++) b[i] = (float)random.NextDouble() - 0.5f;
        Gemm.Multiply(a.Span, b.Span, m, k, n, c.Span, compute: compute); // warm-up: JIT, packing buffers, worker threads
        double best = double.MaxValue;
        var total = Stopwatch.StartNew();
        int runs = 0;
        while (runs < 2 || total.Elapsed < budget)
        {
            long start = Stopwatch.GetTimestamp();
            Gemm.Multiply(a.Span, b.Span, m, k, n, c.Span, compute: compute);
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            runs++;
        }
        return 2.0 * m * k * n / best;
    }
}
