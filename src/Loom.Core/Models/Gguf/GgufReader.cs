using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Loom.Models.Gguf;

/// <summary>
/// Reads a GGUF v3 file: header, typed metadata and tensor infos on open; tensor data on demand
/// (positioned reads, so a large file is never read whole). Every problem is a
/// <see cref="GgufException"/> with a one-line message naming the file and the field or tensor.
/// </summary>
public sealed class GgufReader : IDisposable
{
    readonly SafeFileHandle handle;
    readonly Dictionary<string, GgufValue> metadata = new(StringComparer.Ordinal);
    readonly List<string> keyOrder = [];
    readonly Dictionary<string, GgufTensorInfo> tensorsByName = new(StringComparer.Ordinal);

    GgufReader(string path, SafeFileHandle handle)
    {
        Path = path;
        this.handle = handle;
        FileLength = RandomAccess.GetLength(handle);
    }

    public string Path { get; }

    public long FileLength { get; }

    public uint Version { get; private set; }

    /// <summary>Alignment of tensor data: <c>general.alignment</c>, or 32.</summary>
    public int Alignment { get; private set; } = Gguf.DefaultAlignment;

    /// <summary>Absolute file offset of the data section.</summary>
    public long DataOffset { get; private set; }

    /// <summary>Metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => keyOrder.Select(k => new KeyValuePair<string, GgufValue>(k, metadata[k])).ToList();

    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; private set; } = [];

    public static GgufReader Open(string path)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GgufException($"{path}: cannot open: {e.Message}");
        }
        var reader = new GgufReader(path, handle);
        try
        {
            reader.ReadHeader();
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    public bool Contains(string key) => metadata.ContainsKey(key);

    public GgufValue? Find(string key) => metadata.GetValueOrDefault(key);

    /// <summary>The value of <paramref name="key"/>; a missing key is an error naming it.</summary>
    public GgufValue Get(string key) => metadata.TryGetValue(key, out var v) ? v : throw Error($"missing metadata key '{key}'");

    /// <summary>An integer metadata value, range-checked.</summary>
    public long GetInt(string key, long min = long.MinValue, long max = long.MaxValue)
    {
        var value = Get(key);
        long result;
        try
        {
            result = value.AsInt64();
        }
        catch (Exception e) when (e is InvalidCastException or OverflowException)
        {
            throw Error($"metadata '{key}' is {Describe(value)}, expected an integer");
        }
        if (result < min || result > max)
            throw Error($"metadata '{key}' = {result} is out of range [{min}, {max}]");
        return result;
    }

    public double GetFloat(string key)
    {
        var value = Get(key);
        try
        {
            return value.AsDouble();
        }
        catch (InvalidCastException)
        {
            throw Error($"metadata '{key}' is {Describe(value)}, expected a number");
        }
    }

    public string GetString(string key)
    {
        var value = Get(key);
        return value.Value as string ?? throw Error($"metadata '{key}' is {Describe(value)}, expected a string");
    }

    public T[] GetArray<T>(string key)
    {
        var value = Get(key);
        return value.Value as T[] ?? throw Error($"metadata '{key}' is {Describe(value)}, expected an array of {typeof(T).Name}");
    }

    public bool HasTensor(string name) => tensorsByName.ContainsKey(name);

    public GgufTensorInfo Tensor(string name) =>
        tensorsByName.TryGetValue(name, out var t) ? t : throw Error($"missing tensor '{name}'");

    /// <summary>The stored bytes of a tensor.</summary>
    public byte[] ReadRaw(GgufTensorInfo tensor)
    {
        long byteCount = tensor.ByteCount;
        if (byteCount < 0)
            throw Error($"tensor '{tensor.Name}' has unsupported type {GgmlTypes.Name(tensor.TypeId)} (Loom reads f32, f16, bf16, q8_0, q4_0, q4_k)");
        if (byteCount > Array.MaxLength)
            throw Error($"tensor '{tensor.Name}' is {byteCount} bytes, too large to read at once");
        var data = new byte[byteCount];
        long offset = DataOffset + (long)tensor.Offset;
        int read = 0;
        while (read < data.Length)
        {
            int n = RandomAccess.Read(handle, data.AsSpan(read), offset + read);
            if (n == 0)
                throw Error($"truncated: data of tensor '{tensor.Name}' ends at byte {offset + byteCount}, the file has {FileLength}");
            read += n;
        }
        return data;
    }

    /// <summary>A tensor's values as float32 (F16, BF16 and the quantised types are expanded).</summary>
    public float[] ReadFloats(GgufTensorInfo tensor)
    {
        var raw = ReadRaw(tensor);
        var values = new float[checked((int)tensor.ElementCount)];
        GgmlQuant.Decode(tensor.Type, raw, values);
        return values;
    }

    public float[] ReadFloats(string name) => ReadFloats(Tensor(name));

    /// <summary>An error naming the file; names and strings quoted from the file cannot break it over lines.</summary>
    public GgufException Error(string message) => new($"{Path}: {message}".ReplaceLineEndings(" "));

    public void Dispose() => handle.Dispose();

    static string Describe(GgufValue value) => value.IsArray ? $"an array of {value.ElementType}" : $"a {value.Type}";

    void ReadHeader()
    {
        var input = new Cursor(this);
        uint magic = input.UInt32("magic");
        if (magic != Gguf.Magic)
        {
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, magic);
            string shown = string.Concat(bytes.ToArray().Select(b => b is >= 0x20 and < 0x7f ? ((char)b).ToString() : $"\\x{b:x2}"));
            throw Error($"not a GGUF file (magic '{shown}', expected 'GGUF')");
        }
        Version = input.UInt32("version");
        if (Version != Gguf.Version)
            throw Error($"unsupported GGUF version {Version} (Loom reads version {Gguf.Version})");
        long tensorCount = input.Count("tensor count", 8 + 4 + 8 + 4 + 8);
        long keyCount = input.Count("metadata key count", 8 + 4);

        for (long i = 0; i < keyCount; i++)
        {
            string key = input.String($"metadata key #{i}");
            var type = input.ValueType($"metadata '{key}' type");
            var value = input.Value(type, $"metadata '{key}'");
            if (!metadata.TryAdd(key, value))
                throw Error($"duplicate metadata key '{key}'");
            keyOrder.Add(key);
        }

        if (metadata.TryGetValue(Gguf.AlignmentKey, out var alignment))
        {
            if (alignment.Type != GgufValueType.UInt32)
                throw Error($"metadata '{Gguf.AlignmentKey}' is a {alignment.Type}, expected UInt32");
            uint a = (uint)alignment.Value;
            if (a == 0 || (a & (a - 1)) != 0 || a > 1 << 20)
                throw Error($"metadata '{Gguf.AlignmentKey}' = {a} is not a power of two");
            Alignment = (int)a;
        }

        var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 1 << 16));
        for (long i = 0; i < tensorCount; i++)
        {
            string name = input.String($"name of tensor #{i}");
            uint dimensionCount = input.UInt32($"dimension count of tensor '{name}'");
            if (dimensionCount is 0 or > Gguf.MaxDimensions)
                throw Error($"tensor '{name}' has {dimensionCount} dimensions (1 to {Gguf.MaxDimensions} allowed)");
            var dims = new long[dimensionCount];
            for (int d = 0; d < dims.Length; d++)
            {
                ulong size = input.UInt64($"dimension {d} of tensor '{name}'");
                if (size > int.MaxValue)
                    throw Error($"tensor '{name}' dimension {d} = {size} is too large");
                dims[d] = (long)size;
            }
            uint typeId = input.UInt32($"type of tensor '{name}'");
            ulong offset = input.UInt64($"offset of tensor '{name}'");
            var info = new GgufTensorInfo(name, dims, typeId, offset);
            if (!tensorsByName.TryAdd(name, info))
                throw Error($"duplicate tensor '{name}'");
            if (offset > (ulong)FileLength)
                throw Error($"tensor '{name}' data offset {offset} is past the end of the file ({FileLength} bytes)");
            if (offset % (ulong)Alignment != 0)
                throw Error($"tensor '{name}' data offset {offset} is not a multiple of the alignment {Alignment}");
            if (GgmlTypes.IsKnown(typeId) && dims[0] % GgmlTypes.BlockSize((GgmlType)typeId) != 0)
                throw Error($"tensor '{name}' row length {dims[0]} is not a multiple of the {GgmlTypes.Name(typeId)} block size {GgmlTypes.BlockSize((GgmlType)typeId)}");
            tensors.Add(info);
        }
        Tensors = tensors;

        DataOffset = (input.Position + Alignment - 1) / Alignment * Alignment;
        foreach (var t in tensors)
        {
            long end = t.ByteCount < 0 ? -1 : DataOffset + (long)t.Offset + t.ByteCount;
            if (end > FileLength || (t.ByteCount < 0 && DataOffset + (long)t.Offset > FileLength))
                throw Error($"truncated: data of tensor '{t.Name}' ends at byte {end}, the file has {FileLength}");
        }
    }

    /// <summary>Reads little-endian fields from the header through a buffer, naming the field when the file ends early.</summary>
    sealed class Cursor(GgufReader owner)
    {
        byte[] buffer = new byte[1 << 16];
        long bufferStart;
        int bufferLength;

        public long Position { get; private set; }

        ReadOnlySpan<byte> Take(int count, string field)
        {
            if (Position + count > owner.FileLength)
                throw owner.Error($"truncated at byte {owner.FileLength} while reading {field}");
            if (count > buffer.Length)
            {
                buffer = new byte[count];
                bufferLength = 0;
            }
            if (Position < bufferStart || Position + count > bufferStart + bufferLength)
            {
                bufferStart = Position;
                bufferLength = 0;
                while (bufferLength < buffer.Length && bufferStart + bufferLength < owner.FileLength)
                {
                    int n = RandomAccess.Read(owner.handle, buffer.AsSpan(bufferLength), bufferStart + bufferLength);
                    if (n == 0)
                        break;
                    bufferLength += n;
                }
                if (count > bufferLength)
                    throw owner.Error($"truncated at byte {bufferStart + bufferLength} while reading {field}");
            }
            var span = buffer.AsSpan((int)(Position - bufferStart), count);
            Position += count;
            return span;
        }

        public byte UInt8(string field) => Take(1, field)[0];
        public ushort UInt16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));
        public uint UInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));
        public ulong UInt64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));

        /// <summary>A count of items that each take at least <paramref name="minItemBytes"/>; a count the rest of the file cannot hold is a truncation.</summary>
        public long Count(string field, int minItemBytes)
        {
            ulong count = UInt64(field);
            ulong room = (ulong)(owner.FileLength - Position) / (ulong)minItemBytes;
            if (count > room)
                throw owner.Error($"truncated: {field} is {count}, but only {owner.FileLength - Position} bytes follow");
            return (long)count;
        }

        public GgufValueType ValueType(string field)
        {
            uint type = UInt32(field);
            if (type > (uint)GgufValueType.Float64)
                throw owner.Error($"{field} {type} is not a GGUF value type");
            return (GgufValueType)type;
        }

        public string String(string field)
        {
            ulong length = UInt64($"{field} length");
            if (length > (ulong)(owner.FileLength - Position))
                throw owner.Error($"truncated: {field} is {length} bytes, but only {owner.FileLength - Position} bytes follow");
            if (length > 1 << 30)
                throw owner.Error($"{field} is {length} bytes, too long for a string");
            try
            {
                return Strict.GetString(Take((int)length, field));
            }
            catch (DecoderFallbackException)
            {
                throw owner.Error($"{field} is not valid UTF-8");
            }
        }

        static readonly UTF8Encoding Strict = new(false, true);

        public GgufValue Value(GgufValueType type, string field) => type switch
        {
            GgufValueType.UInt8 => GgufValue.UInt8(UInt8(field)),
            GgufValueType.Int8 => GgufValue.Int8((sbyte)UInt8(field)),
            GgufValueType.UInt16 => GgufValue.UInt16(UInt16(field)),
            GgufValueType.Int16 => GgufValue.Int16((short)UInt16(field)),
            GgufValueType.UInt32 => GgufValue.UInt32(UInt32(field)),
            GgufValueType.Int32 => GgufValue.Int32((int)UInt32(field)),
            GgufValueType.Float32 => GgufValue.Float32(BitConverter.UInt32BitsToSingle(UInt32(field))),
            GgufValueType.Bool => GgufValue.Bool(Bool(field)),
            GgufValueType.String => GgufValue.String(String(field)),
            GgufValueType.UInt64 => GgufValue.UInt64(UInt64(field)),
            GgufValueType.Int64 => GgufValue.Int64((long)UInt64(field)),
            GgufValueType.Float64 => GgufValue.Float64(BitConverter.UInt64BitsToDouble(UInt64(field))),
            GgufValueType.Array => Array(field),
            _ => throw owner.Error($"{field} has unknown type {(uint)type}"),
        };

        bool Bool(string field)
        {
            byte b = UInt8(field);
            return b switch
            {
                0 => false,
                1 => true,
                _ => throw owner.Error($"{field} is a bool holding {b}, expected 0 or 1"),
            };
        }

        GgufValue Array(string field)
        {
            var elementType = ValueType($"{field} element type");
            int minBytes = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.Array => 12,
                _ => 8,
            };
            int count = (int)Math.Min(Count($"{field} length", minBytes), int.MaxValue);
            string Item(int i) => $"{field}[{i}]";
            switch (elementType)
            {
                case GgufValueType.String:
                {
                    var items = new string[count];
                    for (int i = 0; i < count; i++)
                        items[i] = String(Item(i));
                    return GgufValue.Array(items);
                }
                case GgufValueType.Array:
                {
                    var items = new GgufValue[count];
                    for (int i = 0; i < count; i++)
                        items[i] = Array(Item(i));
                    return GgufValue.Array(items);
                }
                case GgufValueType.UInt8: return GgufValue.Array(Read(count, minBytes, field, s => s[0]));
                case GgufValueType.Int8: return GgufValue.Array(Read(count, minBytes, field, s => (sbyte)s[0]));
                case GgufValueType.Bool:
                {
                    var raw = Read(count, minBytes, field, s => s[0]);
                    var items = new bool[count];
                    for (int i = 0; i < count; i++)
                        items[i] = raw[i] switch { 0 => false, 1 => true, _ => throw owner.Error($"{Item(i)} is a bool holding {raw[i]}") };
                    return GgufValue.Array(items);
                }
                case GgufValueType.UInt16: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadUInt16LittleEndian));
                case GgufValueType.Int16: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadInt16LittleEndian));
                case GgufValueType.UInt32: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadUInt32LittleEndian));
                case GgufValueType.Int32: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadInt32LittleEndian));
                case GgufValueType.Float32: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadSingleLittleEndian));
                case GgufValueType.UInt64: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadUInt64LittleEndian));
                case GgufValueType.Int64: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadInt64LittleEndian));
                case GgufValueType.Float64: return GgufValue.Array(Read(count, minBytes, field, BinaryPrimitives.ReadDoubleLittleEndian));
                default: throw owner.Error($"{field} has unknown element type {(uint)elementType}");
            }
        }

        delegate T Parse<T>(ReadOnlySpan<byte> bytes);

        T[] Read<T>(int count, int size, string field, Parse<T> parse)
        {
            var items = new T[count];
            for (int i = 0; i < count; i++)
                items[i] = parse(Take(size, $"{field}[{i}]"));
            return items;
        }
    }
}
