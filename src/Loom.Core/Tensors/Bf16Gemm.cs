using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Loom.Models.Gguf;

namespace Loom.Tensors;

/// <summary>
/// Products with a frozen weight held in bfloat16 (a <see cref="QuantizedMatrix"/> of type BF16: a LoRA base at half the
/// memory of float32): y = x·Wᵀ and the input gradient dX += dY·W. The weight is expanded to float32 a tile of rows (or a
/// block of columns) at a time, never whole; activations stay float32 (no activation quantisation, unlike Q8_0 and Q4).
/// </summary>
public static unsafe class Bf16Gemm
{
    /// <summary>Weight rows expanded at once in <see cref="Multiply"/>: each activation row is read once per tile.</summary>
    const int TileRows = 8;

    /// <summary>Columns of W expanded at once in <see cref="AddInputGradient"/>.</summary>
    const int ColumnBlock = 256;

    /// <summary>
    /// Up to three products of x [m, k]: y0[m, n0] = x·w0ᵀ, and likewise w1, w2 when not null. A weight that is not
    /// BF16 runs through <see cref="QuantizedGemv"/>.
    /// </summary>
    internal static void Multiply(float* x, int m, int k, QuantizedMatrix w0, float* y0, QuantizedMatrix? w1, float* y1,
        QuantizedMatrix? w2, float* y2, ComputeContext compute)
    {
        One(x, m, k, w0, y0, compute);
        if (w1 is not null) One(x, m, k, w1, y1, compute);
        if (w2 is not null) One(x, m, k, w2, y2, compute);
    }

    static void One(float* x, int m, int k, QuantizedMatrix w, float* y, ComputeContext compute)
    {
        if (w.Type != GgmlType.BF16)
        {
            QuantizedGemv.Multiply(x, m, k, w, y, null, null, null, null, compute);
            return;
        }
        if (w.Columns != k) throw new ArgumentException($"bf16 weight {w} does not take rows of {k}", nameof(w));
        var job = cachedForward ??= new ForwardJob();
        job.x = x; job.m = m; job.w = w; job.y = y;
        try
        {
            compute.Run((w.Rows + TileRows - 1) / TileRows, job);
        }
        finally
        {
            job.w = null;
        }
    }

    /// <summary>dX[m, k] += dY[m, n] · W[n, k] for a frozen BF16 W, split over column blocks so no two threads write the same dX values.</summary>
    internal static void AddInputGradient(float* dY, int m, QuantizedMatrix w, float* dX, ComputeContext compute)
    {
        var job = cachedBackward ??= new BackwardJob();
        job.dY = dY; job.m = m; job.w = w; job.dX = dX;
        try
        {
            compute.Run((w.Columns + ColumnBlock - 1) / ColumnBlock, job);
        }
        finally
        {
            job.w = null;
        }
    }

    /// <summary>bfloat16 → float32 (exact: the upper half of the float's bits).</summary>
    public static void Expand(ushort* source, float* target, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                var (lower, upper) = Vector128.Widen(Vector128.Load(source + i));
                Vector256.ShiftLeft(Vector256.Create(lower, upper), 16).AsSingle().Store(target + i);
            }
        }
        for (; i < count; i++) target[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
    }

    [ThreadStatic] static ForwardJob? cachedForward;
    [ThreadStatic] static BackwardJob? cachedBackward;

    sealed class ForwardJob : IParallelWork
    {
        public float* x, y;
        public int m;
        public QuantizedMatrix? w;
        [ThreadStatic] static float[]? tile; // [TileRows, k]

        public void Execute(int index)
        {
            var matrix = w!;
            int n = matrix.Rows, k = matrix.Columns, start = index * TileRows, rows = Math.Min(TileRows, n - start);
            if (tile is null || tile.Length < TileRows * k) tile = GC.AllocateArray<float>(TileRows * k, pinned: true);
            fixed (float* expanded = tile)
            {
                for (int r = 0; r < rows; r++) Expand((ushort*)(matrix.Data + (start + r) * matrix.RowBytes), expanded + r * k, k);
                for (int i = 0; i < m; i++)
                {
                    var input = new ReadOnlySpan<float>(x + (long)i * k, k);
                    float* output = y + (long)i * n + start;
                    for (int r = 0; r < rows; r++) output[r] = TensorPrimitives.Dot(input, new ReadOnlySpan<float>(expanded + r * k, k));
                }
            }
        }
    }

    sealed class BackwardJob : IParallelWork
    {
        public float* dY, dX;
        public int m;
        public QuantizedMatrix? w;
        [ThreadStatic] static float[]? expanded; // [n, width] one column block of W

        public void Execute(int index)
        {
            var matrix = w!;
            int n = matrix.Rows, k = matrix.Columns, first = index * ColumnBlock, width = Math.Min(ColumnBlock, k - first);
            if (expanded is null || expanded.Length < n * ColumnBlock) expanded = GC.AllocateArray<float>(n * ColumnBlock, pinned: true);
            fixed (float* columns = expanded)
            {
                for (int j = 0; j < n; j++) Expand((ushort*)(matrix.Data + j * matrix.RowBytes) + first, columns + j * width, width);
                for (int i = 0; i < m; i++)
                {
                    var target = new Span<float>(dX + (long)i * k + first, width);
                    float* gradient = dY + (long)i * n;
                    for (int j = 0; j < n; j++)
                        if (gradient[j] != 0f) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(columns + j * width, width), gradient[j], target, target);
                }
            }
        }
    }
}
