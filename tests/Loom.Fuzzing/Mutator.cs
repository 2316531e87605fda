using System.Buffers.Binary;
using System.Text;

namespace Loom.Fuzzing;

/// <summary>A field of a binary format found in an input: where it starts and how many bytes wide it is (1, 2, 4 or 8).</summary>
public readonly record struct FieldSpan(int Offset, int Width);

/// <summary>
/// Turns a seed into a hostile input with one to six stacked mutations: bit and byte flips, inserts,
/// deletes, copies, splices with another seed, interesting integers and floats written at random
/// offsets or at the format's own field offsets, dictionary tokens, number literals swapped for
/// edge values, invalid UTF-8, and deep nesting.
/// </summary>
public static class Mutator
{
    /// <summary>Integers at the edges of every width (0, -1, 2^31-1, 2^32, 2^63, ...), as 64-bit patterns.</summary>
    static readonly ulong[] InterestingIntegers =
    [
        0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4096, 65535, 65536,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x1_0000_0001, 1UL << 53, 0x7FFF_FFFF_FFFF_FFFF,
        0x8000_0000_0000_0000, ulong.MaxValue, ulong.MaxValue - 1, unchecked((ulong)-2), unchecked((ulong)-128),
        1_000_000, 20_000_000, 4_000_000_000,
    ];

    /// <summary>Float bit patterns: NaN, infinities, the smallest subnormal, the largest finite, negative zero.</summary>
    static readonly uint[] InterestingFloats =
    [
        BitConverter.SingleToUInt32Bits(float.NaN), BitConverter.SingleToUInt32Bits(float.PositiveInfinity),
        BitConverter.SingleToUInt32Bits(float.NegativeInfinity), BitConverter.SingleToUInt32Bits(float.Epsilon),
        BitConverter.SingleToUInt32Bits(float.MaxValue), BitConverter.SingleToUInt32Bits(-0f), BitConverter.SingleToUInt32Bits(1e-45f),
    ];

    static readonly ulong[] InterestingDoubles =
    [
        BitConverter.DoubleToUInt64Bits(double.NaN), BitConverter.DoubleToUInt64Bits(double.PositiveInfinity),
        BitConverter.DoubleToUInt64Bits(double.NegativeInfinity), BitConverter.DoubleToUInt64Bits(double.Epsilon),
        BitConverter.DoubleToUInt64Bits(double.MaxValue), BitConverter.DoubleToUInt64Bits(4e9),
    ];

    /// <summary>Number literals that break naive parsers: overflow of int, uint, long, double; NaN; tiny; negative zero.</summary>
    static readonly string[] InterestingNumberTexts =
    [
        "0", "-1", "1", "2147483647", "2147483648", "-2147483649", "4294967296", "9223372036854775807",
        "9223372036854775808", "18446744073709551616", "1e309", "-1e309", "1e39", "-1e39", "1e-45", "NaN", "Infinity",
        "-0", "0.5", "1.5", "3e9", "1000000", "20000000", "1e6", "99999999999999999999999999999", "0x10", "01",
    ];

