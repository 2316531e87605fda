namespace Loom.Models.Gguf;

/// <summary>Type tag of a GGUF metadata value (the spec's <c>gguf_metadata_value_type</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>Storage type of a tensor in a GGUF file (ggml's <c>ggml_type</c>); Loom reads and writes these.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    Q4_K = 12,
    BF16 = 30,
}

/// <summary>Byte sizes of the ggml types Loom supports.</summary>
public static class GgmlTypes
{
    /// <summary>Elements per block: 32 for Q8_0 and Q4_0, 256 for Q4_K, 1 for plain floats.</summary>
    public static int BlockSize(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => Q8Block.Size,
        GgmlType.Q4_0 => Q4Block.Size,
        GgmlType.Q4_K => Q4KBlock.Size,
        _ => 1,
    };

    /// <summary>Bytes per block: 34 for Q8_0, 18 for Q4_0, 144 for Q4_K, 2 for F16 and BF16, 4 for F32.</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q8_0 => Q8Block.Bytes,
        GgmlType.Q4_0 => Q4Block.Bytes,
        GgmlType.Q4_K => Q4KBlock.Bytes,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported ggml type"),
    };

    /// <summary>Whether the type stores blocks of integers with scales (Q8_0, Q4_0, Q4_K).</summary>
    public static bool IsQuantized(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K;

    /// <summary>Bytes that <paramref name="elementCount"/> elements take (a multiple of the block size).</summary>
    public static long ByteCount(GgmlType type, long elementCount)
    {
        int block = BlockSize(type);
        if (elementCount % block != 0)
            throw new ArgumentException($"{elementCount} elements are not a whole number of {type} blocks of {block}", nameof(elementCount));
        return elementCount / block * BlockBytes(type);
    }

    public static bool IsKnown(uint type) => type is (uint)GgmlType.F32 or (uint)GgmlType.F16 or (uint)GgmlType.Q4_0 or (uint)GgmlType.Q8_0
        or (uint)GgmlType.Q4_K or (uint)GgmlType.BF16;

    /// <summary>The type named as llama.cpp prints it ("q4_k", "bf16"); null for a name Loom does not read.</summary>
    public static GgmlType? Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32, "f16" => GgmlType.F16, "bf16" => GgmlType.BF16,
        "q8_0" => GgmlType.Q8_0, "q4_0" => GgmlType.Q4_0, "q4_k" => GgmlType.Q4_K,
        _ => null,
    };

    /// <summary>ggml's name for a type (as llama.cpp prints it).</summary>
    public static string Name(uint type) => type switch
    {
        0 => "f32", 1 => "f16", 2 => "q4_0", 3 => "q4_1", 6 => "q5_0", 7 => "q5_1", 8 => "q8_0", 9 => "q8_1",
        10 => "q2_k", 11 => "q3_k", 12 => "q4_k", 13 => "q5_k", 14 => "q6_k", 15 => "q8_k", 30 => "bf16",
        _ => $"type {type}",
    };
}
