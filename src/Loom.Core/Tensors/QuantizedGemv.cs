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
            sbyte* q = Values;
            for (int b = 0; b < blocks; b++)
            {
                if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
                    QuantizeBlock(x + (long)b * ActivationBlock, q + (long)b * ActivationBlock, out scales[b], out sums[b]);
                else
                    QuantizeBlock(new ReadOnlySpan<float>(x + (long)b * ActivationBlock, ActivationBlock), values.AsSpan(b * ActivationBlock, ActivationBlock), out scales[b], out sums[b]);
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

    /// <summary><see cref="QuantizeBlock"/> of 32 values with 256-bit vectors (the same rounding, to nearest even, bit for bit).</summary>
    internal static void QuantizeBlock(float* x, sbyte* q, out float scale, out float scaledSum)
    {
        var v0 = Vector256.Load(x);
        var v1 = Vector256.Load(x + 8);
        var v2 = Vector256.Load(x + 16);
        var v3 = Vector256.Load(x + 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        var m2 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        float absMax = MathF.Max(m2.ToScalar(), m2.GetElement(1));
        scale = absMax / 127f;
        var inv = Vector256.Create(scale != 0f ? 1f / scale : 0f);
        var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * inv));
        var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * inv));
        var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * inv));
        var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * inv));
        var s01 = Vector256.Narrow(i0, i1);
        var s23 = Vector256.Narrow(i2, i3);
        Vector256.Narrow(s01, s23).Store(q);
        scaledSum = scale * Vector256.Sum(i0 + i1 + i2 + i3);
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

    /// <summary>
    /// Columns [start, end) of y[m, n]: each weight row dotted with every activation row in turn, the row staying in L1
    /// after the first. Every (weight row, activation row) pair runs the same dot, so its sum does not depend on m.
    /// </summary>
    static void Rows(QuantizedMatrix w, int start, int end, Activations a, int m, float* y, QuantizedKernel kernel)
    {
        int n = w.Rows, k = a.K, blocks = k / ActivationBlock;
        bool vnni = kernel == QuantizedKernel.AvxVnni;
        // Four activation rows share each unpacked weight block (prefill); each keeps the chains of the one-row dot.
        bool fourAtOnce = kernel != QuantizedKernel.Scalar && w.Type != GgmlType.Q4_0;
        for (int j = start; j < end; j++)
        {
            byte* row = w.Data + j * w.RowBytes;
            int i = 0;
            if (fourAtOnce)
            {
                for (; i + 4 <= m; i += 4)
                {
                    sbyte* xq = a.Values + (long)i * k;
                    float* xd = a.Scales + (long)i * blocks;
                    float* yi = y + (long)i * n + j;
                    if (w.Type == GgmlType.Q8_0) DotQ8x4(row, xq, xd, k, blocks, vnni, yi, n);
                    else DotQ4Kx4(row, xq, xd, a.Sums + (long)i * blocks, k, k / Q4KBlock.Size, vnni, yi, n);
                }
            }
            for (; i < m; i++)
            {
                sbyte* xq = a.Values + (long)i * k;
                float* xd = a.Scales + (long)i * blocks;
                float* xs = a.Sums + (long)i * blocks;
                y[(long)i * n + j] = kernel == QuantizedKernel.Scalar
                    ? w.Type switch
                    {
                        GgmlType.Q8_0 => ScalarQ8(row, xq, xd, blocks),
                        GgmlType.Q4_0 => ScalarQ4(row, xq, xd, blocks),
                        _ => ScalarQ4K(row, xq, xd, xs, k / Q4KBlock.Size),
                    }
                    : w.Type switch
                    {
                        GgmlType.Q8_0 => DotQ8(row, xq, xd, blocks, vnni),
                        GgmlType.Q4_0 => DotQ4(row, xq, xd, xs, blocks, vnni),
                        _ => DotQ4K(row, xq, xd, xs, k / Q4KBlock.Size, vnni),
                    };
            }
        }
    }

    /// <summary>u[32] (unsigned) · s[32] (signed) as 8 int32 partial sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotBytes(Vector256<byte> u, Vector256<sbyte> s, bool vnni) => vnni
        ? System.Runtime.Intrinsics.X86.AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, s)
        : System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(System.Runtime.Intrinsics.X86.Avx2.MultiplyAddAdjacent(u, s), Vector256.Create((short)1));

    /// <summary>acc + one Q8_0 block (f16 d + 32 int8) · its activation block, scaled (8 float partial sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> BlockQ8(byte* block, sbyte* x, float xScale, Vector256<float> acc, bool vnni)
    {
        var wv = Vector256.Load((sbyte*)(block + 2));
        return BlockQ8(System.Runtime.Intrinsics.X86.Avx2.Abs(wv), wv, Half16(block), x, xScale, acc, vnni);
    }

    /// <summary>acc + a Q8_0 block given as |w|, w and d · an activation block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> BlockQ8(Vector256<byte> u, Vector256<sbyte> wv, float d, sbyte* x, float xScale, Vector256<float> acc, bool vnni)
    {
        var s = System.Runtime.Intrinsics.X86.Avx2.Sign(Vector256.Load(x), wv);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(u, s, vnni)), Vector256.Create(d * xScale), acc);
    }

    /// <summary>
    /// A Q8_0 row · four activation rows (x [4, k], scales [4, blocks]) into y[0], y[n], y[2n], y[3n]: each weight block
    /// is loaded once, and every row's sum is formed exactly as <see cref="DotQ8"/> forms it.
    /// </summary>
    static void DotQ8x4(byte* row, sbyte* xq, float* xd, int k, int blocks, bool vnni, float* y, int n)
    {
        Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default, o0 = default, o1 = default, o2 = default, o3 = default;
        int b = 0;
        for (; b + 1 < blocks; b += 2)
        {
            byte* block = row + b * Q8Block.Bytes;
            var w0 = Vector256.Load((sbyte*)(block + 2));
            var w1 = Vector256.Load((sbyte*)(block + Q8Block.Bytes + 2));
            var u0 = System.Runtime.Intrinsics.X86.Avx2.Abs(w0);
            var u1 = System.Runtime.Intrinsics.X86.Avx2.Abs(w1);
            float d0 = Half16(block), d1 = Half16(block + Q8Block.Bytes);
            sbyte* x = xq + b * Q8Block.Size;
            e0 = BlockQ8(u0, w0, d0, x, xd[b], e0, vnni);
            o0 = BlockQ8(u1, w1, d1, x + Q8Block.Size, xd[b + 1], o0, vnni);
            e1 = BlockQ8(u0, w0, d0, x + k, xd[blocks + b], e1, vnni);
            o1 = BlockQ8(u1, w1, d1, x + k + Q8Block.Size, xd[blocks + b + 1], o1, vnni);
            e2 = BlockQ8(u0, w0, d0, x + 2 * k, xd[2 * blocks + b], e2, vnni);
            o2 = BlockQ8(u1, w1, d1, x + 2 * k + Q8Block.Size, xd[2 * blocks + b + 1], o2, vnni);
            e3 = BlockQ8(u0, w0, d0, x + 3 * k, xd[3 * blocks + b], e3, vnni);
            o3 = BlockQ8(u1, w1, d1, x + 3 * k + Q8Block.Size, xd[3 * blocks + b + 1], o3, vnni);
        }
        if (b < blocks)
        {
            byte* block = row + b * Q8Block.Bytes;
            sbyte* x = xq + b * Q8Block.Size;
            e0 = BlockQ8(block, x, xd[b], e0, vnni);
            e1 = BlockQ8(block, x + k, xd[blocks + b], e1, vnni);
            e2 = BlockQ8(block, x + 2 * k, xd[2 * blocks + b], e2, vnni);
            e3 = BlockQ8(block, x + 3 * k, xd[3 * blocks + b], e3, vnni);
        }
        y[0] = Vector256.Sum(e0 + o0);
        y[n] = Vector256.Sum(e1 + o1);
        y[2 * n] = Vector256.Sum(e2 + o2);
        y[3 * n] = Vector256.Sum(e3 + o3);
    }

    /// <summary>A Q8_0 row (blocks of f16 d + 32 int8) · one activation row; even and odd blocks sum in two chains.</summary>
    static float DotQ8(byte* row, sbyte* xq, float* xd, int blocks, bool vnni)
    {
        var even = Vector256<float>.Zero;
        var odd = Vector256<float>.Zero;
        int b = 0;
        for (; b + 1 < blocks; b += 2)
        {
            byte* block = row + b * Q8Block.Bytes;
            even = BlockQ8(block, xq + b * Q8Block.Size, xd[b], even, vnni);
            odd = BlockQ8(block + Q8Block.Bytes, xq + (b + 1) * Q8Block.Size, xd[b + 1], odd, vnni);
        }
        if (b < blocks) even = BlockQ8(row + b * Q8Block.Bytes, xq + b * Q8Block.Size, xd[b], even, vnni);
        return Vector256.Sum(even + odd);
    }

    /// <summary>A Q4_0 row (blocks of f16 d + 16 bytes of nibbles, x = d·(q − 8)) · one activation row.</summary>
    static float DotQ4(byte* row, sbyte* xq, float* xd, float* xs, int blocks, bool vnni)
    {
        var acc = Vector256<float>.Zero;
        float offset = 0f;
        var lowMask = Vector128.Create((byte)0xF);
        for (int b = 0; b < blocks; b++)
        {
            byte* block = row + b * Q4Block.Bytes;
            float d = Half16(block);
            var packed = Vector128.Load(block + 2);
            var u = Vector256.Create(packed & lowMask, Vector128.ShiftRightLogical(packed, 4) & lowMask);
            var dot = Vector256.ConvertToSingle(DotBytes(u, Vector256.Load(xq + b * Q4Block.Size), vnni));
            acc = Vector256.FusedMultiplyAdd(dot, Vector256.Create(d * xd[b]), acc);
            offset += d * xs[b];
        }
        return Vector256.Sum(acc) - 8f * offset;
    }

    /// <summary>
    /// A Q4_K row (super-blocks of 256: d, dmin, 6-bit scales and mins, nibbles) · one activation row. The 8 scales and
    /// mins of a super-block are unpacked at once (ggml's mask trick) and multiplied by the 8 activation scales and sums
    /// as vectors; low and high nibbles sum in two chains.
    /// </summary>
    static float DotQ4K(byte* row, sbyte* xq, float* xd, float* xs, int superBlocks, bool vnni)
    {
        const int subBlocks = Q4KBlock.Size / Q4KBlock.SubSize;
        float* scale = stackalloc float[subBlocks];
        var low = Vector256<float>.Zero;
        var high = Vector256<float>.Zero;
        var offsets = Vector256<float>.Zero;
        var lowMask = Vector256.Create((byte)0xF);
        for (int sb = 0; sb < superBlocks; sb++)
        {
            byte* block = row + sb * Q4KBlock.Bytes;
            var (scales, mins) = ScalesAndMins(block + 4);
            int ab = sb * subBlocks;
            (scales * Vector256.Create(Half16(block)) * Vector256.Load(xd + ab)).Store(scale);
            offsets = Vector256.FusedMultiplyAdd(mins * Vector256.Create(Half16(block + 2)), Vector256.Load(xs + ab), offsets);
            byte* nibbles = block + 4 + Q4KBlock.ScaleBytes;
            sbyte* x = xq + sb * Q4KBlock.Size;
            for (int c = 0; c < subBlocks / 2; c++)
            {
                var packed = Vector256.Load(nibbles + 32 * c);
                var dotLow = DotBytes(packed & lowMask, Vector256.Load(x + 64 * c), vnni);
                var dotHigh = DotBytes(Vector256.ShiftRightLogical(packed, 4) & lowMask, Vector256.Load(x + 64 * c + 32), vnni);
                low = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(dotLow), Vector256.Create(scale[2 * c]), low);
                high = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(dotHigh), Vector256.Create(scale[2 * c + 1]), high);
            }
        }
        return Vector256.Sum(low + high) - Vector256.Sum(offsets);
    }

    /// <summary>
    /// A Q4_K row · four activation rows into y[0], y[n], y[2n], y[3n]: each super-block's scales and nibbles are
    /// unpacked once, and every row's sum is formed exactly as <see cref="DotQ4K"/> forms it.
    /// </summary>
    static void DotQ4Kx4(byte* row, sbyte* xq, float* xd, float* xs, int k, int superBlocks, bool vnni, float* y, int n)
    {
        const int subBlocks = Q4KBlock.Size / Q4KBlock.SubSize;
        int blocks = k / ActivationBlock;
        float* scale = stackalloc float[4 * subBlocks]; // [4, 8]
        Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default, h0 = default, h1 = default, h2 = default, h3 = default;
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        var lowMask = Vector256.Create((byte)0xF);
        for (int sb = 0; sb < superBlocks; sb++)
        {
            byte* block = row + sb * Q4KBlock.Bytes;
            var (scales, mins) = ScalesAndMins(block + 4);
            int ab = sb * subBlocks;
            var scaled = scales * Vector256.Create(Half16(block));
            var minsScaled = mins * Vector256.Create(Half16(block + 2));
            (scaled * Vector256.Load(xd + ab)).Store(scale);
            (scaled * Vector256.Load(xd + blocks + ab)).Store(scale + subBlocks);
            (scaled * Vector256.Load(xd + 2 * blocks + ab)).Store(scale + 2 * subBlocks);
            (scaled * Vector256.Load(xd + 3 * blocks + ab)).Store(scale + 3 * subBlocks);
            f0 = Vector256.FusedMultiplyAdd(minsScaled, Vector256.Load(xs + ab), f0);
            f1 = Vector256.FusedMultiplyAdd(minsScaled, Vector256.Load(xs + blocks + ab), f1);
            f2 = Vector256.FusedMultiplyAdd(minsScaled, Vector256.Load(xs + 2 * blocks + ab), f2);
            f3 = Vector256.FusedMultiplyAdd(minsScaled, Vector256.Load(xs + 3 * blocks + ab), f3);
            byte* nibbles = block + 4 + Q4KBlock.ScaleBytes;
            sbyte* x = xq + sb * Q4KBlock.Size;
            for (int c = 0; c < subBlocks / 2; c++)
            {
                var packed = Vector256.Load(nibbles + 32 * c);
                var lo = packed & lowMask;
                var hi = Vector256.ShiftRightLogical(packed, 4) & lowMask;
                sbyte* xc = x + 64 * c;
                l0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(lo, Vector256.Load(xc), vnni)), Vector256.Create(scale[2 * c]), l0);
                h0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(hi, Vector256.Load(xc + 32), vnni)), Vector256.Create(scale[2 * c + 1]), h0);
                l1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(lo, Vector256.Load(xc + k), vnni)), Vector256.Create(scale[subBlocks + 2 * c]), l1);
                h1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(hi, Vector256.Load(xc + k + 32), vnni)), Vector256.Create(scale[subBlocks + 2 * c + 1]), h1);
                l2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(lo, Vector256.Load(xc + 2 * k), vnni)), Vector256.Create(scale[2 * subBlocks + 2 * c]), l2);
                h2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(hi, Vector256.Load(xc + 2 * k + 32), vnni)), Vector256.Create(scale[2 * subBlocks + 2 * c + 1]), h2);
                l3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(lo, Vector256.Load(xc + 3 * k), vnni)), Vector256.Create(scale[3 * subBlocks + 2 * c]), l3);
                h3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(DotBytes(hi, Vector256.Load(xc + 3 * k + 32), vnni)), Vector256.Create(scale[3 * subBlocks + 2 * c + 1]), h3);
            }
        }
        y[0] = Vector256.Sum(l0 + h0) - Vector256.Sum(f0);
        y[n] = Vector256.Sum(l1 + h1) - Vector256.Sum(f1);
        y[2 * n] = Vector256.Sum(l2 + h2) - Vector256.Sum(f2);
        y[3 * n] = Vector256.Sum(l3 + h3) - Vector256.Sum(f3);
    }

    /// <summary>The 8 six-bit scales and mins of a Q4_K super-block (12 packed bytes at <paramref name="packed"/>) as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector256<float> Scales, Vector256<float> Mins) ScalesAndMins(byte* packed)
    {
        const uint mask6 = 0x3f3f3f3f, mask4 = 0x0f0f0f0f, mask2 = 0x03030303;
        uint u0 = Unsafe.ReadUnaligned<uint>(packed), u1 = Unsafe.ReadUnaligned<uint>(packed + 4), u2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        // Scales 0..3 are the low 6 bits of bytes 0..3, scales 4..7 the low nibbles of bytes 8..11 with bits 6..7 of bytes 0..3
        // on top; the mins likewise from bytes 4..7 and the high nibbles of bytes 8..11.
        uint scalesLow = u0 & mask6, scalesHigh = (u2 & mask4) | (((u0 >> 6) & mask2) << 4);
        uint minsLow = u1 & mask6, minsHigh = ((u2 >> 4) & mask4) | (((u1 >> 6) & mask2) << 4);
        var scales = Vector128.Create(scalesLow | ((ulong)scalesHigh << 32), 0UL).AsByte();
        var mins = Vector128.Create(minsLow | ((ulong)minsHigh << 32), 0UL).AsByte();
        return (Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(scales)),
            Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(mins)));
    }

    static float ScalarQ8(byte* row, sbyte* xq, float* xd, int blocks)
    {
        float sum = 0f;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = row + b * Q8Block.Bytes;
            sbyte* wq = (sbyte*)(block + 2);
            int dot = 0;
            for (int i = 0; i < Q8Block.Size; i++) dot += wq[i] * xq[b * Q8Block.Size + i];
            sum += Half16(block) * xd[b] * dot;
        }
        return sum;
    }

    static float ScalarQ4(byte* row, sbyte* xq, float* xd, int blocks)
    {
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
        return sum;
    }

    static float ScalarQ4K(byte* row, sbyte* xq, float* xd, float* xs, int superBlocks)
    {
        const int subBlocks = Q4KBlock.Size / Q4KBlock.SubSize;
        float sum = 0f;
        for (int sb = 0; sb < superBlocks; sb++)
        {
            byte* block = row + sb * Q4KBlock.Bytes;
            float d = Half16(block), dMin = Half16(block + 2);
            var packed = new ReadOnlySpan<byte>(block + 4, Q4KBlock.ScaleBytes);
            byte* nibbles = block + 4 + Q4KBlock.ScaleBytes;
            for (int s = 0; s < subBlocks; s++)
            {
                var (sc, mn) = Q4KBlock.ScaleMin(packed, s);
                int shift = (s & 1) * 4;
                byte* q = nibbles + 32 * (s / 2);
                sbyte* xb = xq + sb * Q4KBlock.Size + s * Q4KBlock.SubSize;
                int dot = 0;
                for (int i = 0; i < Q4KBlock.SubSize; i++) dot += ((q[i] >> shift) & 0xF) * xb[i];
                int ab = sb * subBlocks + s;
                sum += d * sc * xd[ab] * dot - dMin * mn * xs[ab];
            }
        }
        return sum;
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

    /// <summary>The little-endian f16 at <paramref name="p"/> as float32: normal values by moving the bits (exact), others through <see cref="Half"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Half16(byte* p)
    {
        uint h = Unsafe.ReadUnaligned<ushort>(p);
        uint exponent = h & 0x7C00;
        if (exponent == 0 || exponent == 0x7C00) return (float)BitConverter.UInt16BitsToHalf((ushort)h);
        return BitConverter.UInt32BitsToSingle(((h & 0x8000) << 16) | (((h & 0x7FFF) << 13) + ((127 - 15) << 23)));
    }
}
