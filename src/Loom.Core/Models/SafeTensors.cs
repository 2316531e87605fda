using Loom.IO;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Tensors;

namespace Loom.Models;

/// <summary>Tensors read from a safetensors file (or a sharded set), converted to float32, with the file's metadata.</summary>
public sealed class SafeTensorsContent
{
    /// <summary>Tensors by name, in the order of their data in the file.</summary>
    public required IReadOnlyDictionary<string, Tensor> Tensors { get; init; }
    /// <summary>The header's <c>__metadata__</c> (string to string), empty when absent.</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
}

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
/// header (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>)
/// padded with spaces to a multiple of 8, then the tensors' bytes, little-endian, contiguous, in offset order.
/// Loom writes F32 or BF16 and reads F32, F16 and BF16 (converted to float32).
/// </summary>
public static class SafeTensors
{
    /// <summary>The spec's limit on the header, against a hostile length field.</summary>
    const long MaxHeaderBytes = 100_000_000;

    /// <summary>The file that holds a single-file model, and the index of a sharded one.</summary>
    public const string ModelFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>Writes <paramref name="tensors"/> (each named by <see cref="Tensor.Name"/>) as F32 (or BF16) to <paramref name="path"/>, atomically.</summary>
    public static void Write(string path, IReadOnlyList<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null, bool bfloat16 = false) =>
        AtomicFile.Write(path, stream => Write(stream, tensors, metadata, bfloat16));

