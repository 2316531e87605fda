using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Bench;

/// <summary>
/// The machine's single-precision FMA peak: each thread runs 16 independent FMA chains (enough to hide the
/// FMA latency behind its throughput) of the widest accelerated vector, all threads at once.
/// </summary>
internal static class FmaPeak
{
    /// <summary>
    /// GFLOPS of <paramref name="threads"/> threads together, each running <paramref name="iterations"/> rounds of
    /// 16 FMAs; the caller's thread is one of them. Cpu: the same rate by the caller's CPU time (one thread).
    /// </summary>
    public static (double Wall, double Cpu) Sample(int threads, int iterations)
    {
        using var start = new Barrier(threads);
        var workers = new Thread[threads - 1];
        double sink = 0;
        for (int t = 0; t < workers.Length; t++)
        {
            workers[t] = new Thread(() =>
            {
                start.SignalAndWait();
                double value = Chains(iterations);
                lock (workers) sink += value;
            });
            workers[t].Start();
        }
        start.SignalAndWait();
        double cpuStart = ThreadClock.Seconds();
        var clock = Stopwatch.StartNew();
        sink += Chains(iterations);
        double cpu = ThreadClock.Seconds() - cpuStart;
        foreach (var worker in workers) worker.Join();
        double seconds = clock.Elapsed.TotalSeconds;
        if (double.IsNaN(sink)) throw new InvalidOperationException("FMA chains diverged");
        int lanes = Vector512.IsHardwareAccelerated ? 16 : 8;
        double flops = 2.0 * 16 * lanes * (double)iterations;
        return (flops * threads / seconds / 1e9, flops / cpu / 1e9);
    }

    static double Chains(int iterations) => Vector512.IsHardwareAccelerated ? Chains512(iterations) : Chains256(iterations);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static double Chains512(int iterations)
    {
        var m = Vector512.Create(0.999999f);
        var add = Vector512.Create(1e-6f);
        var x0 = Vector512.Create(1f); var x1 = x0; var x2 = x0; var x3 = x0; var x4 = x0; var x5 = x0; var x6 = x0; var x7 = x0;
        var x8 = x0; var x9 = x0; var x10 = x0; var x11 = x0; var x12 = x0; var x13 = x0; var x14 = x0; var x15 = x0;
        for (int i = 0; i < iterations; i++)
        {
            x0 = Vector512.FusedMultiplyAdd(x0, m, add); x1 = Vector512.FusedMultiplyAdd(x1, m, add);
            x2 = Vector512.FusedMultiplyAdd(x2, m, add); x3 = Vector512.FusedMultiplyAdd(x3, m, add);
            x4 = Vector512.FusedMultiplyAdd(x4, m, add); x5 = Vector512.FusedMultiplyAdd(x5, m, add);
            x6 = Vector512.FusedMultiplyAdd(x6, m, add); x7 = Vector512.FusedMultiplyAdd(x7, m, add);
            x8 = Vector512.FusedMultiplyAdd(x8, m, add); x9 = Vector512.FusedMultiplyAdd(x9, m, add);
            x10 = Vector512.FusedMultiplyAdd(x10, m, add); x11 = Vector512.FusedMultiplyAdd(x11, m, add);
            x12 = Vector512.FusedMultiplyAdd(x12, m, add); x13 = Vector512.FusedMultiplyAdd(x13, m, add);
            x14 = Vector512.FusedMultiplyAdd(x14, m, add); x15 = Vector512.FusedMultiplyAdd(x15, m, add);
        }
        var sum = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11 + x12 + x13 + x14 + x15;
        return Vector512.Sum(sum);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static double Chains256(int iterations)
    {
        var m = Vector256.Create(0.999999f);
        var add = Vector256.Create(1e-6f);
        var x0 = Vector256.Create(1f); var x1 = x0; var x2 = x0; var x3 = x0; var x4 = x0; var x5 = x0; var x6 = x0; var x7 = x0;
        var x8 = x0; var x9 = x0; var x10 = x0; var x11 = x0; var x12 = x0; var x13 = x0; var x14 = x0; var x15 = x0;
        for (int i = 0; i < iterations; i++)
        {
            x0 = Vector256.FusedMultiplyAdd(x0, m, add); x1 = Vector256.FusedMultiplyAdd(x1, m, add);
            x2 = Vector256.FusedMultiplyAdd(x2, m, add); x3 = Vector256.FusedMultiplyAdd(x3, m, add);
            x4 = Vector256.FusedMultiplyAdd(x4, m, add); x5 = Vector256.FusedMultiplyAdd(x5, m, add);
            x6 = Vector256.FusedMultiplyAdd(x6, m, add); x7 = Vector256.FusedMultiplyAdd(x7, m, add);
            x8 = Vector256.FusedMultiplyAdd(x8, m, add); x9 = Vector256.FusedMultiplyAdd(x9, m, add);
            x10 = Vector256.FusedMultiplyAdd(x10, m, add); x11 = Vector256.FusedMultiplyAdd(x11, m, add);
            x12 = Vector256.FusedMultiplyAdd(x12, m, add); x13 = Vector256.FusedMultiplyAdd(x13, m, add);
            x14 = Vector256.FusedMultiplyAdd(x14, m, add); x15 = Vector256.FusedMultiplyAdd(x15, m, add);
        }
        var sum = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11 + x12 + x13 + x14 + x15;
        return Vector256.Sum(sum);
    }
}
