using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>
/// The engine's policy on subnormal floats. A subnormal operand makes an FMA on this class of
/// CPU take a microcode assist (about 250× slower), and .NET cannot set the flush-to-zero and
/// denormals-are-zero bits of MXCSR. So the engine keeps subnormals out of the hot loops at the
/// places where they arise: the optimizer flushes its moments and the parameters after each
/// step (Adam's second moment is a square of small gradients and decays geometrically toward
/// zero), and GEMM flushes its packed operands itself. Activations stay normal in practice
/// (they are products of normalised values); kernels do not check them.
/// </summary>
public static class Subnormals
{
    /// <summary>The smallest positive normal float (2⁻¹²⁶).</summary>
    public const float MinNormal = 1.17549435E-38f;

    const uint ExponentMask = 0x7F80_0000u;

    /// <summary>Replaces every value with |x| &lt; <see cref="MinNormal"/> (subnormals and −0) by +0.</summary>
    public static unsafe void FlushToZero(Span<float> values)
    {
        fixed (float* p = values) FlushToZero(p, values.Length);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void FlushToZero(float* values, int length)
    {
        var bits = (uint*)values;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var exponent = Vector512.Create(ExponentMask);
            for (; i <= length - 16; i += 16)
            {
                var v = Vector512.Load(bits + i);
                var tiny = Vector512.Equals(v & exponent, Vector512<uint>.Zero);
                Vector512.AndNot(v, tiny).Store(bits + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var exponent = Vector256.Create(ExponentMask);
            for (; i <= length - 8; i += 8)
            {
                var v = Vector256.Load(bits + i);
                var tiny = Vector256.Equals(v & exponent, Vector256<uint>.Zero);
                Vector256.AndNot(v, tiny).Store(bits + i);
            }
        }
        for (; i < length; i++)
            if ((bits[i] & ExponentMask) == 0) bits[i] = 0;
    }

    /// <summary>Number of subnormal values (nonzero with a zero exponent field).</summary>
    public static int Count(ReadOnlySpan<float> values)
    {
        int count = 0;
        foreach (float v in values)
            if (v != 0 && float.IsSubnormal(v)) count++;
        return count;
    }
}
