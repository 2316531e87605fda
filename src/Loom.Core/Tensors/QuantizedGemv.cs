using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Loom.Models.Gguf;

namespace Loom.Tensors;

/// <summary>Which instructions <see cref="QuantizedGemv"/> dots int8 with.</summary>
public enum QuantizedKernel
{
    /// <summary>The best the CPU has: <see cref="AvxVnni"/>, else <see cref="Avx2"/>, else <see cref="Scalar"/>.</summary>
    Auto,
    /// <summary>Plain integer loops (any CPU; the reference the others are tested against).</summary>
    Scalar,
    /// <summary>AVX2: u8×s8 pairs summed to s16 (<c>vpmaddubsw</c>), then to s32 (<c>vpmaddwd</c>).</summary>
    Avx2,
    /// <summary>AVX-VNNI: u8×s8 quadruples summed straight into s32 (<c>vpdpbusd</c>).</summary>
    AvxVnni,
}

/// <summary>
/// y[m, n] = x[m, k] · W[n, k]ᵀ with W held quantised (<see cref="QuantizedMatrix"/>: Q8_0, Q4_0, Q4_K), as llama.cpp
/// does it: the rows of x are quantised to 8 bits in blocks of 32 (a float scale per block, and the block's sum for
/// the formats with an offset or a min), every weight block is dotted with its activation block in int8 → int32
/// (<c>vpdpbusd</c> with AVX-VNNI, <c>vpmaddubsw</c> + <c>vpmaddwd</c> with AVX2, or plain loops), and the int32
/// sums are scaled and added in float32. Each weight row is streamed from memory once and dotted with every row of
/// x while it sits in L1 (a decode step of many sequences, a prompt), and blocks of weight rows are spread over
/// the <see cref="ComputeContext"/>. A row's sum is formed in the same order whatever the number of rows, so a
/// sequence decodes to the same logits alone or in a batch.
/// </summary>
/// <remarks>
/// Signed × signed (Q8_0) uses the sign trick: |w| (unsigned) × sign(w)·x. Q4_0 nibbles q are unsigned already:
/// Σ (q − 8)·x = Σ q·x − 8·Σ x, with Σ x kept per activation block. Q4_K adds d·scale per sub-block of 32 and
/// subtracts dmin·min·Σ x. Activation blocks of 32 fit every format (Q4_K's sub-blocks are 32 long), so one
/// quantisation of x serves every weight it meets.
/// </remarks>
public static unsafe class QuantizedGemv
{
    /// <summary>Elements per activation block.</summary>
    public const int ActivationBlock = 32;

    /// <summary>The kernel <see cref="QuantizedKernel.Auto"/> picks on this CPU.</summary>
    public static QuantizedKernel Best =>
        System.Runtime.Intrinsics.X86.AvxVnni.IsSupported ? QuantizedKernel.AvxVnni
        : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? QuantizedKernel.Avx2
        : QuantizedKernel.Scalar;

    /// <summary>Whether <paramref name="kernel"/> runs on this CPU.</summary>
    public static bool IsSupported(QuantizedKernel kernel) => kernel switch
    {
        QuantizedKernel.Auto or QuantizedKernel.Scalar => true,
        QuantizedKernel.Avx2 => System.Runtime.Intrinsics.X86.Avx2.IsSupported,
        QuantizedKernel.AvxVnni => System.Runtime.Intrinsics.X86.AvxVnni.IsSupported && System.Runtime.Intrinsics.X86.Avx2.IsSupported,
        _ => false,
    };

