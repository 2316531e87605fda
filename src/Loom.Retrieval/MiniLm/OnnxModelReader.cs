namespace Loom.Retrieval.MiniLm;

/// <summary>One initializer of an ONNX graph: a constant tensor (TensorProto), here only float32 ones with raw data.</summary>
/// <param name="Name">TensorProto.name.</param>
/// <param name="Dims">TensorProto.dims, outermost first.</param>
/// <param name="DataType">TensorProto.data_type (1: float32, 7: int64).</param>
/// <param name="Offset">Where TensorProto.raw_data starts in the model bytes (little-endian values).</param>
/// <param name="Length">Bytes of raw_data.</param>
internal sealed record OnnxInitializer(string Name, long[] Dims, int DataType, long Offset, long Length)
{
    public const int Float = 1;

    public long ElementCount => Dims.Aggregate(1L, (product, dim) => product * dim);
}

/// <summary>One node of an ONNX graph (NodeProto): its operator and the names of the values it reads and writes.</summary>
internal sealed record OnnxNode(string OpType, string[] Inputs, string[] Outputs);

/// <summary>
/// The least of the ONNX protobuf schema that reading a model's weights needs: ModelProto.graph (7) → GraphProto.node (1)
/// and GraphProto.initializer (5) → TensorProto dims (1), data_type (2), name (8), raw_data (9). Everything else is
/// skipped by its wire type. Tensor data is not copied: an initializer gives the offset of its raw bytes in the model.
/// </summary>
internal static class OnnxModelReader
{
    const int VarintWire = 0, Fixed64Wire = 1, LengthWire = 2, Fixed32Wire = 5;

    /// <summary>The graph's nodes and initializers; a tensor without raw_data (float_data, external data) is refused.</summary>
    public static (List<OnnxNode> Nodes, List<OnnxInitializer> Initializers) Read(ReadOnlySpan<byte> model)
    {
        var nodes = new List<OnnxNode>();
        var initializers = new List<OnnxInitializer>();
        bool sawGraph = false;
        long position = 0;
        while (position < model.Length)
        {
            var (field, wire) = ReadTag(model, ref position);
            if (field == 7 && wire == LengthWire)
            {
                long length = (long)ReadVarint(model, ref position);
                ReadGraph(model, position, position + length, nodes, initializers);
                position += length;
                sawGraph = true;
            }
            else Skip(model, wire, ref position);
        }
        if (!sawGraph) throw new InvalidDataException("the ONNX model holds no graph (ModelProto.graph)");
        return (nodes, initializers);
    }

    static void ReadGraph(ReadOnlySpan<byte> model, long position, long end, List<OnnxNode> nodes, List<OnnxInitializer> initializers)
    {
        while (position < end)
        {
            var (field, wire) = ReadTag(model, ref position);
            if (wire == LengthWire && field is 1 or 5)
            {
                long length = (long)ReadVarint(model, ref position);
                if (field == 1) nodes.Add(ReadNode(model, position, position + length));
                else initializers.Add(ReadTensor(model, position, position + length));
                position += length;
            }
            else Skip(model, wire, ref position);
        }
    }

    static OnnxNode ReadNode(ReadOnlySpan<byte> model, long position, long end)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string opType = "";
        while (position < end)
        {
            var (field, wire) = ReadTag(model, ref position);
            if (wire == LengthWire && field is 1 or 2 or 4)
            {
                string text = ReadString(model, ref position);
                if (field == 1) inputs.Add(text);
                else if (field == 2) outputs.Add(text);
                else opType = text;
            }
            else Skip(model, wire, ref position);
        }
        return new OnnxNode(opType, [.. inputs], [.. outputs]);
    }

    static OnnxInitializer ReadTensor(ReadOnlySpan<byte> model, long position, long end)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        long rawOffset = -1, rawLength = 0;
        while (position < end)
        {
            var (field, wire) = ReadTag(model, ref position);
            if (field == 1 && wire == VarintWire) dims.Add((long)ReadVarint(model, ref position));
            else if (field == 1 && wire == LengthWire)
            {
                // Packed dims.
                long packedLength = (long)ReadVarint(model, ref position);
                long stop = position + packedLength;
                while (position < stop) dims.Add((long)ReadVarint(model, ref position));
            }
            else if (field == 2 && wire == VarintWire) dataType = (int)ReadVarint(model, ref position);
            else if (field == 8 && wire == LengthWire) name = ReadString(model, ref position);
            else if (field == 9 && wire == LengthWire)
            {
                rawLength = (long)ReadVarint(model, ref position);
                rawOffset = position;
                position += rawLength;
            }
            else Skip(model, wire, ref position);
        }
        if (position != end) throw new InvalidDataException($"ONNX initializer '{name}' runs past its message");
        if (rawOffset < 0) throw new InvalidDataException($"ONNX initializer '{name}' has no raw_data (only raw tensor data is read)");
        return new OnnxInitializer(name, [.. dims], dataType, rawOffset, rawLength);
    }

    static (int Field, int Wire) ReadTag(ReadOnlySpan<byte> model, ref long position)
    {
        ulong tag = ReadVarint(model, ref position);
        return ((int)(tag >> 3), (int)(tag & 7));
    }

    static ulong ReadVarint(ReadOnlySpan<byte> model, ref long position)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (position >= model.Length) throw new InvalidDataException("the ONNX model ends inside a varint");
            byte b = model[(int)position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException("the ONNX model holds a varint longer than 10 bytes");
    }

    static string ReadString(ReadOnlySpan<byte> model, ref long position)
    {
        int length = checked((int)ReadVarint(model, ref position));
        CheckRange(model, position, length);
        string text = System.Text.Encoding.UTF8.GetString(model.Slice((int)position, length));
        position += length;
        return text;
    }

    static void Skip(ReadOnlySpan<byte> model, int wire, ref long position)
    {
        switch (wire)
        {
            case VarintWire: ReadVarint(model, ref position); break;
            case Fixed64Wire: position += 8; break;
            case Fixed32Wire: position += 4; break;
            case LengthWire:
                long length = (long)ReadVarint(model, ref position); // read before position is (a compound += would read it first)
                position += length;
                break;
            default: throw new InvalidDataException($"the ONNX model holds protobuf wire type {wire}, which it does not use");
        }
        CheckRange(model, position, 0);
    }

    static void CheckRange(ReadOnlySpan<byte> model, long position, long length)
    {
        if (position + length > model.Length) throw new InvalidDataException("the ONNX model ends inside a field");
    }
}
