namespace Loom.Models.Gguf;

/// <summary>Constants of the GGUF format (version 3).</summary>
public static class Gguf
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    public const uint Version = 3;

    /// <summary>Alignment of tensor data when <c>general.alignment</c> is absent.</summary>
    public const int DefaultAlignment = 32;

    public const string AlignmentKey = "general.alignment";

    /// <summary>ggml's GGML_MAX_DIMS.</summary>
    public const int MaxDimensions = 4;
}

/// <summary>
/// One tensor's entry in a GGUF file. <see cref="Dimensions"/> is in GGUF (ggml) order, fastest
/// axis first, the reverse of the row-major <see cref="Shape"/> that Loom and PyTorch use:
/// a [vocab, dim] embedding is stored with dimensions [dim, vocab].
/// </summary>
/// <param name="Offset">Byte offset of the data from the start of the data section.</param>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, uint TypeId, ulong Offset)
{
    public GgmlType Type => GgmlTypes.IsKnown(TypeId) ? (GgmlType)TypeId
        : throw new NotSupportedException($"tensor '{Name}' has unsupported ggml type {GgmlTypes.Name(TypeId)}");

    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (var d in Dimensions)
                count *= d;
            return count;
        }
    }

    /// <summary>Row-major shape (slowest axis first).</summary>
    public int[] Shape
    {
        get
        {
            var shape = new int[Dimensions.Length];
            for (int i = 0; i < shape.Length; i++)
                shape[i] = checked((int)Dimensions[^(i + 1)]);
            return shape;
        }
    }

    /// <summary>Bytes of data, or -1 for a type Loom cannot size.</summary>
    public long ByteCount => GgmlTypes.IsKnown(TypeId) && ElementCount % GgmlTypes.BlockSize((GgmlType)TypeId) == 0
        ? GgmlTypes.ByteCount((GgmlType)TypeId, ElementCount)
        : -1;

    /// <summary>"[a, b]" in row-major order, for messages.</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>A GGUF file that cannot be read or does not fit what the reader expects; the message is one line naming the file.</summary>
public sealed class GgufException(string message) : IOException(message);