    /// <summary>Writes the safetensors bytes to a stream: F32, or BF16 (rounded to nearest even) when <paramref name="bfloat16"/> is set.</summary>
    public static void Write(Stream stream, IReadOnlyList<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null, bool bfloat16 = false)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors writing needs a little-endian machine");
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (key, value) in metadata) meta[key] = value;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var t in tensors)
        {
            string name = t.Name ?? throw new ArgumentException($"tensor {t.ShapeText} has no name");
            if (name == "__metadata__" || header.ContainsKey(name)) throw new ArgumentException($"tensor name '{name}' is reserved or repeated");
            long bytes = (long)t.Length * (bfloat16 ? sizeof(ushort) : sizeof(float));
            var shape = new JsonArray();
            foreach (int d in t.Shape) shape.Add(d);
            header[name] = new JsonObject
            {
                ["dtype"] = bfloat16 ? "BF16" : "F32",
                ["shape"] = shape,
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var t in tensors)
        {
            if (!bfloat16)
            {
                stream.Write(MemoryMarshal.AsBytes(t.Span));
                continue;
            }
            var halves = new byte[t.Length * sizeof(ushort)];
            Gguf.GgmlQuant.EncodeBF16(t.Span, halves);
            stream.Write(halves);
        }
    }

    /// <summary>Reads one safetensors file; errors are one line naming the file and the tensor or field.</summary>
    public static SafeTensorsContent Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(stream, path);
    }

    /// <summary>Reads safetensors bytes from a seekable stream; <paramref name="source"/> names it in errors.</summary>
    public static SafeTensorsContent Read(Stream stream, string source)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw new InvalidDataException($"{source}: {fileLength} bytes, too short for the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes) throw new InvalidDataException($"{source}: header length {headerLength} exceeds the 100 MB limit");
        if ((long)headerLength > fileLength - 8) throw new InvalidDataException($"{source}: header length {headerLength} exceeds the file's {fileLength - 8} remaining bytes (truncated file?)");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        if (headerLength == 0 || headerBytes[0] != (byte)'{') throw new InvalidDataException($"{source}: header does not start with '{{'");

        JsonObject header;
        try
        {
            if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw new InvalidDataException($"{source}: header is not valid UTF-8");
            header = JsonNode.Parse(headerBytes, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw new InvalidDataException($"{source}: header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: header is not valid JSON ({e.Message.ReplaceLineEndings(" ")})");
        }
        catch (InvalidOperationException)
        {
            // The duplicate check decodes every name: an escaped lone surrogate (\ud800) in one surfaces here.
            throw new InvalidDataException($"{source}: header holds a string that is not valid text (an unpaired UTF-16 surrogate escape)");
        }

        var metadata = new Dictionary<string, string>();
        var entries = new List<Entry>();
        try
        {
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__")
                {
                    if (node is not JsonObject meta) throw new InvalidDataException($"{source}: __metadata__ is not an object");
                    foreach (var (key, value) in meta)
                    {
                        if (value is null || value.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"{source}: __metadata__ value '{key}' is not a string");
                        metadata[key] = (string)value!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(name, node, source));
            }
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json decodes strings lazily: an escaped lone surrogate (\ud800) surfaces here.
            throw new InvalidDataException($"{source}: header holds a string that is not valid text (an unpaired UTF-16 surrogate escape)");
        }

        long dataLength = fileLength - 8 - (long)headerLength;
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        foreach (var e in entries)
        {
            if (e.Begin != expected)
                throw new InvalidDataException(e.Begin < expected
                    ? $"{source}: tensor '{e.Name}' data_offsets [{e.Begin}, {e.End}] overlap the tensor before it (ends at {expected})"
                    : $"{source}: tensor '{e.Name}' data_offsets [{e.Begin}, {e.End}] leave a hole after byte {expected}");
            if (e.End > dataLength)
                throw new InvalidDataException($"{source}: tensor '{e.Name}' data_offsets [{e.Begin}, {e.End}] run past the data's {dataLength} bytes (truncated file?)");
            expected = e.End;
        }
        if (expected != dataLength) throw new InvalidDataException($"{source}: {dataLength - expected} bytes after the last tensor are not described by the header");

        var tensors = new Dictionary<string, Tensor>();
        byte[]? buffer = null;
        long dataStart = 8 + (long)headerLength;
        foreach (var e in entries)
        {
            var t = new Tensor(e.Shape) { Name = e.Name };
            stream.Position = dataStart + e.Begin;
            if (e.DType == "F32")
            {
                var bytes = MemoryMarshal.AsBytes(t.Span);
                stream.ReadExactly(bytes);
                if (!BitConverter.IsLittleEndian)
                {
                    var ints = MemoryMarshal.Cast<float, int>(t.Span);
                    BinaryPrimitives.ReverseEndianness(ints, ints);
                }
            }
            else
            {
                int count = t.Length;
                if (buffer is null || buffer.Length < count * 2) buffer = new byte[count * 2];
                stream.ReadExactly(buffer.AsSpan(0, count * 2));
                var output = t.Span;
                bool half = e.DType == "F16";
                for (int i = 0; i < count; i++)
                {
                    ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(i * 2, 2));
                    output[i] = half ? HalfToFloat(bits) : BFloat16ToFloat(bits);
                }
            }
            tensors.Add(e.Name, t);
        }
        return new SafeTensorsContent { Tensors = tensors, Metadata = metadata };
    }

    /// <summary>
    /// Reads a model folder: <c>model.safetensors</c>, or the shards listed by <c>model.safetensors.index.json</c>
    /// (its <c>weight_map</c> names the file of every tensor).
    /// </summary>
    public static SafeTensorsContent ReadModel(string folder)
    {
        string single = Path.Combine(folder, ModelFileName);
        string index = Path.Combine(folder, IndexFileName);
        if (File.Exists(single)) return Read(single);
        if (!File.Exists(index)) throw new FileNotFoundException($"{folder}: neither {ModelFileName} nor {IndexFileName} found", single);

        JsonObject weightMap;
        try
        {
            weightMap = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject
                ?? throw new InvalidDataException($"{index}: missing object weight_map");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{index}: invalid JSON ({e.Message.Split('\n')[0]})");
        }
        var files = new List<string>();
        foreach (var (name, file) in weightMap)
        {
            if (file is null || file.GetValueKind() != JsonValueKind.String) throw new InvalidDataException($"{index}: weight_map entry '{name}' is not a file name");
            string shard = (string)file!;
            if (shard.Contains('/') || shard.Contains('\\') || shard.StartsWith('.'))
                throw new InvalidDataException($"{index}: weight_map entry '{name}' names '{shard}', not a file in the folder");
            if (!files.Contains(shard)) files.Add(shard);
        }
        var tensors = new Dictionary<string, Tensor>();
        var metadata = new Dictionary<string, string>();
        foreach (string shard in files)
        {
            string shardPath = Path.Combine(folder, shard);
            var content = Read(shardPath);
            foreach (var (key, value) in content.Metadata) metadata[key] = value;
            foreach (var (name, t) in content.Tensors)
            {
                if (!tensors.TryAdd(name, t)) throw new InvalidDataException($"{shardPath}: tensor '{name}' appears in more than one shard");
            }
        }
        foreach (var (name, file) in weightMap)
        {
            if (!tensors.ContainsKey(name)) throw new InvalidDataException($"{Path.Combine(folder, (string)file!)}: tensor '{name}' listed in {IndexFileName} is missing");
        }
        return new SafeTensorsContent { Tensors = tensors, Metadata = metadata };
    }

    /// <summary>IEEE 754 binary16 to float32 (exact: every half is a float).</summary>
    public static float HalfToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>bfloat16 to float32: the 16 bits are the top half of a float32.</summary>
    public static float BFloat16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    readonly record struct Entry(string Name, string DType, int[] Shape, long Begin, long End);

    static Entry ParseEntry(string name, JsonNode? node, string source)
    {
        if (node is not JsonObject o) throw new InvalidDataException($"{source}: tensor '{name}' entry is not an object");
        string dtype = o["dtype"] is JsonNode d && d.GetValueKind() == JsonValueKind.String ? (string)d! : throw new InvalidDataException($"{source}: tensor '{name}' has no dtype");
        int elementSize = dtype switch
        {
            "F32" => 4,
            "F16" or "BF16" => 2,
            _ => throw new InvalidDataException($"{source}: tensor '{name}' has dtype {dtype}; Loom reads F32, F16 and BF16"),
        };
        if (o["shape"] is not JsonArray shapeNode) throw new InvalidDataException($"{source}: tensor '{name}' has no shape array");
        if (shapeNode.Count > 4) throw new InvalidDataException($"{source}: tensor '{name}' has {shapeNode.Count} dimensions; Loom holds at most 4");
        var shape = new int[shapeNode.Count];
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long dim = ReadLong(shapeNode[i], $"{source}: tensor '{name}' shape");
            if (dim < 0 || dim > int.MaxValue) throw new InvalidDataException($"{source}: tensor '{name}' has dimension {dim}");
            shape[i] = (int)dim;
            count *= dim;
            if (count > Array.MaxLength) throw new InvalidDataException($"{source}: tensor '{name}' is too large");
        }
        if (o["data_offsets"] is not JsonArray { Count: 2 } offsets) throw new InvalidDataException($"{source}: tensor '{name}' needs data_offsets [begin, end]");
        long begin = ReadLong(offsets[0], $"{source}: tensor '{name}' data_offsets");
        long end = ReadLong(offsets[1], $"{source}: tensor '{name}' data_offsets");
        if (begin < 0 || end < begin) throw new InvalidDataException($"{source}: tensor '{name}' has data_offsets [{begin}, {end}]");
        if (end - begin != count * elementSize)
            throw new InvalidDataException($"{source}: tensor '{name}' data_offsets [{begin}, {end}] hold {end - begin} bytes, shape [{string.Join(", ", shape)}] of {dtype} needs {count * elementSize}");
        return new Entry(name, dtype, shape, begin, end);
    }

    static long ReadLong(JsonNode? node, string what)
    {
        if (node is null || node.GetValueKind() != JsonValueKind.Number) throw new InvalidDataException($"{what}: expected an integer");
        try { return node.GetValue<long>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{what}: expected an integer, got {node.ToJsonString()}");
        }
    }
}
