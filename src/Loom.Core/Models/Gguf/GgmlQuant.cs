using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Loom.Models.Gguf;

/// <summary>Layout of one ggml Q8_0 block: an f16 scale <c>d</c>, then 32 int8 values <c>q</c>; x = d * q.</summary>
public static class Q8Block
{
    /// <summary>Elements per block.</summary>
    public const int Size = 32;

    /// <summary>Bytes per block: 2 (f16 scale) + 32 (int8).</summary>
    public const int Bytes = 2 + Size;
}

/// <summary>
/// Conversions between float32 and the ggml storage types, bit-compatible with ggml's reference
/// code: F16 rounds to nearest even (as <c>GGML_FP32_TO_FP16</c>), Q8_0 follows
/// <c>quantize_row_q8_0_ref</c> (scale = max|x| / 127, q = roundf(x / scale) with halves away
/// from zero, the scale stored as f16 after the values were rounded with the float32 scale).
/// All data is little-endian, as GGUF is.
/// </summary>
public static class GgmlQuant
{
    /// <summary>Encodes <paramref name="values"/> as <paramref name="type"/> into <paramref name="output"/> (<see cref="GgmlTypes.ByteCount"/> bytes).</summary>
    public static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> output)
    {
        CheckSize(type, values.Length, output.Length);
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(output);
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToHalf(values, MemoryMarshal.Cast<byte, Half>(output));
                break;
            case GgmlType.Q8_0:
                QuantizeQ8(values, output);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported ggml type");
        }
    }

    /// <summary>Decodes <paramref name="data"/> stored as <paramref name="type"/> into float32 <paramref name="output"/>.</summary>
    public static void Decode(GgmlType type, ReadOnlySpan<byte> data, Span<float> output)
    {
        CheckSize(type, output.Length, data.Length);
        switch (type)
        {
            case GgmlType.F32:
                data.CopyTo(MemoryMarshal.AsBytes(output));
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(data), output);
                break;
            case GgmlType.Q8_0:
                DequantizeQ8(data, output);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported ggml type");
        }
    }

    /// <summary>Quantises whole blocks of 32 values to Q8_0 (34 bytes a block).</summary>
    public static void QuantizeQ8(ReadOnlySpan<float> values, Span<byte> output)
    {
        CheckSize(GgmlType.Q8_0, values.Length, output.Length);
        int blockCount = values.Length / Q8Block.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var x = values.Slice(b * Q8Block.Size, Q8Block.Size); // [32]
            var block = output.Slice(b * Q8Block.Bytes, Q8Block.Bytes);
            float absMax = TensorPrimitives.MaxMagnitude(x);
            absMax = MathF.Abs(absMax);
            float scale = absMax / 127f;
            float invScale = scale != 0f ? 1f / scale : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)scale);
            var q = MemoryMarshal.Cast<byte, sbyte>(block[2..]); // [32]
            for (int i = 0; i < Q8Block.Size; i++)
                q[i] = (sbyte)MathF.Round(x[i] * invScale, MidpointRounding.AwayFromZero);
        }
    }

    /// <summary>Expands Q8_0 blocks back to float32: x = f16 scale * int8.</summary>
    public static void DequantizeQ8(ReadOnlySpan<byte> data, Span<float> output)
    {
        CheckSize(GgmlType.Q8_0, output.Length, data.Length);
        int blockCount = output.Length / Q8Block.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var block = data.Slice(b * Q8Block.Bytes, Q8Block.Bytes);
            float scale = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            var q = MemoryMarshal.Cast<byte, sbyte>(block[2..]); // [32]
            var x = output.Slice(b * Q8Block.Size, Q8Block.Size); // [32]
            for (int i = 0; i < Q8Block.Size; i++)
                x[i] = scale * q[i];
        }
    }

    static void CheckSize(GgmlType type, int elementCount, int byteCount)
    {
        long expected = GgmlTypes.ByteCount(type, elementCount);
        if (expected != byteCount)
            throw new ArgumentException($"{elementCount} elements of {type} take {expected} bytes, the buffer has {byteCount}");
    }
}
