using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Loom.Tensors;

// Packing: copies a block of op(A) or op(B) into the order the micro-kernel reads it, so the kernel
// walks memory linearly. Subnormal values become zero on the way (FMA on subnormals is ~250x slower
// and .NET cannot set flush-to-zero), which costs O(n^2) against the O(n^3) product.
//
// A block (rows i0.., kc columns of the reduction) → panels of `tileRows` rows:
//   panel r at r·tileRows·kc, element (p, row) at p·tileRows + row; rows past the matrix are zero.
// B block (kc rows of the reduction, columns j0..) → panels of `tileCols` columns:
//   panel q at q·tileCols·kc, element (p, col) at p·tileCols + col; columns past the matrix are zero.
// Writers may run up to 16 floats past a panel's end (vector stores), so buffers carry PackSlack.
public static unsafe partial class Gemm
{
    const int PackSlack = 64;
    const float SmallestNormal = 1.17549435E-38f;

    /// <summary>Packs op(A)[i0 .. i0+rowCount, k0 .. k0+kc] into tileRows-row panels at <paramref name="packed"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA(float* a, int m, int k, bool transposeA, int i0, int rowCount, int k0, int kc, int tileRows, float* packed)
    {
        if (transposeA)
        {
            PackContiguous(a + (long)k0 * m + i0, m, kc, rowCount, tileRows, m - i0, packed);
            return;
        }
        for (int r = 0; r < rowCount; r += tileRows)
        {
            int rows = Math.Min(tileRows, rowCount - r);
            float* panel = packed + (long)r * kc;
            PackStrided(a + (long)(i0 + r) * k + k0, k, kc, rows, tileRows, panel);
        }
    }

    /// <summary>Packs op(B)[k0 .. k0+kc, j0 .. j0+colCount] into tileCols-column panels at <paramref name="packed"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackB(float* b, int k, int n, bool transposeB, int k0, int kc, int j0, int colCount, int tileCols, float* packed)
    {
        if (!transposeB)
        {
            PackContiguous(b + (long)k0 * n + j0, n, kc, colCount, tileCols, n - j0, packed);
            return;
        }
        for (int q = 0; q < colCount; q += tileCols)
        {
            int cols = Math.Min(tileCols, colCount - q);
            float* panel = packed + (long)q * kc;
            PackStrided(b + (long)(j0 + q) * k + k0, k, kc, cols, tileCols, panel);
        }
    }

    /// <summary>
    /// Source lines are contiguous across the tiles: line p (stride <paramref name="stride"/>) holds the
    /// <paramref name="count"/> values of packed row p of every panel. <paramref name="readable"/> is how many floats
    /// of each line may be read (to the end of the matrix row), which lets full vector loads run where they fit.
    /// Lines are taken 16 at a time across all panels, so the source streams and each panel is written in runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackContiguous(float* source, int stride, int kc, int count, int tile, int readable, float* packed)
    {
        for (int p0 = 0; p0 < kc; p0 += 16)
        {
            int pEnd = Math.Min(kc, p0 + 16);
            for (int q = 0; q < count; q += tile)
                PackLines(source + q, stride, p0, pEnd, kc, Math.Min(tile, count - q), tile, readable - q, packed + (long)q * kc);
        }
    }

    /// <summary>Lines [p0, pEnd) of one panel of <see cref="PackContiguous"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackLines(float* source, int stride, int p0, int pEnd, int kc, int count, int tile, int readable, float* panel)
    {
        int p = p0;
        if (count == tile && tile == 32 && Vector512.IsHardwareAccelerated)
        {
            for (; p < pEnd; p++)
            {
                float* s = source + (long)p * stride;
                Flush(Vector512.Load(s)).Store(panel + p * 32);
                Flush(Vector512.Load(s + 16)).Store(panel + p * 32 + 16);
            }
            return;
        }
        if (count == tile && tile == 16 && Vector256.IsHardwareAccelerated)
        {
            for (; p < pEnd; p++)
            {
                float* s = source + (long)p * stride;
                Flush(Vector256.Load(s)).Store(panel + p * 16);
                Flush(Vector256.Load(s + 8)).Store(panel + p * 16 + 8);
            }
            return;
        }
        // Tiles of 14 (6): one 16 (8)-wide load and store per line, in ascending order, so each store's spill
        // into the next lines is overwritten by their own stores; the last lines, whose stores would spill past the
        // panel, are copied exactly.
        if (count == tile && tile <= 8 && readable >= 8 && Vector256.IsHardwareAccelerated)
            for (int vectorEnd = Math.Min(pEnd, StoresInside(kc, tile, 8)); p < vectorEnd; p++)
                Flush(Vector256.Load(source + (long)p * stride)).Store(panel + p * tile);
        else if (count == tile && tile <= 16 && readable >= 16 && Vector512.IsHardwareAccelerated)
            for (int vectorEnd = Math.Min(pEnd, StoresInside(kc, tile, 16)); p < vectorEnd; p++)
                Flush(Vector512.Load(source + (long)p * stride)).Store(panel + p * tile);
        for (; p < pEnd; p++)
        {
            float* s = source + (long)p * stride;
            float* d = panel + p * tile;
            int t = 0;
            for (; t < count; t++) d[t] = Flush(s[t]);
            for (; t < tile; t++) d[t] = 0f;
        }
    }