    /// <summary>y[m, n] = x[m, k] · wᵀ for w [n, k], on <paramref name="compute"/>'s threads (null: <see cref="ComputeContext.Default"/>).</summary>
    public static void Multiply(ReadOnlySpan<float> x, int m, QuantizedMatrix w, Span<float> y, ComputeContext? compute = null,
        QuantizedKernel kernel = QuantizedKernel.Auto)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        int k = w.Columns, n = w.Rows;
        if (x.Length < (long)m * k) throw new ArgumentException($"x has {x.Length} values, needs {m}x{k}", nameof(x));
        if (y.Length < (long)m * n) throw new ArgumentException($"y has {y.Length} values, needs {m}x{n}", nameof(y));
        fixed (float* px = x, py = y)
            Multiply(px, m, k, w, py, null, null, null, null, compute ?? ComputeContext.Default, kernel);
    }

    /// <summary>
    /// Up to three products of the same x [m, k] in one parallel run: y0[m, n0] = x·w0ᵀ, and likewise w1, w2 when
    /// not null. x is quantised once for all three.
    /// </summary>
    internal static void Multiply(float* x, int m, int k, QuantizedMatrix w0, float* y0, QuantizedMatrix? w1, float* y1,
        QuantizedMatrix? w2, float* y2, ComputeContext compute, QuantizedKernel kernel = QuantizedKernel.Auto)
    {
        if (m == 0) return;
        if (w0.Type == GgmlType.BF16 || w1?.Type == GgmlType.BF16 || w2?.Type == GgmlType.BF16)
        {
            Bf16Gemm.Multiply(x, m, k, w0, y0, w1, y1, w2, y2, compute);
            return;
        }
        if (kernel == QuantizedKernel.Auto) kernel = Best;
        if (!IsSupported(kernel)) throw new PlatformNotSupportedException($"the {kernel} kernel does not run on this CPU");
        Check(w0, k);
        if (w1 is not null) Check(w1, k);
        if (w2 is not null) Check(w2, k);
        var job = cached ??= new Job();
        job.activations.Quantize(x, m, k);
        int n0 = w0.Rows, n1 = w1?.Rows ?? 0, n2 = w2?.Rows ?? 0;
        // Blocks of whole 4-row tiles, big enough to be worth a hand-off (a quantised row costs about k/4 float-row operations).
        ComputeContext.Blocks((n0 + n1 + n2 + 3) / 4, Math.Max(1, k * m), out int tilesPerBlock);
        int rowsPerBlock = tilesPerBlock * 4;
        job.kernel = kernel; job.m = m; job.k = k; job.rowsPerBlock = rowsPerBlock;
        job.w0 = w0; job.y0 = y0; job.n0 = n0; job.blocks0 = (n0 + rowsPerBlock - 1) / rowsPerBlock;
        job.w1 = w1; job.y1 = y1; job.n1 = n1; job.blocks1 = (n1 + rowsPerBlock - 1) / rowsPerBlock;
        job.w2 = w2; job.y2 = y2; job.n2 = n2; job.blocks2 = (n2 + rowsPerBlock - 1) / rowsPerBlock;
        try
        {
            compute.Run(job.blocks0 + job.blocks1 + job.blocks2, job);
        }
        finally
        {
            job.w0 = job.w1 = job.w2 = null;
        }
    }

    static void Check(QuantizedMatrix w, int k)
    {
        if (w.Columns != k) throw new ArgumentException($"quantised weight {w} does not take rows of {k}", nameof(w));
    }

    [ThreadStatic] static Job? cached;

    /// <summary>x quantised to 8 bits in blocks of 32: values [m, k], and per block its scale d and d·Σq.</summary>
    internal sealed class Activations
    {
        sbyte[] values = [];  // [m, k]
        float[] scales = [];  // [m, k / 32]
        float[] sums = [];    // [m, k / 32] d · Σ q: the block's sum as the int8 dot sees it
        public int K;

        public sbyte* Values => (sbyte*)Unsafe.AsPointer(ref values[0]);
        public float* Scales => (float*)Unsafe.AsPointer(ref scales[0]);
        public float* Sums => (float*)Unsafe.AsPointer(ref sums[0]);

        public void Quantize(float* x, int m, int k)
        {
            K = k;
            int blocks = m * (k / ActivationBlock);
            if (values.Length < m * k) values = GC.AllocateArray<sbyte>(m * k, pinned: true);
            if (scales.Length < blocks)
            {
                scales = GC.AllocateArray<float>(blocks, pinned: true);
                sums = GC.AllocateArray<float>(blocks, pinned: true);
            }
            for (int b = 0; b < blocks; b++)
            {
                var block = new ReadOnlySpan<float>(x + (long)b * ActivationBlock, ActivationBlock);
                QuantizeBlock(block, values.AsSpan(b * ActivationBlock, ActivationBlock), out scales[b], out sums[b]);
            }
        }
    }

    /// <summary>One block of 32 activations → int8 with scale d = max|x| / 127 (ggml's Q8_0), and d·Σq.</summary>
    internal static void QuantizeBlock(ReadOnlySpan<float> x, Span<sbyte> q, out float scale, out float scaledSum)
    {
        float absMax = 0f;
        foreach (float v in x) absMax = MathF.Max(absMax, MathF.Abs(v));
        scale = absMax / 127f;
        float invScale = scale != 0f ? 1f / scale : 0f;
        int sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int v = (int)MathF.Round(x[i] * invScale);
            q[i] = (sbyte)v;
            sum += v;
        }
        scaledSum = scale * sum;
    }

    sealed class Job : IParallelWork
    {
        public readonly Activations activations = new();
        public QuantizedMatrix? w0, w1, w2;
        public float* y0, y1, y2;
        public int m, k, rowsPerBlock, n0, n1, n2, blocks0, blocks1, blocks2;
        public QuantizedKernel kernel;

        public void Execute(int index)
        {
            QuantizedMatrix w;
            float* y;
            if (index < blocks0) { w = w0!; y = y0; }
            else if ((index -= blocks0) < blocks1) { w = w1!; y = y1; }
            else { index -= blocks1; w = w2!; y = y2; }
            int start = index * rowsPerBlock;
            int end = Math.Min(w.Rows, start + rowsPerBlock);
            Rows(w, start, end, activations, m, y, kernel);
        }
    }

    /// <summary>Columns [start, end) of y[m, n]: each weight row dotted with every activation row, four at a time.</summary>
    static void Rows(QuantizedMatrix w, int start, int end, Activations a, int m, float* y, QuantizedKernel kernel)
    {
        int n = w.Rows;
        Span<float> results = stackalloc float[4];
        for (int j = start; j < end; j++)
        {
            byte* row = w.Data + j * w.RowBytes;
            for (int i = 0; i < m; i += 4)
            {
                int count = Math.Min(4, m - i);
                switch (w.Type)
                {
                    case GgmlType.Q8_0: RowQ8(row, a, i, count, results, kernel); break;
                    case GgmlType.Q4_0: RowQ4(row, a, i, count, results, kernel); break;
                    default: RowQ4K(row, a, i, count, results, kernel); break;
                }
                for (int r = 0; r < count; r++) y[(long)(i + r) * n + j] = results[r];
            }
        }
    }

    /// <summary>u[32] (unsigned) · s[32] (signed) as 8 int32 partial sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotBytes(Vector256<byte> u, Vector256<sbyte> s, bool vnni) => vnni
        ? System.Runtime.Intrinsics.X86.AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, s)
        : System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(u, s), Vector256.Create((short)1));

    /// <summary>A Q8_0 row (blocks of f16 d + 32 int8) against <paramref name="count"/> activation rows from <paramref name="first"/>.</summary>
    static void RowQ8(byte* row, Activations a, int first, int count, Span<float> results, QuantizedKernel kernel)
    {
        int k = a.K, blocks = k / Q8Block.Size;
        if (kernel == QuantizedKernel.Scalar)
        {
            for (int r = 0; r < count; r++)
            {
                sbyte* xq = a.Values + (long)(first + r) * k;
                float* xd = a.Scales + (long)(first + r) * blocks;
                float sum = 0f;
                for (int b = 0; b < blocks; b++)
                {
                    byte* block = row + b * Q8Block.Bytes;
                    sbyte* wq = (sbyte*)(block + 2);
                    int dot = 0;
                    for (int i = 0; i < Q8Block.Size; i++) dot += wq[i] * xq[b * Q8Block.Size + i];
                    sum += Half16(block) * xd[b] * dot;
                }
                results[r] = sum;
            }
            return;
        }
        bool vnni = kernel == QuantizedKernel.AvxVnni;
        Span<Vector256<float>> acc = stackalloc Vector256<float>[4];
        acc.Clear();
        for (int b = 0; b < blocks; b++)
        {
            byte* block = row + b * Q8Block.Bytes;
            float d = Half16(block);
            var wv = Vector256.Load((sbyte*)(block + 2));
            var u = System.Runtime.Intrinsics.X86.Avx2.Abs(wv);
            for (int r = 0; r < count; r++)
            {
                long at = (long)(first + r) * k + b * Q8Block.Size;
                var s = System.Runtime.Intrinsics.X86.Avx2.Sign(Vector256.Load(a.Values + at), wv);
                var dot = Vector256.ConvertToSingle(DotBytes(u, s, vnni));
                acc[r] = Vector256.FusedMultiplyAdd(dot, Vector256.Create(d * a.Scales[(long)(first + r) * blocks + b]), acc[r]);
            }
        }
        for (int r = 0; r < count; r++) results[r] = Vector256.Sum(acc[r]);
    }

    /// <summary>A Q4_0 row (blocks of f16 d + 16 bytes of nibbles, x = d·(q − 8)) against activation rows.</summary>
    static void RowQ4(byte* row, Activations a, int first, int count, Span<float> results, QuantizedKernel kernel)
    {
        int k = a.K, blocks = k / Q4Block.Size;
        if (kernel == QuantizedKernel.Scalar)
        {
            for (int r = 0; r < count; r++)
            {
                sbyte* xq = a.Values + (long)(first + r) * k;
                float* xd = a.Scales + (long)(first + r) * blocks;
                float sum = 0f;
                for (int b = 0; b < blocks; b++)
                {
                    byte* block = row + b * Q4Block.Bytes;
                    int dot = 0;
                    for (int i = 0; i < Q4Block.Size / 2; i++)
                    {
                        dot += ((block[2 + i] & 0xF) - 8) * xq[b * Q4Block.Size + i];
                        dot += ((block[2 + i] >> 4) - 8) * xq[b * Q4Block.Size + Q4Block.Size / 2 + i];
                    }
                    sum += Half16(block) * xd[b] * dot;
                }
                results[r] = sum;
            }
            return;
        }
        bool vnni = kernel == QuantizedKernel.AvxVnni;
        Span<Vector256<float>> acc = stackalloc Vector256<float>[4];
        Span<float> offsets = stackalloc float[4];
        acc.Clear();
        offsets.Clear();
        var lowMask = Vector128.Create((byte)0xF);
        for (int b = 0; b < blocks; b++)
        {
            byte* block = row + b * Q4Block.Bytes;
            float d = Half16(block);
            var packed = Vector128.Load(block + 2);
            var u = Vector256.Create(packed & lowMask, Vector128.ShiftRightLogical(packed, 4) & lowMask);
            for (int r = 0; r < count; r++)
            {
                long blockIndex = (long)(first + r) * blocks + b;
                var dot = Vector256.ConvertToSingle(DotBytes(u, Vector256.Load(a.Values + blockIndex * Q4Block.Size), vnni));
                acc[r] = Vector256.FusedMultiplyAdd(dot, Vector256.Create(d * a.Scales[blockIndex]), acc[r]);
                offsets[r] += d * a.Sums[blockIndex];
            }
        }
        for (int r = 0; r < count; r++) results[r] = Vector256.Sum(acc[r]) - 8f * offsets[r];
    }

    /// <summary>A Q4_K row (super-blocks of 256: d, dmin, 6-bit scales and mins, nibbles) against activation rows.</summary>
    static void RowQ4K(byte* row, Activations a, int first, int count, Span<float> results, QuantizedKernel kernel)
    {
        int k = a.K, blocks = k / ActivationBlock, superBlocks = k / Q4KBlock.Size;
        const int subBlocks = Q4KBlock.Size / Q4KBlock.SubSize;
        Span<float> scale = stackalloc float[subBlocks];
        Span<float> min = stackalloc float[subBlocks];
        if (kernel == QuantizedKernel.Scalar)
        {
            for (int r = 0; r < count; r++)
            {
                sbyte* xq = a.Values + (long)(first + r) * k;
                float* xd = a.Scales + (long)(first + r) * blocks;
                float* xs = a.Sums + (long)(first + r) * blocks;
                float sum = 0f;
                for (int sb = 0; sb < superBlocks; sb++)
                {
                    byte* block = row + sb * Q4KBlock.Bytes;
                    ScalesOf(block, scale, min);
                    byte* nibbles = block + 4 + Q4KBlock.ScaleBytes;
                    for (int s = 0; s < subBlocks; s++)
                    {
                        int shift = (s & 1) * 4;
                        byte* q = nibbles + 32 * (s / 2);
                        sbyte* xb = xq + sb * Q4KBlock.Size + s * Q4KBlock.SubSize;
                        int dot = 0;
                        for (int i = 0; i < Q4KBlock.SubSize; i++) dot += ((q[i] >> shift) & 0xF) * xb[i];
                        int ab = sb * subBlocks + s;
                        sum += scale[s] * xd[ab] * dot - min[s] * xs[ab];
                    }
                }
                results[r] = sum;
            }
            return;
        }
        bool vnni = kernel == QuantizedKernel.AvxVnni;
        Span<Vector256<float>> acc = stackalloc Vector256<float>[4];
        Span<float> offsets = stackalloc float[4];
        acc.Clear();
        offsets.Clear();
        var lowMask = Vector256.Create((byte)0xF);
        for (int sb = 0; sb < superBlocks; sb++)
        {
            byte* block = row + sb * Q4KBlock.Bytes;
            ScalesOf(block, scale, min);
            byte* nibbles = block + 4 + Q4KBlock.ScaleBytes;
            for (int c = 0; c < subBlocks / 2; c++)
            {
                var packed = Vector256.Load(nibbles + 32 * c);
                var low = packed & lowMask;
                var high = Vector256.ShiftRightLogical(packed, 4) & lowMask;
                for (int r = 0; r < count; r++)
                {
                    long blockIndex = (long)(first + r) * blocks + sb * subBlocks + 2 * c;
                    var dotLow = Vector256.ConvertToSingle(DotBytes(low, Vector256.Load(a.Values + blockIndex * ActivationBlock), vnni));
                    var dotHigh = Vector256.ConvertToSingle(DotBytes(high, Vector256.Load(a.Values + (blockIndex + 1) * ActivationBlock), vnni));
                    var sum = Vector256.FusedMultiplyAdd(dotLow, Vector256.Create(scale[2 * c] * a.Scales[blockIndex]), acc[r]);
                    acc[r] = Vector256.FusedMultiplyAdd(dotHigh, Vector256.Create(scale[2 * c + 1] * a.Scales[blockIndex + 1]), sum);
                    offsets[r] += min[2 * c] * a.Sums[blockIndex] + min[2 * c + 1] * a.Sums[blockIndex + 1];
                }
            }
        }
        for (int r = 0; r < count; r++) results[r] = Vector256.Sum(acc[r]) - offsets[r];
    }

    /// <summary>d·scale and dmin·min of a Q4_K super-block's 8 sub-blocks.</summary>
    static void ScalesOf(byte* block, Span<float> scale, Span<float> min)
    {
        float d = Half16(block), dMin = Half16(block + 2);
        var packed = new ReadOnlySpan<byte>(block + 4, Q4KBlock.ScaleBytes);
        for (int s = 0; s < scale.Length; s++)
        {
            var (sc, m) = Q4KBlock.ScaleMin(packed, s);
            scale[s] = d * sc;
            min[s] = dMin * m;
        }
    }

    /// <summary>
    /// dX[m, k] += dY[m, n] · W[n, k] for a quantised W (the input gradient of a projection through a frozen
    /// quantised weight): W is expanded one column block at a time (32 or 256 columns of every row), split over
    /// column blocks so no two threads write the same dX values.
    /// </summary>
    internal static void AddInputGradient(float* dY, int m, QuantizedMatrix w, float* dX, ComputeContext compute)
    {
        if (w.Type == GgmlType.BF16)
        {
            Bf16Gemm.AddInputGradient(dY, m, w, dX, compute);
            return;
        }
        var job = cachedBackward ??= new BackwardJob();
        job.dY = dY; job.m = m; job.w = w; job.dX = dX;
        try
        {
            compute.Run(w.Columns / GgmlTypes.BlockSize(w.Type), job);
        }
        finally
        {
            job.w = null;
        }
    }

    [ThreadStatic] static BackwardJob? cachedBackward;

    sealed class BackwardJob : IParallelWork
    {
        public float* dY, dX;
        public int m;
        public QuantizedMatrix? w;
        [ThreadStatic] static float[]? expanded; // [n, block] one column block of W

        public void Execute(int index)
        {
            var matrix = w!;
            int n = matrix.Rows, k = matrix.Columns, width = GgmlTypes.BlockSize(matrix.Type), blockBytes = GgmlTypes.BlockBytes(matrix.Type);
            if (expanded is null || expanded.Length < n * width) expanded = new float[n * width];
            var columns = expanded.AsSpan(0, n * width); // [n, width]
            for (int j = 0; j < n; j++)
            {
                var block = new ReadOnlySpan<byte>(matrix.Data + j * matrix.RowBytes + (long)index * blockBytes, blockBytes);
                GgmlQuant.Decode(matrix.Type, block, columns.Slice(j * width, width));
            }
            for (int i = 0; i < m; i++)
            {
                var target = new Span<float>(dX + (long)i * k + (long)index * width, width);
                float* gradient = dY + (long)i * n;
                for (int j = 0; j < n; j++)
                    if (gradient[j] != 0f) System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(columns.Slice(j * width, width), gradient[j], target, target);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Half16(byte* p) => (float)BinaryPrimitives.ReadHalfLittleEndian(new ReadOnlySpan<byte>(p, 2));
}
