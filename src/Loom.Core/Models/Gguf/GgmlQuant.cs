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

/// <summary>Layout of one ggml Q4_0 block: an f16 scale <c>d</c>, then 16 bytes of nibbles; byte j holds element j (low) and j + 16 (high); x = d * (q - 8).</summary>
public static class Q4Block
{
    /// <summary>Elements per block.</summary>
    public const int Size = 32;

    /// <summary>Bytes per block: 2 (f16 scale) + 16 (nibbles).</summary>
    public const int Bytes = 2 + Size / 2;
}

/// <summary>
/// Layout of one ggml Q4_K super-block of 256 elements: f16 <c>d</c>, f16 <c>dmin</c>, 12 bytes of 6-bit
/// scales and mins of its 8 sub-blocks of 32, then 128 bytes of nibbles; bytes 32c..32c+31 hold sub-block 2c
/// (low nibbles) and 2c + 1 (high nibbles). Element x = d * scale[s] * q - dmin * min[s].
/// </summary>
public static class Q4KBlock
{
    /// <summary>Elements per super-block.</summary>
    public const int Size = 256;

    /// <summary>Elements per sub-block (one 6-bit scale and min).</summary>
    public const int SubSize = 32;

    /// <summary>Bytes of packed scales and mins.</summary>
    public const int ScaleBytes = 12;

    /// <summary>Bytes per super-block: 2 + 2 + 12 + 128.</summary>
    public const int Bytes = 4 + ScaleBytes + Size / 2;

