using Loom.IO;
using System.Buffers.Binary;
using System.Text;

namespace Loom.Models.Gguf;

/// <summary>
/// Builds a GGUF v3 file: metadata in insertion order (<c>general.alignment</c> = 32 first),
/// tensor infos, then each tensor's data padded to the alignment. <see cref="Write"/> writes a
/// temporary file and renames it, so a reader never sees half a file.
/// </summary>
public sealed class GgufWriter
{
    readonly List<KeyValuePair<string, GgufValue>> metadata = [];
    readonly List<(GgufTensorInfo Info, byte[] Data)> tensors = [];
    readonly HashSet<string> tensorNames = new(StringComparer.Ordinal);

    public GgufWriter(int alignment = Gguf.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        Alignment = alignment;
        Set(Gguf.AlignmentKey, GgufValue.UInt32((uint)alignment));
    }

    public int Alignment { get; }

    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => metadata;

    public IReadOnlyList<GgufTensorInfo> Tensors => tensors.Select(t => t.Info).ToList();

    /// <summary>Sets a metadata value (a key set twice keeps its first position and the last value).</summary>
    public void Set(string key, GgufValue value)
    {
        if (key == Gguf.AlignmentKey && (value.Type != GgufValueType.UInt32 || (uint)value.Value != Alignment))
            throw new ArgumentException($"{Gguf.AlignmentKey} is fixed by the writer's alignment ({Alignment})", nameof(value));
        int index = metadata.FindIndex(kv => kv.Key == key);
        if (index >= 0)
            metadata[index] = new(key, value);
        else
            metadata.Add(new(key, value));
    }

