using System.IO.MemoryMappedFiles;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Models.Gguf;

/// <summary>
/// Llama models with their weight matrices held quantised (Q8_0, Q4_0, Q4_K), as <c>loom quantize</c> writes them:
/// a checkpoint folder whose weights are <see cref="FileName"/> (a llama GGUF, which llama.cpp runs as it is) beside
/// config.json and tokenizer.json. Loading maps the file into memory and points each matrix at its blocks, so a
/// quantised weight is never expanded to float32 and pages in from the OS cache; only q and k, whose rows GGUF
/// stores in llama.cpp's rotary order, are copied (rows reordered, still quantised). Norms and any matrix stored
/// as F32/F16/BF16 are read as float32.
/// </summary>
public static class QuantizedLlamaGguf
{
    /// <summary>The weights file of a quantised checkpoint folder.</summary>
    public const string FileName = "model.gguf";

    /// <summary>
    /// Writes <paramref name="model"/>'s weights as a llama GGUF with its matrices quantised to <paramref name="type"/>
    /// (norms stay F32; a matrix whose rows are not whole blocks falls back to F16).
    /// </summary>
    public static void Write(string path, Transformer model, ITokenizer? tokenizer, GgmlType type, string? name = null)
    {
        if (!GgmlTypes.IsQuantized(type)) throw new ArgumentException($"{type} is not a quantised type (Q8_0, Q4_0, Q4_K)", nameof(type));
        LlamaGguf.Export(path, model, tokenizer, type, name);
    }

    /// <summary>
    /// Quantises the checkpoint folder <paramref name="checkpoint"/> into the folder <paramref name="output"/> (replaced
    /// whole, written through a temporary folder): config.json, generation_config.json and tokenizer.json as they are,
    /// and the weights as <see cref="FileName"/> with matrices in <paramref name="type"/>.
    /// </summary>
    public static void QuantizeCheckpoint(string checkpoint, string output, GgmlType type, string? name = null)
    {
        if (!GgmlTypes.IsQuantized(type)) throw new ArgumentException($"{type} is not a quantised type (Q8_0, Q4_0, Q4_K)", nameof(type));
        string source = Checkpoint.Resolve(checkpoint);
        if (Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(output).TrimEnd(Path.DirectorySeparatorChar))
            throw new ArgumentException($"{output}: the quantised checkpoint must go to another folder than its source");
        var model = Checkpoint.Load(source);
        if (model.Parameters.Any(p => p.Quantized is not null))
            throw new ArgumentException($"{source}: the checkpoint is quantised already");
        var tokenizer = File.Exists(Path.Combine(source, Checkpoint.TokenizerFileName)) ? Tokenizer.Load(source) : null;
        Checkpoint.WriteFolder(output, temp =>
        {
            foreach (var file in new[] { Checkpoint.ConfigFileName, Checkpoint.GenerationConfigFileName, Checkpoint.TokenizerFileName })
                if (File.Exists(Path.Combine(source, file))) File.Copy(Path.Combine(source, file), Path.Combine(temp, file));
            Write(Path.Combine(temp, FileName), model, tokenizer, type, name ?? new DirectoryInfo(source).Name);
        });
    }

    /// <summary>
    /// A model over the llama GGUF at <paramref name="path"/> with quantised matrices kept quantised and memory-mapped.
    /// <paramref name="config"/> (a checkpoint's config.json) is checked against the file's tensors; null reads it from the file.
    /// </summary>
    public static Transformer Load(string path, LlamaConfig? config = null)
    {
        using var reader = GgufReader.Open(path);
        config ??= LlamaGguf.ReadConfig(reader);
        if (config.Layers > reader.Tensors.Count / 9)
            throw reader.Error($"the config's {config.Layers} layers need {9L * config.Layers} block tensors, the file has {reader.Tensors.Count} tensors in all");
        MappedFile? mapping = null;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (hfName, shape) in LlamaGguf.ExpectedTensors(config))
        {
            string ggufName = LlamaGguf.ToGgufName(hfName)!;
            var info = reader.Tensor(ggufName);
            if (!info.Shape.SequenceEqual(shape))
                throw reader.Error($"tensor '{ggufName}' has shape {info.ShapeText}, the config needs [{string.Join(", ", shape)}]");
            if (!GgmlTypes.IsKnown(info.TypeId))
                throw reader.Error($"tensor '{ggufName}' has unsupported type {GgmlTypes.Name(info.TypeId)} (Loom reads f32, f16, bf16, q8_0, q4_0, q4_k)");
            int? heads = hfName.EndsWith("q_proj.weight", StringComparison.Ordinal) ? config.Heads
                : hfName.EndsWith("k_proj.weight", StringComparison.Ordinal) ? config.KvHeads : null;
            Tensor tensor;
            if (shape.Length == 2 && GgmlTypes.IsQuantized(info.Type))
            {
                QuantizedMatrix matrix;
                if (heads is int h)
                {
                    // Whole stored rows of q or k from llama.cpp's interleaved rotary order back to Hugging Face's halves.
                    byte[] stored = reader.ReadRaw(info);
                    matrix = QuantizedMatrix.FromBytes(info.Type, shape[0], shape[1], LlamaGguf.Permute<byte>(stored, h, config.HeadDim, stored.Length / shape[0], toInterleaved: false));
                }
                else
                {
                    mapping ??= new MappedFile(path, reader.FileLength);
                    matrix = mapping.Matrix(info.Type, shape[0], shape[1], reader.DataOffset + (long)info.Offset);
                }
                tensor = Tensor.FromQuantized(hfName, matrix);
            }
            else
            {
                var values = reader.ReadFloats(info);
                if (heads is int h) values = LlamaGguf.PermuteToHalves(values, h, config.HeadDim, config.Dim);
                tensor = Tensor.From(values, shape);
                tensor.Name = hfName;
            }
            tensors[hfName] = tensor;
        }
        try
        {
            return Transformer.FromTensors(config, tensors, path);
        }
        catch (InvalidDataException e)
        {
            throw new GgufException(e.Message);
        }
    }

    /// <summary>A read-only mapping of the whole file, released when the last matrix over it is collected.</summary>
    sealed unsafe class MappedFile
    {
        readonly MemoryMappedFile file;
        readonly MemoryMappedViewAccessor view;
        readonly byte* start;
        readonly long length;

        public MappedFile(string path, long length)
        {
            this.length = length;
            file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            start = pointer + view.PointerOffset;
        }

        public QuantizedMatrix Matrix(GgmlType type, int rows, int columns, long offset)
        {
            if (offset + GgmlTypes.ByteCount(type, (long)rows * columns) > length)
                throw new InvalidDataException($"[{rows}, {columns}] of {type} at byte {offset} runs past the end of the file ({length} bytes)");
            return QuantizedMatrix.FromMemory(type, rows, columns, start + offset, this);
        }

        ~MappedFile()
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            file.Dispose();
        }
    }
}
