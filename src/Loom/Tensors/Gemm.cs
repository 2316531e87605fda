using System.Numerics.Tensors;

namespace Loom.Tensors;

/// <summary>
/// Single-precision matrix multiply on row-major, contiguous matrices:
/// C[m, n] = (accumulate ? C : 0) + op(A)[m, k] · op(B)[k, n], where op(A) is A stored [m, k]
/// or, with transposeA, A stored [k, m]; op(B) is B stored [k, n] or, with transposeB, [n, k].
/// </summary>
public static unsafe class Gemm
{
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int k, int n, Span<float> c,
        bool transposeA = false, bool transposeB = false, bool accumulate = false)
    {
        if (a.Length < (long)m * k) throw new ArgumentException($"A has {a.Length} elements, needs {m}x{k}", nameof(a));
        if (b.Length < (long)k * n) throw new ArgumentException($"B has {b.Length} elements, needs {k}x{n}", nameof(b));
        if (c.Length < (long)m * n) throw new ArgumentException($"C has {c.Length} elements, needs {m}x{n}", nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(pa, pb, m, k, n, pc, transposeA, transposeB, accumulate);
    }

    internal static void Multiply(float* a, float* b, int m, int k, int n, float* c,
        bool transposeA, bool transposeB, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        var job = Job ??= new RowJob();
        job.Set(a, b, m, k, n, c, transposeA, transposeB, accumulate);
        WorkerPool.Run((m + RowsPerTask - 1) / RowsPerTask, job);
    }

    const int RowsPerTask = 8;
    [ThreadStatic] static RowJob? Job;

    sealed class RowJob : IParallelWork
    {
        float* a, b, c;
        int m, k, n;
        bool transposeA, transposeB, accumulate;

        public void Set(float* a, float* b, int m, int k, int n, float* c, bool transposeA, bool transposeB, bool accumulate)
        {
            this.a = a; this.b = b; this.c = c;
            this.m = m; this.k = k; this.n = n;
            this.transposeA = transposeA; this.transposeB = transposeB; this.accumulate = accumulate;
        }

        public void Execute(int index)
        {
            int rowEnd = Math.Min(m, (index + 1) * RowsPerTask);
            for (int i = index * RowsPerTask; i < rowEnd; i++)
            {
                var cRow = new Span<float>(c + (long)i * n, n);
                if (!accumulate) cRow.Clear();
                if (transposeB && !transposeA)
                {
                    var aRow = new ReadOnlySpan<float>(a + (long)i * k, k);
                    for (int j = 0; j < n; j++)
                        cRow[j] += TensorPrimitives.Dot(aRow, new ReadOnlySpan<float>(b + (long)j * k, k));
                    continue;
                }
                for (int p = 0; p < k; p++)
                {
                    float aip = transposeA ? a[(long)p * m + i] : a[(long)i * k + p];
                    if (aip == 0f) continue;
                    if (!transposeB)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(b + (long)p * n, n), aip, cRow, cRow);
                    else
                        for (int j = 0; j < n; j++) cRow[j] += aip * b[(long)j * k + p];
                }
            }
        }
    }
}