    /// <summary>Adds a tensor from float32 values in row-major <paramref name="shape"/>, stored as <paramref name="type"/>.</summary>
    public void AddTensor(string name, ReadOnlySpan<int> shape, ReadOnlySpan<float> values, GgmlType type)
    {
        var dims = new long[shape.Length];
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] <= 0)
                throw new ArgumentException($"tensor '{name}' has a non-positive size in shape [{string.Join(", ", shape.ToArray())}]", nameof(shape));
            dims[^(i + 1)] = shape[i];
            count *= shape[i];
        }
        if (count != values.Length)
            throw new ArgumentException($"tensor '{name}': {values.Length} values do not fill shape [{string.Join(", ", shape.ToArray())}]", nameof(values));
        if (dims[0] % GgmlTypes.BlockSize(type) != 0)
            throw new ArgumentException($"tensor '{name}': rows of {dims[0]} are not a multiple of the {type} block size {GgmlTypes.BlockSize(type)}", nameof(type));
        var data = new byte[GgmlTypes.ByteCount(type, count)];
        GgmlQuant.Encode(type, values, data);
        AddTensorData(name, dims, (uint)type, data);
    }

    /// <summary>Adds a tensor's stored bytes as they are, with dimensions in GGUF order.</summary>
    public void AddTensorData(string name, long[] dimensions, uint typeId, byte[] data)
    {
        if (dimensions.Length is 0 or > Gguf.MaxDimensions)
            throw new ArgumentException($"tensor '{name}' has {dimensions.Length} dimensions (1 to {Gguf.MaxDimensions} allowed)", nameof(dimensions));
        if (!tensorNames.Add(name))
            throw new ArgumentException($"tensor '{name}' was added twice", nameof(name));
        ulong offset = 0;
        if (tensors.Count > 0)
        {
            var last = tensors[^1];
            offset = last.Info.Offset + (ulong)Pad(last.Data.Length);
        }
        var info = new GgufTensorInfo(name, (long[])dimensions.Clone(), typeId, offset);
        if (info.ByteCount >= 0 && info.ByteCount != data.Length)
            throw new ArgumentException($"tensor '{name}' of {GgmlTypes.Name(typeId)} {info.ShapeText} takes {info.ByteCount} bytes, {data.Length} given", nameof(data));
        tensors.Add((info, data));
    }

    /// <summary>Writes the file to <paramref name="path"/> through a temporary file in the same folder.</summary>
    public void Write(string path)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("GGUF writing needs a little-endian machine");
        AtomicFile.Write(path, WriteTo);
    }

    /// <summary>Writes the whole file to a stream (header, metadata, tensor infos, padded data).</summary>
    public void WriteTo(Stream stream)
    {
        var output = new Output(stream);
        output.UInt32(Gguf.Magic);
        output.UInt32(Gguf.Version);
        output.UInt64((ulong)tensors.Count);
        output.UInt64((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            output.String(key);
            output.UInt32((uint)value.Type);
            output.Value(value);
        }
        foreach (var (info, _) in tensors)
        {
            output.String(info.Name);
            output.UInt32((uint)info.Dimensions.Length);
            foreach (var d in info.Dimensions)
                output.UInt64((ulong)d);
            output.UInt32(info.TypeId);
            output.UInt64(info.Offset);
        }
        output.PadTo(Alignment);
        foreach (var (_, data) in tensors)
        {
            output.Bytes(data);
            output.PadTo(Alignment);
        }
    }

    int Pad(int length) => (length + Alignment - 1) / Alignment * Alignment;

    sealed class Output(Stream stream)
    {
        readonly byte[] scratch = new byte[8];
        long position;

        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            stream.Write(bytes);
            position += bytes.Length;
        }

        public void PadTo(int alignment)
        {
            long padding = (alignment - position % alignment) % alignment;
            Span<byte> zeros = stackalloc byte[64];
            zeros.Clear();
            while (padding > 0)
            {
                int n = (int)Math.Min(padding, zeros.Length);
                Bytes(zeros[..n]);
                padding -= n;
            }
        }

        public void UInt8(byte v) { scratch[0] = v; Bytes(scratch.AsSpan(0, 1)); }
        public void UInt16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(scratch, v); Bytes(scratch.AsSpan(0, 2)); }
        public void UInt32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(scratch, v); Bytes(scratch.AsSpan(0, 4)); }
        public void UInt64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(scratch, v); Bytes(scratch.AsSpan(0, 8)); }

        public void String(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            UInt64((ulong)bytes.Length);
            Bytes(bytes);
        }

        public void Value(GgufValue value)
        {
            switch (value.Value)
            {
                case byte v: UInt8(v); break;
                case sbyte v: UInt8((byte)v); break;
                case ushort v: UInt16(v); break;
                case short v: UInt16((ushort)v); break;
                case uint v: UInt32(v); break;
                case int v: UInt32((uint)v); break;
                case float v: UInt32(BitConverter.SingleToUInt32Bits(v)); break;
                case bool v: UInt8(v ? (byte)1 : (byte)0); break;
                case string v: String(v); break;
                case ulong v: UInt64(v); break;
                case long v: UInt64((ulong)v); break;
                case double v: UInt64(BitConverter.DoubleToUInt64Bits(v)); break;
                case Array array:
                    UInt32((uint)value.ElementType);
                    UInt64((ulong)array.Length);
                    foreach (var item in array)
                    {
                        if (item is GgufValue nested)
                            Value(nested);
                        else
                            Value(ItemOf(item));
                    }
                    break;
                default:
                    throw new ArgumentException($"cannot write a {value.Value.GetType().Name} as GGUF");
            }
        }

        // Nested arrays write their own element type and length; a nested value needs no type tag of its own.
        static GgufValue ItemOf(object item) => item switch
        {
            byte v => GgufValue.UInt8(v), sbyte v => GgufValue.Int8(v), ushort v => GgufValue.UInt16(v),
            short v => GgufValue.Int16(v), uint v => GgufValue.UInt32(v), int v => GgufValue.Int32(v),
            float v => GgufValue.Float32(v), bool v => GgufValue.Bool(v), string v => GgufValue.String(v),
            ulong v => GgufValue.UInt64(v), long v => GgufValue.Int64(v), double v => GgufValue.Float64(v),
            _ => throw new ArgumentException($"cannot write a {item.GetType().Name} as GGUF"),
        };
    }
}
