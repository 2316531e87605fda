using Loom.Models.Gguf;

namespace Loom.Tensors;

/// <summary>
/// A weight matrix [rows, columns] kept in a ggml block format (Q8_0, Q4_0, Q4_K, or BF16 for a frozen LoRA base: <see cref="Bf16Gemm"/>), never expanded to float32:
/// each row is a whole number of blocks, rows follow each other. The bytes live in a pinned array or in a
/// memory-mapped region of a GGUF file (the mapping is kept alive by this object). Attach it to a weight with
/// <see cref="Tensor.FromQuantized"/>; projections and the LM head then run <see cref="QuantizedGemv"/> on it.
/// </summary>
public sealed unsafe class QuantizedMatrix
{
    readonly byte[]? pinned;
    readonly object? owner; // keeps a memory mapping alive as long as this matrix is reachable

    QuantizedMatrix(GgmlType type, int rows, int columns, byte* data, byte[]? pinned, object? owner)
    {
        if (!GgmlTypes.IsQuantized(type) && type != GgmlType.BF16) throw new ArgumentException($"{type} is not a quantised type (Q8_0, Q4_0, Q4_K) or BF16", nameof(type));
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        if (columns % GgmlTypes.BlockSize(type) != 0)
            throw new ArgumentException($"rows of {columns} are not a multiple of the {type} block size {GgmlTypes.BlockSize(type)}", nameof(columns));
        Type = type;
        Rows = rows;
        Columns = columns;
        RowBytes = GgmlTypes.ByteCount(type, columns);
        Data = data;
        this.pinned = pinned;
        this.owner = owner;
    }

    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }

    /// <summary>Bytes of one row (its blocks).</summary>
    public long RowBytes { get; }

    /// <summary>Bytes of the whole matrix.</summary>
    public long ByteCount => RowBytes * Rows;

    internal byte* Data { get; }

    /// <summary>Quantises values [rows, columns] to <paramref name="type"/> into a pinned array.</summary>
    public static QuantizedMatrix Quantize(ReadOnlySpan<float> values, int rows, int columns, GgmlType type)
    {
        if (values.Length != (long)rows * columns)
            throw new ArgumentException($"{values.Length} values do not fill [{rows}, {columns}]", nameof(values));
        var bytes = GC.AllocateArray<byte>(checked((int)GgmlTypes.ByteCount(type, (long)rows * columns)), pinned: true);
        GgmlQuant.Encode(type, values, bytes);
        return FromBytes(type, rows, columns, bytes);
    }

    /// <summary>A matrix over stored blocks (ggml layout, row after row); the bytes are copied to a pinned array unless they are one already.</summary>
    public static QuantizedMatrix FromBytes(GgmlType type, int rows, int columns, byte[] bytes)
    {
        long expected = GgmlTypes.ByteCount(type, (long)rows * columns);
        if (bytes.Length != expected)
            throw new ArgumentException($"[{rows}, {columns}] of {type} takes {expected} bytes, {bytes.Length} given", nameof(bytes));
        var held = GC.AllocateArray<byte>(bytes.Length, pinned: true);
        bytes.CopyTo(held, 0);
        fixed (byte* data = held) // pinned: the address stays valid after the fixed block
            return new QuantizedMatrix(type, rows, columns, data, held, null);
    }

    /// <summary>A matrix over memory that <paramref name="owner"/> keeps valid (a mapped file view) for as long as the matrix lives.</summary>
    internal static QuantizedMatrix FromMemory(GgmlType type, int rows, int columns, byte* data, object owner) =>
        new(type, rows, columns, data, null, owner);

    /// <summary>The stored bytes of one row.</summary>
    public ReadOnlySpan<byte> Row(int row)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"row outside [0, {Rows})");
        return new ReadOnlySpan<byte>(Data + row * RowBytes, checked((int)RowBytes));
    }

    /// <summary>Expands one row to float32 <paramref name="output"/> [columns].</summary>
    public void DequantizeRow(int row, Span<float> output) => GgmlQuant.Decode(Type, Row(row), output);

    /// <summary>Expands the whole matrix to float32 <paramref name="output"/> [rows, columns].</summary>
    public void Dequantize(Span<float> output)
    {
        if (output.Length != (long)Rows * Columns) throw new ArgumentException($"output has {output.Length} values, [{Rows}, {Columns}] needs {(long)Rows * Columns}", nameof(output));
        for (int r = 0; r < Rows; r++) DequantizeRow(r, output.Slice(r * Columns, Columns));
    }

    public override string ToString() => $"{Type}[{Rows}, {Columns}]{(pinned is null && owner is not null ? " mapped" : "")}";
}
