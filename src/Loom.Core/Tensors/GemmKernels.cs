// Register-tiled micro-kernels, written out in full (one block of code per tile shape, no helper calls) so that
// the JIT keeps every accumulator in a register. The packing layouts they read are described in GemmPacking.cs.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

public static unsafe partial class Gemm
{
    /// <summary>
    /// The 14x32 micro-kernel on Vector512: tile = (load ? tile : 0) + Σ over kc of a packed 14-row
    /// column of A times a packed 32-wide row of B; 28 accumulators stay in registers, k unrolled 4x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
        var c2_0 = Vector512<float>.Zero; var c2_1 = Vector512<float>.Zero;
        var c3_0 = Vector512<float>.Zero; var c3_1 = Vector512<float>.Zero;
        var c4_0 = Vector512<float>.Zero; var c4_1 = Vector512<float>.Zero;
        var c5_0 = Vector512<float>.Zero; var c5_1 = Vector512<float>.Zero;
        var c6_0 = Vector512<float>.Zero; var c6_1 = Vector512<float>.Zero;
        var c7_0 = Vector512<float>.Zero; var c7_1 = Vector512<float>.Zero;
        var c8_0 = Vector512<float>.Zero; var c8_1 = Vector512<float>.Zero;
        var c9_0 = Vector512<float>.Zero; var c9_1 = Vector512<float>.Zero;
        var c10_0 = Vector512<float>.Zero; var c10_1 = Vector512<float>.Zero;
        var c11_0 = Vector512<float>.Zero; var c11_1 = Vector512<float>.Zero;
        var c12_0 = Vector512<float>.Zero; var c12_1 = Vector512<float>.Zero;
        var c13_0 = Vector512<float>.Zero; var c13_1 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[1]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[2]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[3]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[4]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[5]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[6]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[7]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
                var a8 = Vector512.Create(a[8]);
                c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0);
                c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
                var a9 = Vector512.Create(a[9]);
                c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0);
                c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
                var a10 = Vector512.Create(a[10]);
                c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0);
                c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
                var a11 = Vector512.Create(a[11]);
                c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0);
                c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
                var a12 = Vector512.Create(a[12]);
                c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0);
                c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
                var a13 = Vector512.Create(a[13]);
                c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0);
                c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            }
            {
                var b0 = Vector512.Load(b + 32);
                var b1 = Vector512.Load(b + 48);
                var a0 = Vector512.Create(a[14]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[15]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[16]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[17]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[18]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[19]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[20]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[21]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
                var a8 = Vector512.Create(a[22]);
                c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0);
                c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
                var a9 = Vector512.Create(a[23]);
                c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0);
                c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
                var a10 = Vector512.Create(a[24]);
                c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0);
                c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
                var a11 = Vector512.Create(a[25]);
                c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0);
                c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
                var a12 = Vector512.Create(a[26]);
                c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0);
                c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
                var a13 = Vector512.Create(a[27]);
                c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0);
                c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            }
            {
                var b0 = Vector512.Load(b + 64);
                var b1 = Vector512.Load(b + 80);
                var a0 = Vector512.Create(a[28]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[29]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[30]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[31]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[32]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[33]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[34]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[35]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
                var a8 = Vector512.Create(a[36]);
                c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0);
                c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
                var a9 = Vector512.Create(a[37]);
                c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0);
                c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
                var a10 = Vector512.Create(a[38]);
                c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0);
                c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
                var a11 = Vector512.Create(a[39]);
                c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0);
                c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
                var a12 = Vector512.Create(a[40]);
                c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0);
                c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
                var a13 = Vector512.Create(a[41]);
                c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0);
                c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            }
            {
                var b0 = Vector512.Load(b + 96);
                var b1 = Vector512.Load(b + 112);
                var a0 = Vector512.Create(a[42]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[43]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[44]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[45]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[46]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[47]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[48]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[49]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
                var a8 = Vector512.Create(a[50]);
                c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0);
                c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
                var a9 = Vector512.Create(a[51]);
                c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0);
                c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
                var a10 = Vector512.Create(a[52]);
                c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0);
                c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
                var a11 = Vector512.Create(a[53]);
                c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0);
                c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
                var a12 = Vector512.Create(a[54]);
                c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0);
                c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
                var a13 = Vector512.Create(a[55]);
                c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0);
                c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            }
            a += 56;
            b += 128;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector512.Create(a[1]);
            c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            var a2 = Vector512.Create(a[2]);
            c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
            c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
            var a3 = Vector512.Create(a[3]);
            c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
            c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            var a4 = Vector512.Create(a[4]);
            c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
            c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
            var a5 = Vector512.Create(a[5]);
            c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
            c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
            var a6 = Vector512.Create(a[6]);
            c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
            c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
            var a7 = Vector512.Create(a[7]);
            c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
            c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            var a8 = Vector512.Create(a[8]);
            c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0);
            c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
            var a9 = Vector512.Create(a[9]);
            c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0);
            c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
            var a10 = Vector512.Create(a[10]);
            c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0);
            c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
            var a11 = Vector512.Create(a[11]);
            c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0);
            c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
            var a12 = Vector512.Create(a[12]);
            c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0);
            c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
            var a13 = Vector512.Create(a[13]);
            c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0);
            c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            a += 14;
            b += 32;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector512.Load(c + 0 * (long)ldc + 16);
            c1_0 += Vector512.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector512.Load(c + 1 * (long)ldc + 16);
            c2_0 += Vector512.Load(c + 2 * (long)ldc + 0);
            c2_1 += Vector512.Load(c + 2 * (long)ldc + 16);
            c3_0 += Vector512.Load(c + 3 * (long)ldc + 0);
            c3_1 += Vector512.Load(c + 3 * (long)ldc + 16);
            c4_0 += Vector512.Load(c + 4 * (long)ldc + 0);
            c4_1 += Vector512.Load(c + 4 * (long)ldc + 16);
            c5_0 += Vector512.Load(c + 5 * (long)ldc + 0);
            c5_1 += Vector512.Load(c + 5 * (long)ldc + 16);
            c6_0 += Vector512.Load(c + 6 * (long)ldc + 0);
            c6_1 += Vector512.Load(c + 6 * (long)ldc + 16);
            c7_0 += Vector512.Load(c + 7 * (long)ldc + 0);
            c7_1 += Vector512.Load(c + 7 * (long)ldc + 16);
            c8_0 += Vector512.Load(c + 8 * (long)ldc + 0);
            c8_1 += Vector512.Load(c + 8 * (long)ldc + 16);
            c9_0 += Vector512.Load(c + 9 * (long)ldc + 0);
            c9_1 += Vector512.Load(c + 9 * (long)ldc + 16);
            c10_0 += Vector512.Load(c + 10 * (long)ldc + 0);
            c10_1 += Vector512.Load(c + 10 * (long)ldc + 16);
            c11_0 += Vector512.Load(c + 11 * (long)ldc + 0);
            c11_1 += Vector512.Load(c + 11 * (long)ldc + 16);
            c12_0 += Vector512.Load(c + 12 * (long)ldc + 0);
            c12_1 += Vector512.Load(c + 12 * (long)ldc + 16);
            c13_0 += Vector512.Load(c + 13 * (long)ldc + 0);
            c13_1 += Vector512.Load(c + 13 * (long)ldc + 16);
        }
        Vector512.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector512.Store(c0_1, c + 0 * (long)ldc + 16);
        Vector512.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector512.Store(c1_1, c + 1 * (long)ldc + 16);
        Vector512.Store(c2_0, c + 2 * (long)ldc + 0);
        Vector512.Store(c2_1, c + 2 * (long)ldc + 16);
        Vector512.Store(c3_0, c + 3 * (long)ldc + 0);
        Vector512.Store(c3_1, c + 3 * (long)ldc + 16);
        Vector512.Store(c4_0, c + 4 * (long)ldc + 0);
        Vector512.Store(c4_1, c + 4 * (long)ldc + 16);
        Vector512.Store(c5_0, c + 5 * (long)ldc + 0);
        Vector512.Store(c5_1, c + 5 * (long)ldc + 16);
        Vector512.Store(c6_0, c + 6 * (long)ldc + 0);
        Vector512.Store(c6_1, c + 6 * (long)ldc + 16);
        Vector512.Store(c7_0, c + 7 * (long)ldc + 0);
        Vector512.Store(c7_1, c + 7 * (long)ldc + 16);
        Vector512.Store(c8_0, c + 8 * (long)ldc + 0);
        Vector512.Store(c8_1, c + 8 * (long)ldc + 16);
        Vector512.Store(c9_0, c + 9 * (long)ldc + 0);
        Vector512.Store(c9_1, c + 9 * (long)ldc + 16);
        Vector512.Store(c10_0, c + 10 * (long)ldc + 0);
        Vector512.Store(c10_1, c + 10 * (long)ldc + 16);
        Vector512.Store(c11_0, c + 11 * (long)ldc + 0);
        Vector512.Store(c11_1, c + 11 * (long)ldc + 16);
        Vector512.Store(c12_0, c + 12 * (long)ldc + 0);
        Vector512.Store(c12_1, c + 12 * (long)ldc + 16);
        Vector512.Store(c13_0, c + 13 * (long)ldc + 0);
        Vector512.Store(c13_1, c + 13 * (long)ldc + 16);
    }

    /// <summary>The first 8 rows of a 14-row A panel: the 8x32 piece of an edge tile on Vector512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512Rows8(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
        var c2_0 = Vector512<float>.Zero; var c2_1 = Vector512<float>.Zero;
        var c3_0 = Vector512<float>.Zero; var c3_1 = Vector512<float>.Zero;
        var c4_0 = Vector512<float>.Zero; var c4_1 = Vector512<float>.Zero;
        var c5_0 = Vector512<float>.Zero; var c5_1 = Vector512<float>.Zero;
        var c6_0 = Vector512<float>.Zero; var c6_1 = Vector512<float>.Zero;
        var c7_0 = Vector512<float>.Zero; var c7_1 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[1]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[2]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[3]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[4]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[5]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[6]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[7]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            }
            {
                var b0 = Vector512.Load(b + 32);
                var b1 = Vector512.Load(b + 48);
                var a0 = Vector512.Create(a[14]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[15]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[16]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[17]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[18]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[19]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[20]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[21]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            }
            {
                var b0 = Vector512.Load(b + 64);
                var b1 = Vector512.Load(b + 80);
                var a0 = Vector512.Create(a[28]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[29]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[30]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[31]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[32]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[33]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[34]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[35]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            }
            {
                var b0 = Vector512.Load(b + 96);
                var b1 = Vector512.Load(b + 112);
                var a0 = Vector512.Create(a[42]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[43]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[44]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[45]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[46]);
                c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[47]);
                c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[48]);
                c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
                c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[49]);
                c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
                c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            }
            a += 56;
            b += 128;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector512.Create(a[1]);
            c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            var a2 = Vector512.Create(a[2]);
            c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
            c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
            var a3 = Vector512.Create(a[3]);
            c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
            c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            var a4 = Vector512.Create(a[4]);
            c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0);
            c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
            var a5 = Vector512.Create(a[5]);
            c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0);
            c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
            var a6 = Vector512.Create(a[6]);
            c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0);
            c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
            var a7 = Vector512.Create(a[7]);
            c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0);
            c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            a += 14;
            b += 32;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector512.Load(c + 0 * (long)ldc + 16);
            c1_0 += Vector512.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector512.Load(c + 1 * (long)ldc + 16);
            c2_0 += Vector512.Load(c + 2 * (long)ldc + 0);
            c2_1 += Vector512.Load(c + 2 * (long)ldc + 16);
            c3_0 += Vector512.Load(c + 3 * (long)ldc + 0);
            c3_1 += Vector512.Load(c + 3 * (long)ldc + 16);
            c4_0 += Vector512.Load(c + 4 * (long)ldc + 0);
            c4_1 += Vector512.Load(c + 4 * (long)ldc + 16);
            c5_0 += Vector512.Load(c + 5 * (long)ldc + 0);
            c5_1 += Vector512.Load(c + 5 * (long)ldc + 16);
            c6_0 += Vector512.Load(c + 6 * (long)ldc + 0);
            c6_1 += Vector512.Load(c + 6 * (long)ldc + 16);
            c7_0 += Vector512.Load(c + 7 * (long)ldc + 0);
            c7_1 += Vector512.Load(c + 7 * (long)ldc + 16);
        }
        Vector512.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector512.Store(c0_1, c + 0 * (long)ldc + 16);
        Vector512.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector512.Store(c1_1, c + 1 * (long)ldc + 16);
        Vector512.Store(c2_0, c + 2 * (long)ldc + 0);
        Vector512.Store(c2_1, c + 2 * (long)ldc + 16);
        Vector512.Store(c3_0, c + 3 * (long)ldc + 0);
        Vector512.Store(c3_1, c + 3 * (long)ldc + 16);
        Vector512.Store(c4_0, c + 4 * (long)ldc + 0);
        Vector512.Store(c4_1, c + 4 * (long)ldc + 16);
        Vector512.Store(c5_0, c + 5 * (long)ldc + 0);
        Vector512.Store(c5_1, c + 5 * (long)ldc + 16);
        Vector512.Store(c6_0, c + 6 * (long)ldc + 0);
        Vector512.Store(c6_1, c + 6 * (long)ldc + 16);
        Vector512.Store(c7_0, c + 7 * (long)ldc + 0);
        Vector512.Store(c7_1, c + 7 * (long)ldc + 16);
    }

    /// <summary>The first 4 rows of a 14-row A panel: the 4x32 piece of an edge tile on Vector512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512Rows4(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
        var c2_0 = Vector512<float>.Zero; var c2_1 = Vector512<float>.Zero;
        var c3_0 = Vector512<float>.Zero; var c3_1 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[1]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[2]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[3]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector512.Load(b + 32);
                var b1 = Vector512.Load(b + 48);
                var a0 = Vector512.Create(a[14]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[15]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[16]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[17]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector512.Load(b + 64);
                var b1 = Vector512.Load(b + 80);
                var a0 = Vector512.Create(a[28]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[29]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[30]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[31]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector512.Load(b + 96);
                var b1 = Vector512.Load(b + 112);
                var a0 = Vector512.Create(a[42]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[43]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[44]);
                c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[45]);
                c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            }
            a += 56;
            b += 128;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector512.Create(a[1]);
            c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            var a2 = Vector512.Create(a[2]);
            c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0);
            c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
            var a3 = Vector512.Create(a[3]);
            c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0);
            c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            a += 14;
            b += 32;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector512.Load(c + 0 * (long)ldc + 16);
            c1_0 += Vector512.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector512.Load(c + 1 * (long)ldc + 16);
            c2_0 += Vector512.Load(c + 2 * (long)ldc + 0);
            c2_1 += Vector512.Load(c + 2 * (long)ldc + 16);
            c3_0 += Vector512.Load(c + 3 * (long)ldc + 0);
            c3_1 += Vector512.Load(c + 3 * (long)ldc + 16);
        }
        Vector512.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector512.Store(c0_1, c + 0 * (long)ldc + 16);
        Vector512.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector512.Store(c1_1, c + 1 * (long)ldc + 16);
        Vector512.Store(c2_0, c + 2 * (long)ldc + 0);
        Vector512.Store(c2_1, c + 2 * (long)ldc + 16);
        Vector512.Store(c3_0, c + 3 * (long)ldc + 0);
        Vector512.Store(c3_1, c + 3 * (long)ldc + 16);
    }

    /// <summary>The first 2 rows of a 14-row A panel: the 2x32 piece of an edge tile on Vector512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512Rows2(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[1]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector512.Load(b + 32);
                var b1 = Vector512.Load(b + 48);
                var a0 = Vector512.Create(a[14]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[15]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector512.Load(b + 64);
                var b1 = Vector512.Load(b + 80);
                var a0 = Vector512.Create(a[28]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[29]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector512.Load(b + 96);
                var b1 = Vector512.Load(b + 112);
                var a0 = Vector512.Create(a[42]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[43]);
                c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            }
            a += 56;
            b += 128;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector512.Create(a[1]);
            c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            a += 14;
            b += 32;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector512.Load(c + 0 * (long)ldc + 16);
            c1_0 += Vector512.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector512.Load(c + 1 * (long)ldc + 16);
        }
        Vector512.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector512.Store(c0_1, c + 0 * (long)ldc + 16);
        Vector512.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector512.Store(c1_1, c + 1 * (long)ldc + 16);
    }

    /// <summary>The first 1 rows of a 14-row A panel: the 1x32 piece of an edge tile on Vector512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512Rows1(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector512.Load(b + 32);
                var b1 = Vector512.Load(b + 48);
                var a0 = Vector512.Create(a[14]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector512.Load(b + 64);
                var b1 = Vector512.Load(b + 80);
                var a0 = Vector512.Create(a[28]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector512.Load(b + 96);
                var b1 = Vector512.Load(b + 112);
                var a0 = Vector512.Create(a[42]);
                c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            }
            a += 56;
            b += 128;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            a += 14;
            b += 32;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector512.Load(c + 0 * (long)ldc + 16);
        }
        Vector512.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector512.Store(c0_1, c + 0 * (long)ldc + 16);
    }

    /// <summary>
    /// The 6x16 micro-kernel on Vector256: tile = (load ? tile : 0) + Σ over kc of a packed 6-row
    /// column of A times a packed 16-wide row of B; 12 accumulators stay in registers, k unrolled 4x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
        var c1_0 = Vector256<float>.Zero; var c1_1 = Vector256<float>.Zero;
        var c2_0 = Vector256<float>.Zero; var c2_1 = Vector256<float>.Zero;
        var c3_0 = Vector256<float>.Zero; var c3_1 = Vector256<float>.Zero;
        var c4_0 = Vector256<float>.Zero; var c4_1 = Vector256<float>.Zero;
        var c5_0 = Vector256<float>.Zero; var c5_1 = Vector256<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector256.Load(b + 0);
                var b1 = Vector256.Load(b + 8);
                var a0 = Vector256.Create(a[0]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[1]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[2]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[3]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector256.Create(a[4]);
                c4_0 = Vector256.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector256.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector256.Create(a[5]);
                c5_0 = Vector256.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector256.FusedMultiplyAdd(a5, b1, c5_1);
            }
            {
                var b0 = Vector256.Load(b + 16);
                var b1 = Vector256.Load(b + 24);
                var a0 = Vector256.Create(a[6]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[7]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[8]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[9]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector256.Create(a[10]);
                c4_0 = Vector256.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector256.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector256.Create(a[11]);
                c5_0 = Vector256.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector256.FusedMultiplyAdd(a5, b1, c5_1);
            }
            {
                var b0 = Vector256.Load(b + 32);
                var b1 = Vector256.Load(b + 40);
                var a0 = Vector256.Create(a[12]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[13]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[14]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[15]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector256.Create(a[16]);
                c4_0 = Vector256.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector256.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector256.Create(a[17]);
                c5_0 = Vector256.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector256.FusedMultiplyAdd(a5, b1, c5_1);
            }
            {
                var b0 = Vector256.Load(b + 48);
                var b1 = Vector256.Load(b + 56);
                var a0 = Vector256.Create(a[18]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[19]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[20]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[21]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector256.Create(a[22]);
                c4_0 = Vector256.FusedMultiplyAdd(a4, b0, c4_0);
                c4_1 = Vector256.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector256.Create(a[23]);
                c5_0 = Vector256.FusedMultiplyAdd(a5, b0, c5_0);
                c5_1 = Vector256.FusedMultiplyAdd(a5, b1, c5_1);
            }
            a += 24;
            b += 64;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector256.Create(a[1]);
            c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            var a2 = Vector256.Create(a[2]);
            c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
            c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
            var a3 = Vector256.Create(a[3]);
            c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
            c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            var a4 = Vector256.Create(a[4]);
            c4_0 = Vector256.FusedMultiplyAdd(a4, b0, c4_0);
            c4_1 = Vector256.FusedMultiplyAdd(a4, b1, c4_1);
            var a5 = Vector256.Create(a[5]);
            c5_0 = Vector256.FusedMultiplyAdd(a5, b0, c5_0);
            c5_1 = Vector256.FusedMultiplyAdd(a5, b1, c5_1);
            a += 6;
            b += 16;
        }
        if (load)
        {
            c0_0 += Vector256.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector256.Load(c + 0 * (long)ldc + 8);
            c1_0 += Vector256.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector256.Load(c + 1 * (long)ldc + 8);
            c2_0 += Vector256.Load(c + 2 * (long)ldc + 0);
            c2_1 += Vector256.Load(c + 2 * (long)ldc + 8);
            c3_0 += Vector256.Load(c + 3 * (long)ldc + 0);
            c3_1 += Vector256.Load(c + 3 * (long)ldc + 8);
            c4_0 += Vector256.Load(c + 4 * (long)ldc + 0);
            c4_1 += Vector256.Load(c + 4 * (long)ldc + 8);
            c5_0 += Vector256.Load(c + 5 * (long)ldc + 0);
            c5_1 += Vector256.Load(c + 5 * (long)ldc + 8);
        }
        Vector256.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector256.Store(c0_1, c + 0 * (long)ldc + 8);
        Vector256.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector256.Store(c1_1, c + 1 * (long)ldc + 8);
        Vector256.Store(c2_0, c + 2 * (long)ldc + 0);
        Vector256.Store(c2_1, c + 2 * (long)ldc + 8);
        Vector256.Store(c3_0, c + 3 * (long)ldc + 0);
        Vector256.Store(c3_1, c + 3 * (long)ldc + 8);
        Vector256.Store(c4_0, c + 4 * (long)ldc + 0);
        Vector256.Store(c4_1, c + 4 * (long)ldc + 8);
        Vector256.Store(c5_0, c + 5 * (long)ldc + 0);
        Vector256.Store(c5_1, c + 5 * (long)ldc + 8);
    }

    /// <summary>The first 4 rows of a 6-row A panel: the 4x16 piece of an edge tile on Vector256.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256Rows4(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
        var c1_0 = Vector256<float>.Zero; var c1_1 = Vector256<float>.Zero;
        var c2_0 = Vector256<float>.Zero; var c2_1 = Vector256<float>.Zero;
        var c3_0 = Vector256<float>.Zero; var c3_1 = Vector256<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector256.Load(b + 0);
                var b1 = Vector256.Load(b + 8);
                var a0 = Vector256.Create(a[0]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[1]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[2]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[3]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector256.Load(b + 16);
                var b1 = Vector256.Load(b + 24);
                var a0 = Vector256.Create(a[6]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[7]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[8]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[9]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector256.Load(b + 32);
                var b1 = Vector256.Load(b + 40);
                var a0 = Vector256.Create(a[12]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[13]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[14]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[15]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            }
            {
                var b0 = Vector256.Load(b + 48);
                var b1 = Vector256.Load(b + 56);
                var a0 = Vector256.Create(a[18]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[19]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector256.Create(a[20]);
                c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
                c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector256.Create(a[21]);
                c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
                c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            }
            a += 24;
            b += 64;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector256.Create(a[1]);
            c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            var a2 = Vector256.Create(a[2]);
            c2_0 = Vector256.FusedMultiplyAdd(a2, b0, c2_0);
            c2_1 = Vector256.FusedMultiplyAdd(a2, b1, c2_1);
            var a3 = Vector256.Create(a[3]);
            c3_0 = Vector256.FusedMultiplyAdd(a3, b0, c3_0);
            c3_1 = Vector256.FusedMultiplyAdd(a3, b1, c3_1);
            a += 6;
            b += 16;
        }
        if (load)
        {
            c0_0 += Vector256.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector256.Load(c + 0 * (long)ldc + 8);
            c1_0 += Vector256.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector256.Load(c + 1 * (long)ldc + 8);
            c2_0 += Vector256.Load(c + 2 * (long)ldc + 0);
            c2_1 += Vector256.Load(c + 2 * (long)ldc + 8);
            c3_0 += Vector256.Load(c + 3 * (long)ldc + 0);
            c3_1 += Vector256.Load(c + 3 * (long)ldc + 8);
        }
        Vector256.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector256.Store(c0_1, c + 0 * (long)ldc + 8);
        Vector256.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector256.Store(c1_1, c + 1 * (long)ldc + 8);
        Vector256.Store(c2_0, c + 2 * (long)ldc + 0);
        Vector256.Store(c2_1, c + 2 * (long)ldc + 8);
        Vector256.Store(c3_0, c + 3 * (long)ldc + 0);
        Vector256.Store(c3_1, c + 3 * (long)ldc + 8);
    }

    /// <summary>The first 2 rows of a 6-row A panel: the 2x16 piece of an edge tile on Vector256.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256Rows2(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
        var c1_0 = Vector256<float>.Zero; var c1_1 = Vector256<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector256.Load(b + 0);
                var b1 = Vector256.Load(b + 8);
                var a0 = Vector256.Create(a[0]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[1]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector256.Load(b + 16);
                var b1 = Vector256.Load(b + 24);
                var a0 = Vector256.Create(a[6]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[7]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector256.Load(b + 32);
                var b1 = Vector256.Load(b + 40);
                var a0 = Vector256.Create(a[12]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[13]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            }
            {
                var b0 = Vector256.Load(b + 48);
                var b1 = Vector256.Load(b + 56);
                var a0 = Vector256.Create(a[18]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector256.Create(a[19]);
                c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
                c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            }
            a += 24;
            b += 64;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            var a1 = Vector256.Create(a[1]);
            c1_0 = Vector256.FusedMultiplyAdd(a1, b0, c1_0);
            c1_1 = Vector256.FusedMultiplyAdd(a1, b1, c1_1);
            a += 6;
            b += 16;
        }
        if (load)
        {
            c0_0 += Vector256.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector256.Load(c + 0 * (long)ldc + 8);
            c1_0 += Vector256.Load(c + 1 * (long)ldc + 0);
            c1_1 += Vector256.Load(c + 1 * (long)ldc + 8);
        }
        Vector256.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector256.Store(c0_1, c + 0 * (long)ldc + 8);
        Vector256.Store(c1_0, c + 1 * (long)ldc + 0);
        Vector256.Store(c1_1, c + 1 * (long)ldc + 8);
    }

    /// <summary>The first 1 rows of a 6-row A panel: the 1x16 piece of an edge tile on Vector256.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256Rows1(float* a, float* b, int kc, float* c, int ldc, bool load)
    {
        var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            {
                var b0 = Vector256.Load(b + 0);
                var b1 = Vector256.Load(b + 8);
                var a0 = Vector256.Create(a[0]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector256.Load(b + 16);
                var b1 = Vector256.Load(b + 24);
                var a0 = Vector256.Create(a[6]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector256.Load(b + 32);
                var b1 = Vector256.Load(b + 40);
                var a0 = Vector256.Create(a[12]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            }
            {
                var b0 = Vector256.Load(b + 48);
                var b1 = Vector256.Load(b + 56);
                var a0 = Vector256.Create(a[18]);
                c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
                c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            }
            a += 24;
            b += 64;
        }
        for (; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c0_0 = Vector256.FusedMultiplyAdd(a0, b0, c0_0);
            c0_1 = Vector256.FusedMultiplyAdd(a0, b1, c0_1);
            a += 6;
            b += 16;
        }
        if (load)
        {
            c0_0 += Vector256.Load(c + 0 * (long)ldc + 0);
            c0_1 += Vector256.Load(c + 0 * (long)ldc + 8);
        }
        Vector256.Store(c0_0, c + 0 * (long)ldc + 0);
        Vector256.Store(c0_1, c + 0 * (long)ldc + 8);
    }
}