    /// <summary>The 6-bit scale and min of sub-block <paramref name="j"/> (ggml's <c>get_scale_min_k4</c>).</summary>
    public static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> scales, int j) => j < 4
        ? (scales[j] & 63, scales[j + 4] & 63)
        : ((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
}

/// <summary>
/// Conversions between float32 and the ggml storage types, bit-compatible with ggml's reference
/// code: F16 rounds to nearest even (as <c>GGML_FP32_TO_FP16</c>), Q8_0 follows
/// <c>quantize_row_q8_0_ref</c> (scale = max|x| / 127, q = roundf(x / scale) with halves away
/// from zero, the scale stored as f16 after the values were rounded with the float32 scale),
/// Q4_0 follows <c>quantize_row_q4_0_ref</c> (d = the signed value of largest magnitude / -8,
/// q = min(15, trunc(x / d + 8.5))), Q4_K follows <c>quantize_row_q4_K_ref</c> (a weighted
/// scale-and-min search per sub-block of 32, <c>make_qkx2_quants</c>, then 6-bit scales and mins
/// relative to the super-block's largest), BF16 rounds to nearest even (as <c>GGML_FP32_TO_BF16</c>).
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
            case GgmlType.BF16:
                EncodeBF16(values, output);
                break;
            case GgmlType.Q8_0:
                QuantizeQ8(values, output);
                break;
            case GgmlType.Q4_0:
                QuantizeQ4(values, output);
                break;
            case GgmlType.Q4_K:
                QuantizeQ4K(values, output);
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
            case GgmlType.BF16:
                DecodeBF16(data, output);
                break;
            case GgmlType.Q8_0:
                DequantizeQ8(data, output);
                break;
            case GgmlType.Q4_0:
                DequantizeQ4(data, output);
                break;
            case GgmlType.Q4_K:
                DequantizeQ4K(data, output);
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

    /// <summary>float32 → bfloat16, rounding to nearest even; a NaN stays a (quiet) NaN.</summary>
    public static void EncodeBF16(ReadOnlySpan<float> values, Span<byte> output)
    {
        CheckSize(GgmlType.BF16, values.Length, output.Length);
        for (int i = 0; i < values.Length; i++)
        {
            uint u = BitConverter.SingleToUInt32Bits(values[i]);
            ushort h = (u & 0x7fffffff) > 0x7f800000 ? (ushort)((u >> 16) | 64) : (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
            BinaryPrimitives.WriteUInt16LittleEndian(output[(2 * i)..], h);
        }
    }

    /// <summary>bfloat16 → float32 (exact: the upper half of the float's bits).</summary>
    public static void DecodeBF16(ReadOnlySpan<byte> data, Span<float> output)
    {
        CheckSize(GgmlType.BF16, output.Length, data.Length);
        for (int i = 0; i < output.Length; i++)
            output[i] = BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16);
    }

    /// <summary>Quantises whole blocks of 32 values to Q4_0 (18 bytes a block).</summary>
    public static void QuantizeQ4(ReadOnlySpan<float> values, Span<byte> output)
    {
        CheckSize(GgmlType.Q4_0, values.Length, output.Length);
        int blockCount = values.Length / Q4Block.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var x = values.Slice(b * Q4Block.Size, Q4Block.Size); // [32]
            var block = output.Slice(b * Q4Block.Bytes, Q4Block.Bytes);
            float absMax = 0f, max = 0f;
            foreach (float v in x)
            {
                if (absMax < MathF.Abs(v))
                {
                    absMax = MathF.Abs(v);
                    max = v;
                }
            }
            float scale = max / -8f;
            float invScale = scale != 0f ? 1f / scale : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)scale);
            for (int j = 0; j < Q4Block.Size / 2; j++)
            {
                int low = Math.Min(15, (int)(x[j] * invScale + 8.5f));
                int high = Math.Min(15, (int)(x[j + Q4Block.Size / 2] * invScale + 8.5f));
                block[2 + j] = (byte)(low | (high << 4));
            }
        }
    }

    /// <summary>Expands Q4_0 blocks back to float32: x = f16 scale * (nibble - 8).</summary>
    public static void DequantizeQ4(ReadOnlySpan<byte> data, Span<float> output)
    {
        CheckSize(GgmlType.Q4_0, output.Length, data.Length);
        int blockCount = output.Length / Q4Block.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var block = data.Slice(b * Q4Block.Bytes, Q4Block.Bytes);
            float scale = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            var x = output.Slice(b * Q4Block.Size, Q4Block.Size); // [32]
            for (int j = 0; j < Q4Block.Size / 2; j++)
            {
                x[j] = ((block[2 + j] & 0xF) - 8) * scale;
                x[j + Q4Block.Size / 2] = ((block[2 + j] >> 4) - 8) * scale;
            }
        }
    }

    /// <summary>Quantises whole super-blocks of 256 values to Q4_K (144 bytes each), as ggml's <c>quantize_row_q4_K_ref</c>.</summary>
    public static void QuantizeQ4K(ReadOnlySpan<float> values, Span<byte> output)
    {
        CheckSize(GgmlType.Q4_K, values.Length, output.Length);
        const int subBlocks = Q4KBlock.Size / Q4KBlock.SubSize;
        Span<byte> levels = stackalloc byte[Q4KBlock.Size];
        Span<byte> trial = stackalloc byte[Q4KBlock.SubSize];
        Span<float> weights = stackalloc float[Q4KBlock.SubSize];
        Span<float> mins = stackalloc float[subBlocks];
        Span<float> scales = stackalloc float[subBlocks];
        int blockCount = values.Length / Q4KBlock.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var x = values.Slice(b * Q4KBlock.Size, Q4KBlock.Size); // [256]
            var block = output.Slice(b * Q4KBlock.Bytes, Q4KBlock.Bytes);
            float maxScale = 0f, maxMin = 0f;
            for (int j = 0; j < subBlocks; j++)
            {
                var xs = x.Slice(j * Q4KBlock.SubSize, Q4KBlock.SubSize); // [32]
                float sumSquares = 0f;
                foreach (float v in xs) sumSquares += v * v;
                float averageMagnitude = MathF.Sqrt(sumSquares / Q4KBlock.SubSize);
                for (int l = 0; l < Q4KBlock.SubSize; l++) weights[l] = averageMagnitude + MathF.Abs(xs[l]);
                scales[j] = ScaleAndMin(xs, weights, levels.Slice(j * Q4KBlock.SubSize, Q4KBlock.SubSize), out mins[j], trial);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }

            var packed = block.Slice(4, Q4KBlock.ScaleBytes);
            packed.Clear();
            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            for (int j = 0; j < subBlocks; j++)
            {
                int ls = Math.Min(63, (int)(byte)NearestInt(invScale * scales[j]));
                int lm = Math.Min(63, (int)(byte)NearestInt(invMin * mins[j]));
                if (j < 4)
                {
                    packed[j] = (byte)ls;
                    packed[j + 4] = (byte)lm;
                }
                else
                {
                    packed[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                    packed[j - 4] |= (byte)((ls >> 4) << 6);
                    packed[j] |= (byte)((lm >> 4) << 6);
                }
            }
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)(maxScale / 63f));
            BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(maxMin / 63f));
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            float dMin = (float)BinaryPrimitives.ReadHalfLittleEndian(block[2..]);

            // Requantise every value with the scales as stored (6 bits, f16).
            for (int j = 0; j < subBlocks; j++)
            {
                var (sc, m) = Q4KBlock.ScaleMin(packed, j);
                float subScale = d * sc;
                if (subScale == 0f) continue;
                float subMin = dMin * m;
                for (int l = 0; l < Q4KBlock.SubSize; l++)
                    levels[j * Q4KBlock.SubSize + l] = (byte)Math.Clamp(NearestInt((x[j * Q4KBlock.SubSize + l] + subMin) / subScale), 0, 15);
            }
            var nibbles = block[(4 + Q4KBlock.ScaleBytes)..];
            for (int c = 0; c < Q4KBlock.Size / 64; c++)
                for (int l = 0; l < 32; l++)
                    nibbles[32 * c + l] = (byte)(levels[64 * c + l] | (levels[64 * c + 32 + l] << 4));
        }
    }

    /// <summary>Expands Q4_K super-blocks back to float32: x = d * scale * q - dmin * min per sub-block of 32.</summary>
    public static void DequantizeQ4K(ReadOnlySpan<byte> data, Span<float> output)
    {
        CheckSize(GgmlType.Q4_K, output.Length, data.Length);
        int blockCount = output.Length / Q4KBlock.Size;
        for (int b = 0; b < blockCount; b++)
        {
            var block = data.Slice(b * Q4KBlock.Bytes, Q4KBlock.Bytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            float dMin = (float)BinaryPrimitives.ReadHalfLittleEndian(block[2..]);
            var packed = block.Slice(4, Q4KBlock.ScaleBytes);
            var nibbles = block[(4 + Q4KBlock.ScaleBytes)..];
            var y = output.Slice(b * Q4KBlock.Size, Q4KBlock.Size); // [256]
            for (int c = 0; c < Q4KBlock.Size / 64; c++)
            {
                var (sc0, m0) = Q4KBlock.ScaleMin(packed, 2 * c);
                var (sc1, m1) = Q4KBlock.ScaleMin(packed, 2 * c + 1);
                float d0 = d * sc0, min0 = dMin * m0, d1 = d * sc1, min1 = dMin * m1;
                for (int l = 0; l < 32; l++)
                {
                    y[64 * c + l] = d0 * (nibbles[32 * c + l] & 0xF) - min0;
                    y[64 * c + 32 + l] = d1 * (nibbles[32 * c + l] >> 4) - min1;
                }
            }
        }
    }

    /// <summary>
    /// The scale and min of 32 values on 4-bit levels (ggml's <c>make_qkx2_quants</c> with nmax 15, rmin -1,
    /// rdelta 0.1, 20 steps, squared error): a least-squares fit of scale and min for each of 21 trial grids,
    /// keeping the one of least weighted error. Returns the scale; <paramref name="negativeMin"/> is -min (≥ 0).
    /// </summary>
    static float ScaleAndMin(ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> levels, out float negativeMin, Span<byte> trial)
    {
        const int levelMax = 15;
        const float rangeMin = -1f, rangeDelta = 0.1f;
        const int steps = 20;
        int n = x.Length;
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            levels.Clear();
            negativeMin = -min;
            return 0f;
        }
        float invScale = levelMax / (max - min);
        float scale = 1 / invScale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(invScale * (x[i] - min));
            levels[i] = (byte)Math.Max(0, Math.Min(levelMax, l));
            float diff = scale * levels[i] + min - x[i];
            bestError += weights[i] * (diff * diff);
        }
        for (int step = 0; step <= steps; step++)
        {
            invScale = (rangeMin + rangeDelta * step + levelMax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Max(0, Math.Min(levelMax, NearestInt(invScale * (x[i] - min))));
                trial[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / det;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / det;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float error = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * trial[i] + thisMin - x[i];
                    error += weights[i] * (diff * diff);
                }
                if (error < bestError)
                {
                    trial[..n].CopyTo(levels);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        negativeMin = -min;
        return scale;
    }

    /// <summary>Round half to even, as ggml's <c>nearest_int</c> (which adds 1.5·2²³).</summary>
    static int NearestInt(float value) => (int)MathF.Round(value, MidpointRounding.ToEven);

    static void CheckSize(GgmlType type, int elementCount, int byteCount)
    {
        long expected = GgmlTypes.ByteCount(type, elementCount);
        if (expected != byteCount)
            throw new ArgumentException($"{elementCount} elements of {type} take {expected} bytes, the buffer has {byteCount}");
    }
}