    /// <summary>Byte sequences that are not UTF-8: a lone continuation, a truncated pair, an encoded surrogate, an overlong NUL, 0xFF.</summary>
    static readonly byte[][] InvalidUtf8 = [[0x80], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0x80], [0xFF], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]];

    const int MaxNesting = 5000;

    /// <summary>A mutated copy of a seed (never longer than <paramref name="maxBytes"/>).</summary>
    public static byte[] Mutate(FuzzRandom random, IReadOnlyList<byte[]> seeds, FuzzTarget target, int maxBytes)
    {
        var data = new List<byte>(random.Pick(seeds));
        int count = 1 + random.Next(random.OneIn(4) ? 6 : 2);
        for (int m = 0; m < count; m++)
            MutateOnce(random, data, seeds, target);
        if (data.Count > maxBytes)
            data.RemoveRange(maxBytes, data.Count - maxBytes);
        return [.. data];
    }

    static void MutateOnce(FuzzRandom random, List<byte> data, IReadOnlyList<byte[]> seeds, FuzzTarget target)
    {
        int kinds = target.IsText ? 16 : 12;
        switch (random.Next(kinds))
        {
            case 0: FlipBit(random, data); break;
            case 1: SetByte(random, data); break;
            case 2: InsertRandom(random, data); break;
            case 3: Delete(random, data); break;
            case 4: CopyRange(random, data); break;
            case 5: Splice(random, data, random.Pick(seeds)); break;
            case 6: WriteInteger(random, data, RandomOffset(random, data), random.Pick([1, 2, 4, 8])); break;
            case 7 or 8: WriteAtField(random, data, target); break;
            case 9: InsertToken(random, data, target); break;
            case 10: Truncate(random, data); break;
            case 11: WriteFloat(random, data, RandomOffset(random, data)); break;
            case 12: ReplaceNumber(random, data); break;
            case 13: InsertInvalidUtf8(random, data); break;
            case 14: Nest(random, data, target); break;
            default: InsertToken(random, data, target); break;
        }
    }

    static int RandomOffset(FuzzRandom random, List<byte> data) => data.Count == 0 ? 0 : random.Next(data.Count);

    static void FlipBit(FuzzRandom random, List<byte> data)
    {
        if (data.Count == 0) return;
        int at = random.Next(data.Count);
        data[at] ^= (byte)(1 << random.Next(8));
    }

    static void SetByte(FuzzRandom random, List<byte> data)
    {
        if (data.Count == 0) return;
        data[random.Next(data.Count)] = random.Pick<byte>([0, 0xFF, 0x7F, 0x80, (byte)random.Next(256), (byte)'"', (byte)'\\', (byte)'\n']);
    }

    static void InsertRandom(FuzzRandom random, List<byte> data)
    {
        int length = 1 + random.Next(random.OneIn(8) ? 256 : 16);
        var bytes = new byte[length];
        for (int i = 0; i < length; i++) bytes[i] = (byte)random.Next(256);
        data.InsertRange(random.Next(data.Count + 1), bytes);
    }

    static void Delete(FuzzRandom random, List<byte> data)
    {
        if (data.Count == 0) return;
        int at = random.Next(data.Count);
        data.RemoveRange(at, 1 + random.Next(Math.Min(data.Count - at, random.OneIn(4) ? 512 : 16)));
    }

    static void CopyRange(FuzzRandom random, List<byte> data)
    {
        if (data.Count == 0) return;
        int from = random.Next(data.Count);
        int length = 1 + random.Next(Math.Min(data.Count - from, 256));
        var chunk = data.GetRange(from, length);
        int repeats = random.OneIn(8) ? 1 + random.Next(64) : 1;
        int at = random.Next(data.Count + 1);
        for (int r = 0; r < repeats; r++) data.InsertRange(at, chunk);
    }

    /// <summary>The head of one input with the tail of another, or a piece of the other inserted.</summary>
    static void Splice(FuzzRandom random, List<byte> data, byte[] other)
    {
        if (other.Length == 0) return;
        int from = random.Next(other.Length);
        if (random.OneIn(2))
        {
            int cut = random.Next(data.Count + 1);
            data.RemoveRange(cut, data.Count - cut);
            data.AddRange(other.AsSpan(from).ToArray());
        }
        else
        {
            int length = 1 + random.Next(Math.Min(other.Length - from, 512));
            data.InsertRange(random.Next(data.Count + 1), other.AsSpan(from, length).ToArray());
        }
    }

    static void WriteInteger(FuzzRandom random, List<byte> data, int offset, int width)
    {
        ulong value = random.Pick(InterestingIntegers);
        if (random.OneIn(4)) value += (ulong)random.Next(-2, 3);
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Overwrite(data, offset, bytes[..width]);
    }

    static void WriteFloat(FuzzRandom random, List<byte> data, int offset)
    {
        Span<byte> bytes = stackalloc byte[8];
        if (random.OneIn(2))
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, random.Pick(InterestingFloats));
            Overwrite(data, offset, bytes[..4]);
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, random.Pick(InterestingDoubles));
            Overwrite(data, offset, bytes);
        }
    }

    /// <summary>An interesting integer (or float of the same width) at one of the format's own fields: a count, a length, a type id, a value.</summary>
    static void WriteAtField(FuzzRandom random, List<byte> data, FuzzTarget target)
    {
        var fields = target.Fields?.Invoke(data.ToArray()) ?? [];
        if (fields.Count == 0)
        {
            WriteInteger(random, data, RandomOffset(random, data), random.Pick([1, 2, 4, 8]));
            return;
        }
        var field = random.Pick(fields);
        if (field.Width is 4 or 8 && random.OneIn(4))
        {
            Span<byte> bytes = stackalloc byte[8];
            if (field.Width == 4) BinaryPrimitives.WriteUInt32LittleEndian(bytes, random.Pick(InterestingFloats));
            else BinaryPrimitives.WriteUInt64LittleEndian(bytes, random.Pick(InterestingDoubles));
            Overwrite(data, field.Offset, bytes[..field.Width]);
        }
        else
        {
            WriteInteger(random, data, field.Offset, field.Width);
        }
    }

    static void InsertToken(FuzzRandom random, List<byte> data, FuzzTarget target)
    {
        if (target.Dictionary.Count == 0)
        {
            InsertRandom(random, data);
            return;
        }
        byte[] token = Encoding.UTF8.GetBytes(random.Pick(target.Dictionary));
        int at = random.Next(data.Count + 1);
        if (random.OneIn(3)) Overwrite(data, Math.Min(at, data.Count), token);
        else data.InsertRange(at, token);
    }

    static void Truncate(FuzzRandom random, List<byte> data)
    {
        if (data.Count == 0) return;
        int keep = random.Next(data.Count);
        data.RemoveRange(keep, data.Count - keep);
    }

    /// <summary>A run of ASCII digits (a number literal in text) replaced by an edge value.</summary>
    static void ReplaceNumber(FuzzRandom random, List<byte> data)
    {
        var starts = new List<int>();
        for (int i = 0; i < data.Count; i++)
            if (IsDigit(data[i]) && (i == 0 || !IsDigit(data[i - 1]) && data[i - 1] != '.'))
                starts.Add(i > 0 && data[i - 1] == '-' ? i - 1 : i);
        byte[] replacement = Encoding.ASCII.GetBytes(random.Pick(InterestingNumberTexts));
        if (starts.Count == 0)
        {
            data.InsertRange(random.Next(data.Count + 1), replacement);
            return;
        }
        int start = random.Pick(starts);
        int end = start + 1;
        while (end < data.Count && (IsDigit(data[end]) || data[end] is (byte)'.' or (byte)'e' or (byte)'E' or (byte)'+' or (byte)'-')) end++;
        data.RemoveRange(start, end - start);
        data.InsertRange(start, replacement);
    }

    static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    static void InsertInvalidUtf8(FuzzRandom random, List<byte> data) =>
        data.InsertRange(random.Next(data.Count + 1), random.Pick(InvalidUtf8));

    /// <summary>Opens (and usually closes) one of the target's nesting pairs thousands of times at a random point.</summary>
    static void Nest(FuzzRandom random, List<byte> data, FuzzTarget target)
    {
        if (target.Nesting.Count == 0)
        {
            InsertToken(random, data, target);
            return;
        }
        var (open, close) = random.Pick(target.Nesting);
        int depth = random.Pick([16, 65, 100, 1000, MaxNesting]);
        byte[] openBytes = Encoding.UTF8.GetBytes(open), closeBytes = Encoding.UTF8.GetBytes(close);
        var nested = new List<byte>(depth * (openBytes.Length + closeBytes.Length));
        for (int i = 0; i < depth; i++) nested.AddRange(openBytes);
        if (!random.OneIn(4))
            for (int i = 0; i < depth; i++) nested.AddRange(closeBytes);
        data.InsertRange(random.Next(data.Count + 1), nested);
    }

    static void Overwrite(List<byte> data, int offset, ReadOnlySpan<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            if (offset + i < data.Count) data[offset + i] = bytes[i];
            else data.Add(bytes[i]);
        }
    }
}
