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
    /// <summary>y[m, n] = x[m, k] · w[n, k]ᵀ.</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> w, int m, int k, int n, Span<float> y)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (x.Length < (long)m * k) throw new ArgumentException($"gemv: x has {x.Length} values, needs {m}x{k}", nameof(x));
        if (w.Length < (long)n * k) throw new ArgumentException($"gemv: w has {w.Length} values, needs {n}x{k}", nameof(w));
        if (y.Length < (long)m * n) throw new ArgumentException($"gemv: y has {y.Length} values, needs {m}x{n}", nameof(y));
        fixed (float* px = x, pw = w, py = y)
            Multiply(px, m, k, pw, n, py);
    }

    /// <summary>y[m, n] = x[m, k] · w[n, k]ᵀ.</summary>
    internal static void Multiply(float* x, int m, int k, float* w, int n, float* y) =>
        Multiply(x, m, k, w, n, y, null, 0, null, null, 0, null);

    /// <summary>
    /// Up to three products of the same x in one parallel run (q, k, v or gate, up):
    /// y0[m, n0] = x·w0ᵀ, y1[m, n1] = x·w1ᵀ, y2[m, n2] = x·w2ᵀ; a null weight is skipped.
    /// </summary>
    internal static void Multiply(float* x, int m, int k,
        float* w0, int n0, float* y0, float* w1, int n1, float* y1, float* w2, int n2, float* y2)
    {
        if (m == 0) return;
        if (w1 is null) n1 = 0;
        if (w2 is null) n2 = 0;
        var job = cached ??= new Job();
        int total = n0 + n1 + n2;
        if (total == 0) return;
        // Blocks of whole 4-row tiles, big enough to be worth a hand-off to another thread.
        WorkerPool.Blocks((total + 3) / 4, 4 * k * m, out int tilesPerBlock);
        int rowsPerBlock = tilesPerBlock * 4;
        job.x = x; job.m = m; job.k = k; job.rowsPerBlock = rowsPerBlock;
        job.w0 = w0; job.y0 = y0; job.n0 = n0; job.blocks0 = (n0 + rowsPerBlock - 1) / rowsPerBlock;
        job.w1 = w1; job.y1 = y1; job.n1 = n1; job.blocks1 = (n1 + rowsPerBlock - 1) / rowsPerBlock;
        job.w2 = w2; job.y2 = y2; job.n2 = n2; job.blocks2 = (n2 + rowsPerBlock - 1) / rowsPerBlock;
        WorkerPool.Run(job.blocks0 + job.blocks1 + job.blocks2, job);
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
        int j = start;
        if (Vector512.IsHardwareAccelerated && k >= 16)
        {
            if (m == 1)
                for (; j + 8 <= end; j += 8) Tile1x8(x, k, w + (long)j * k, y + j);
            for (; j + 4 <= end; j += 4)
            {
                float* wj = w + (long)j * k;
                int i = 0;
                for (; i + 4 <= m; i += 4) Tile4x4(x + (long)i * k, k, wj, n, y + (long)i * n + j);
                for (; i < m; i++) Tile1x4(x + (long)i * k, k, wj, y + (long)i * n + j);
            }
        }
        for (; j < end; j++)
        {
            var wRow = new ReadOnlySpan<float>(w + (long)j * k, k);
            for (int i = 0; i < m; i++) y[(long)i * n + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(x + (long)i * k, k), wRow);
        }
    }

    // Every tile sums each output the same way (one vector accumulator over k in steps of 16, then the
    // lanes, then the scalar tail), so a row's result does not depend on how many rows share the step:
    // a sequence decodes to the same tokens alone or in a batch.

    /// <summary>y[0, 0..8) = x[k] · w[8, k]ᵀ: eight independent accumulators keep the FMA units busy for one row.</summary>
    static void Tile1x8(float* x, int k, float* w, float* y)
    {
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, w4 = w3 + k, w5 = w4 + k, w6 = w5 + k, w7 = w6 + k;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> a4 = default, a5 = default, a6 = default, a7 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v = Vector512.Load(x + p);
            a0 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w + p), a0);
            a1 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w1 + p), a1);
            a2 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w2 + p), a2);
            a3 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w3 + p), a3);
            a4 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w4 + p), a4);
            a5 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w5 + p), a5);
            a6 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w6 + p), a6);
            a7 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w7 + p), a7);
        }
        Store(x, w, k, p, a0, a1, a2, a3, y);
        Store(x, w4, k, p, a4, a5, a6, a7, y + 4);
    }

    /// <summary>y[0, 0..4) = x[k] · w[4, k]ᵀ.</summary>
    static void Tile1x4(float* x, int k, float* w, float* y)
    {
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v = Vector512.Load(x + p);
            a0 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w + p), a0);
            a1 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w1 + p), a1);
            a2 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w2 + p), a2);
            a3 = Vector512.FusedMultiplyAdd(v, Vector512.Load(w3 + p), a3);
        }
        Store(x, w, k, p, a0, a1, a2, a3, y);
    }

    /// <summary>y[4 rows of stride n, 0..4) = x[4, k] · w[4, k]ᵀ: 16 accumulators, each loaded vector used four times.</summary>
    static void Tile4x4(float* x, int k, float* w, int n, float* y)
    {
        float* x1 = x + k, x2 = x1 + k, x3 = x2 + k;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = Vector512.Load(w + p); var v1 = Vector512.Load(w1 + p);
            var v2 = Vector512.Load(w2 + p); var v3 = Vector512.Load(w3 + p);
            var u = Vector512.Load(x + p);
            c00 = Vector512.FusedMultiplyAdd(u, v0, c00); c01 = Vector512.FusedMultiplyAdd(u, v1, c01);
            c02 = Vector512.FusedMultiplyAdd(u, v2, c02); c03 = Vector512.FusedMultiplyAdd(u, v3, c03);
            u = Vector512.Load(x1 + p);
            c10 = Vector512.FusedMultiplyAdd(u, v0, c10); c11 = Vector512.FusedMultiplyAdd(u, v1, c11);
            c12 = Vector512.FusedMultiplyAdd(u, v2, c12); c13 = Vector512.FusedMultiplyAdd(u, v3, c13);
            u = Vector512.Load(x2 + p);
            c20 = Vector512.FusedMultiplyAdd(u, v0, c20); c21 = Vector512.FusedMultiplyAdd(u, v1, c21);
            c22 = Vector512.FusedMultiplyAdd(u, v2, c22); c23 = Vector512.FusedMultiplyAdd(u, v3, c23);
            u = Vector512.Load(x3 + p);
            c30 = Vector512.FusedMultiplyAdd(u, v0, c30); c31 = Vector512.FusedMultiplyAdd(u, v1, c31);
            c32 = Vector512.FusedMultiplyAdd(u, v2, c32); c33 = Vector512.FusedMultiplyAdd(u, v3, c33);
        }
        Store(x, w, k, p, c00, c01, c02, c03, y);
        Store(x1, w, k, p, c10, c11, c12, c13, y + n);
        Store(x2, w, k, p, c20, c21, c22, c23, y + 2L * n);
        Store(x3, w, k, p, c30, c31, c32, c33, y + 3L * n);
    }

    /// <summary>One x row of a 4x4 tile: the vector sums plus the scalar tail from <paramref name="p"/> to k.</summary>
    static void Store(float* x, float* w, int k, int p, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, float* y)
    {
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        for (; p < k; p++)
        {
            float v = x[p];
            s0 += w[p] * v; s1 += w1[p] * v; s2 += w2[p] * v; s3 += w3[p] * v;
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }
}