    /// <summary>Lines p of a kc-line panel of tile-wide lines whose store of <paramref name="width"/> floats stays inside it.</summary>
    static int StoresInside(int kc, int tile, int width) => kc * tile < width ? 0 : (kc * tile - width) / tile + 1;

    /// <summary>
    /// Source lines run along the reduction: line t (stride <paramref name="stride"/>) holds kc values of
    /// tile column t, so the block is transposed on the way, 8x8 at a time.
    /// </summary>
    [SkipLocalsInit, MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackStrided(float* source, int stride, int kc, int count, int tile, float* panel)
    {
        int p = 0;
        if (Avx.IsSupported)
        {
            // Groups of 8 lines; a group's store of 8 may spill into the next row of the panel, so all groups
            // of a p-block are transposed first and stored per row in ascending order.
            int groups = (tile + 7) / 8;
            var rows = stackalloc Vector256<float>[64];
            var block = stackalloc Vector256<float>[8];
            // 16 steps at a time: each source line gives one whole cache line.
            for (; p + 16 <= kc; p += 16)
            {
                for (int g = 0; g < groups; g++)
                    for (int half = 0; half < 2; half++)
                    {
                        for (int r = 0; r < 8; r++)
                        {
                            int t = g * 8 + r;
                            block[r] = t < count ? Flush(Vector256.Load(source + (long)t * stride + p + half * 8)) : Vector256<float>.Zero;
                        }
                        Transpose8x8(block, rows + (half * groups + g) * 8);
                    }
                for (int half = 0; half < 2; half++)
                    for (int r = 0; r < 8; r++)
                        for (int g = 0; g < groups; g++)
                            rows[(half * groups + g) * 8 + r].Store(panel + (p + half * 8 + r) * tile + g * 8);
            }
            for (; p + 8 <= kc; p += 8)
            {
                for (int g = 0; g < groups; g++)
                {
                    for (int r = 0; r < 8; r++)
                    {
                        int t = g * 8 + r;
                        block[r] = t < count ? Flush(Vector256.Load(source + (long)t * stride + p)) : Vector256<float>.Zero;
                    }
                    Transpose8x8(block, rows + g * 8);
                }
                for (int r = 0; r < 8; r++)
                    for (int g = 0; g < groups; g++)
                        rows[g * 8 + r].Store(panel + (p + r) * tile + g * 8);
            }
        }
        for (; p < kc; p++)
        {
            float* d = panel + p * tile;
            int t = 0;
            for (; t < count; t++) d[t] = Flush(source[(long)t * stride + p]);
            for (; t < tile; t++) d[t] = 0f;
        }
    }

    /// <summary>Transposes the 8x8 block r[0..8] into output[0..8].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(Vector256<float>* r, Vector256<float>* output)
    {
        var t0 = Avx.UnpackLow(r[0], r[1]);
        var t1 = Avx.UnpackHigh(r[0], r[1]);
        var t2 = Avx.UnpackLow(r[2], r[3]);
        var t3 = Avx.UnpackHigh(r[2], r[3]);
        var t4 = Avx.UnpackLow(r[4], r[5]);
        var t5 = Avx.UnpackHigh(r[4], r[5]);
        var t6 = Avx.UnpackLow(r[6], r[7]);
        var t7 = Avx.UnpackHigh(r[6], r[7]);
        var s0 = Avx.Shuffle(t0, t2, 0x44);
        var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44);
        var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44);
        var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44);
        var s7 = Avx.Shuffle(t5, t7, 0xEE);
        output[0] = Avx.Permute2x128(s0, s4, 0x20);
        output[1] = Avx.Permute2x128(s1, s5, 0x20);
        output[2] = Avx.Permute2x128(s2, s6, 0x20);
        output[3] = Avx.Permute2x128(s3, s7, 0x20);
        output[4] = Avx.Permute2x128(s0, s4, 0x31);
        output[5] = Avx.Permute2x128(s1, s5, 0x31);
        output[6] = Avx.Permute2x128(s2, s6, 0x31);
        output[7] = Avx.Permute2x128(s3, s7, 0x31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Flush(Vector512<float> v) =>
        Vector512.AndNot(v, Vector512.LessThan(Vector512.Abs(v), Vector512.Create(SmallestNormal)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Flush(Vector256<float> v) =>
        Vector256.AndNot(v, Vector256.LessThan(Vector256.Abs(v), Vector256.Create(SmallestNormal)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Flush(float v) => MathF.Abs(v) < SmallestNormal ? 0f : v;
}
