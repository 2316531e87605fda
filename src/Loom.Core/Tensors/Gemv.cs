using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>
/// Matrix products with few rows, y[m, n] = x[m, k] · W[n, k]ᵀ (the Hugging Face Linear layout), for
/// decoding where m is the number of sequences in a step. A packed GEMM spends as long packing W as
/// multiplying when m is small; here each weight row is streamed from memory once and dotted with all
/// m rows of x while it sits in L1. Work is split over blocks of weight rows (output columns).
/// </summary>
public static unsafe class Gemv
{
    /// <summary>y[m, n] = x[m, k] · w[n, k]ᵀ, on <paramref name="compute"/>'s threads (null: <see cref="ComputeContext.Default"/>).</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> w, int m, int k, int n, Span<float> y, ComputeContext? compute = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (x.Length < (long)m * k) throw new ArgumentException($"gemv: x has {x.Length} values, needs {m}x{k}", nameof(x));
        if (w.Length < (long)n * k) throw new ArgumentException($"gemv: w has {w.Length} values, needs {n}x{k}", nameof(w));
        if (y.Length < (long)m * n) throw new ArgumentException($"gemv: y has {y.Length} values, needs {m}x{n}", nameof(y));
        fixed (float* px = x, pw = w, py = y)
            Multiply(px, m, k, pw, n, py, compute ?? ComputeContext.Default);
    }

    /// <summary>y[m, n] = x[m, k] · w[n, k]ᵀ.</summary>
    internal static void Multiply(float* x, int m, int k, float* w, int n, float* y, ComputeContext compute) =>
        Multiply(x, m, k, w, n, y, null, 0, null, null, 0, null, compute);

    /// <summary>
    /// Up to three products of the same x in one parallel run (q, k, v or gate, up):
    /// y0[m, n0] = x·w0ᵀ, y1[m, n1] = x·w1ᵀ, y2[m, n2] = x·w2ᵀ; a null weight is skipped.
    /// </summary>
    internal static void Multiply(float* x, int m, int k,
        float* w0, int n0, float* y0, float* w1, int n1, float* y1, float* w2, int n2, float* y2, ComputeContext compute)
    {
        if (m == 0) return;
        if (w1 is null) n1 = 0;
        if (w2 is null) n2 = 0;
        var job = cached ??= new Job();
        int total = n0 + n1 + n2;
        if (total == 0) return;
        // Blocks of whole 4-row tiles, big enough to be worth a hand-off to another thread.
        ComputeContext.Blocks((total + 3) / 4, 4 * k * m, out int tilesPerBlock);
        int rowsPerBlock = tilesPerBlock * 4;
        job.x = x; job.m = m; job.k = k; job.rowsPerBlock = rowsPerBlock;
        job.w0 = w0; job.y0 = y0; job.n0 = n0; job.blocks0 = (n0 + rowsPerBlock - 1) / rowsPerBlock;
        job.w1 = w1; job.y1 = y1; job.n1 = n1; job.blocks1 = (n1 + rowsPerBlock - 1) / rowsPerBlock;
        job.w2 = w2; job.y2 = y2; job.n2 = n2; job.blocks2 = (n2 + rowsPerBlock - 1) / rowsPerBlock;
        compute.Run(job.blocks0 + job.blocks1 + job.blocks2, job);
    }

    [ThreadStatic] static Job? cached;

    sealed class Job : IParallelWork
    {
        public float* x, w0, y0, w1, y1, w2, y2;
        public int m, k, rowsPerBlock, n0, n1, n2, blocks0, blocks1, blocks2;

        public void Execute(int index)
        {
            float* w, y;
            int n;
            if (index < blocks0) { w = w0; y = y0; n = n0; }
            else if ((index -= blocks0) < blocks1) { w = w1; y = y1; n = n1; }
            else { index -= blocks1; w = w2; y = y2; n = n2; }
            int start = index * rowsPerBlock;
            Rows(x, m, k, w, n, start, Math.Min(n, start + rowsPerBlock), y);
        }
    }

    /// <summary>Columns [start, end) of y[m, n] = x[m, k] · w[n, k]ᵀ.</summary>
    static void Rows(float* x, int m, int k, float* w, int n, int start, int end, float* y)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            for (int j = start; j < end; j++)
            {
                var wRow = new ReadOnlySpan<float>(w + (long)j * k, k);
                for (int i = 0; i < m; i++) y[(long)i * n + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(x + (long)i * k, k), wRow);
            }
            return;
        }
        // One weight row at a time, streamed once (a single sequential stream per thread is what the
        // hardware prefetcher follows best), dotted with four x rows at a time while it is in L1.
        for (int j = start; j < end; j++)
        {
            float* wRow = w + (long)j * k;
            int i = 0;
            for (; i + 4 <= m; i += 4) Dot4Rows(x + (long)i * k, k, wRow, y + (long)i * n + j, n);
            for (; i < m; i++) y[(long)i * n + j] = Dot(x + (long)i * k, wRow, k);
        }
    }

    // Both kernels sum each output in the same order (four accumulators over 64-float steps, then
    // 16-float steps into the first, (a0 + a1) + (a2 + a3), the lanes, the scalar tail), so a row's
    // result does not depend on how many rows share the step: a sequence decodes to the same tokens
    // alone or in a batch.

    /// <summary>x[k] · w[k].</summary>
    static float Dot(float* x, float* w, int k)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int p = 0;
        for (; p + 64 <= k; p += 64)
        {
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(w + p), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 16), Vector512.Load(w + p + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 32), Vector512.Load(w + p + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 48), Vector512.Load(w + p + 48), a3);
        }
        for (; p + 16 <= k; p += 16) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(w + p), a0);
        float sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        for (; p < k; p++) sum += x[p] * w[p];
        return sum;
    }

    /// <summary>y[i·stride] = x[i] · w for four rows x[i] of k: each weight vector is loaded once for the four.</summary>
    static void Dot4Rows(float* x, int k, float* w, float* y, int stride)
    {
        float* x1 = x + k, x2 = x1 + k, x3 = x2 + k;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default;
        int p = 0;
        for (; p + 64 <= k; p += 64)
        {
            var w0 = Vector512.Load(w + p);
            var w1 = Vector512.Load(w + p + 16);
            var w2 = Vector512.Load(w + p + 32);
            var w3 = Vector512.Load(w + p + 48);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), w0, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 16), w1, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 32), w2, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 48), w3, a3);
            b0 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + p), w0, b0);
            b1 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + p + 16), w1, b1);
            b2 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + p + 32), w2, b2);
            b3 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + p + 48), w3, b3);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + p), w0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + p + 16), w1, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + p + 32), w2, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + p + 48), w3, c3);
            d0 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + p), w0, d0);
            d1 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + p + 16), w1, d1);
            d2 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + p + 32), w2, d2);
            d3 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + p + 48), w3, d3);
        }
        for (; p + 16 <= k; p += 16)
        {
            var w0 = Vector512.Load(w + p);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), w0, a0);
            b0 = Vector512.FusedMultiplyAdd(Vector512.Load(x1 + p), w0, b0);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Load(x2 + p), w0, c0);
            d0 = Vector512.FusedMultiplyAdd(Vector512.Load(x3 + p), w0, d0);
        }
        float sa = Vector512.Sum((a0 + a1) + (a2 + a3)), sb = Vector512.Sum((b0 + b1) + (b2 + b3));
        float sc = Vector512.Sum((c0 + c1) + (c2 + c3)), sd = Vector512.Sum((d0 + d1) + (d2 + d3));
        for (; p < k; p++)
        {
            float v = w[p];
            sa += x[p] * v; sb += x1[p] * v; sc += x2[p] * v; sd += x3[p] * v;
        }
        y[0] = sa; y[stride] = sb; y[2L * stride] = sc; y[3L * stride] = sd;
    }
}
