using System.Numerics.Tensors;
using Loom.Retrieval;
using Loom.Retrieval.MiniLm;
using Loom.Tests.Models;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Retrieval;

/// <summary>
/// all-MiniLM-L6-v2 on Loom's kernels against ONNX Runtime on the package's model (the reference): the same vectors on
/// a few hundred varied texts, the weight file written once and rebuilt when damaged, and an index built with ONNX
/// Runtime's vectors searched alike with the native encoder.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public class MiniLmEncoderTests
{
    /// <summary>Texts of every kind: short queries, prose, logs, code, numbers, other scripts, the empty text, a long one.</summary>
    static string[] VariedTexts()
    {
        var texts = new List<string>
        {
            "", " ", "a", "?", "how are inputs bounded", "How do I reset my password?", "gradient check",
            "Ünïcödé façade naïve café – “quotes” and ‘apostrophes’", "日本語のテキストと中文文本", "emoji 🚀🔥 and symbols ∑∫√",
            "3.14159 2.71828 1e-12 0xDEADBEEF 192.168.0.1", "public static void Main(string[] args) { Console.WriteLine(\"hi\"); }",
            "SELECT id, name FROM users WHERE created_at > now() - interval '1 day';", "ALL CAPS SHOUTING TEXT", "tab\tseparated\tvalues",
            string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 40)),
        };
        string data = GgufReference.Shakespeare();
        texts.AddRange(File.ReadLines(data).Where(line => line.Length > 0).Take(4000).Where((_, i) => i % 40 == 0)); // 100 lines
        string readme = Path.Combine(GgufReference.RepoRoot(), "README.md");
        texts.AddRange(File.ReadAllText(readme).Split("\n\n").Where(paragraph => paragraph.Length > 30).Take(200));
        return [.. texts];
    }

    [Fact]
    public void NativeEmbeddingsEqualOnnxRuntimesOnVariedTexts()
    {
        string[] texts = VariedTexts();
        Assert.True(texts.Length >= 250, $"only {texts.Length} texts");
        string folder = Directory.CreateTempSubdirectory("loom-minilm-native-").FullName;
        try
        {
            using var native = new MiniLmEncoder(folder, null);
            using var reference = new MiniLmSession(null, folder);
            double worstCosine = 1, worstDifference = 0;
            int worstText = -1;
            for (int start = 0; start < texts.Length; start += 32)
            {
                var batch = texts[start..Math.Min(texts.Length, start + 32)];
                float[][] actual = native.Encode(batch, CancellationToken.None), expected = reference.Encode(batch, CancellationToken.None);
                for (int i = 0; i < batch.Length; i++)
                {
                    double cosine = TensorPrimitives.CosineSimilarity(actual[i], expected[i]);
                    double difference = TensorPrimitives.MaxMagnitude(Difference(actual[i], expected[i]));
                    if (cosine < worstCosine) (worstCosine, worstText) = (cosine, start + i);
                    worstDifference = Math.Max(worstDifference, difference);
                }
            }
            Assert.True(1 - worstCosine <= 1e-4, $"text {worstText} has cosine {worstCosine:F7} to ONNX Runtime's embedding");
            Assert.True(worstDifference <= 1e-5, $"an element differs from ONNX Runtime's by {worstDifference:E2}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void ATextEmbedsTheSameAloneAndInABatch()
    {
        using var native = new MiniLmEncoder(null, null);
        string[] texts = ["short", "Gets the number of elements contained in the list.", "", string.Join(' ', Enumerable.Repeat("word", 120))];
        var batched = native.Encode(texts, CancellationToken.None);
        for (int i = 0; i < texts.Length; i++)
        {
            var alone = native.Encode([texts[i]], CancellationToken.None)[0];
            Assert.True(TensorPrimitives.MaxMagnitude(Difference(alone, batched[i])) <= 1e-6f, $"text {i} differs alone and in the batch");
            Assert.Equal(1.0, Math.Sqrt(TensorPrimitives.Dot(alone, alone)), 5);
        }
    }

    [Fact]
    public void TheWeightFileIsWrittenOnceThenMappedAndRebuiltWhenDamaged()
    {
        string[] texts = ["How do I reset my password?", "gradient check"];
        string folder = Directory.CreateTempSubdirectory("loom-minilm-weights-").FullName;
        try
        {
            float[][] first;
            using (var encoder = new MiniLmEncoder(folder, null))
                first = encoder.Encode(texts, CancellationToken.None);
            string path = Assert.Single(Directory.GetFiles(folder));
            Assert.Equal(MiniLmEncoder.CachePath(folder), path);
            long length = new FileInfo(path).Length;
            Assert.InRange(length, 90_000_000, 92_000_000); // 22.7 M float32 weights (the pooler is left out)
            var written = File.GetLastWriteTimeUtc(path);

            using (var encoder = new MiniLmEncoder(folder, null))
                AssertSame(first, encoder.Encode(texts, CancellationToken.None), "from the mapped file");
            Assert.Equal(written, File.GetLastWriteTimeUtc(path));

            using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(length / 2);
            using (var encoder = new MiniLmEncoder(folder, null))
                AssertSame(first, encoder.Encode(texts, CancellationToken.None), "after a truncated file");
            Assert.Equal(length, new FileInfo(path).Length);

            File.WriteAllText(path, "not a weight file");
            using (var encoder = new MiniLmEncoder(folder, null))
                AssertSame(first, encoder.Encode(texts, CancellationToken.None), "after a file of other bytes");
            Assert.Equal(length, new FileInfo(path).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task AnIndexBuiltWithOnnxRuntimeSearchesAlikeWithTheNativeEncoder()
    {
        string folder = Directory.CreateTempSubdirectory("loom-minilm-index-").FullName;
        try
        {
            string notes = Directory.CreateDirectory(Path.Combine(folder, "notes")).FullName;
            var paragraphs = File.ReadAllText(Path.Combine(GgufReference.RepoRoot(), "README.md")).Split("\n\n").Where(p => p.Length > 80).Take(40).ToArray();
            for (int i = 0; i < paragraphs.Length; i++)
                File.WriteAllText(Path.Combine(notes, $"note{i:D2}.md"), paragraphs[i]);
            string index = Path.Combine(folder, "kb");
            string[] queries = ["how do I train a tokenizer", "start-up time of search", "quantised checkpoints", "what does the server answer"];
            using var ort = new OnnxRuntimeMiniLm(folder);
            var expected = new List<IReadOnlyList<SearchHit>>();
            using (var built = await RetrievalIndex.OpenAsync(index, Embedders.MiniLm, null, create: true, default, customEmbedder: ort))
            {
                await new Ingestor(built.Store, built.Embedder).IngestPathsAsync([notes], new Dictionary<string, string>(), default);
                foreach (string query in queries)
                    expected.Add(await built.Retriever.SearchAsync(query, new SearchOptions(SearchMode.Vector, 5), default));
            }
            // Opened as `loom search` opens it: the embedder the manifest names, now the native one.
            using var opened = await RetrievalIndex.OpenAsync(index, null, null, create: false, default);
            Assert.IsType<MiniLmEmbeddingGenerator>(opened.Embedder);
            for (int q = 0; q < queries.Length; q++)
            {
                var actual = await opened.Retriever.SearchAsync(queries[q], new SearchOptions(SearchMode.Vector, 5), default);
                Assert.Equal(5, actual.Count);
                Assert.Equal(expected[q].Select(hit => hit.ChunkId), actual.Select(hit => hit.ChunkId));
                for (int i = 0; i < actual.Count; i++)
                    Assert.Equal(expected[q][i].Score, actual[i].Score, 4);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static float[] Difference(float[] a, float[] b)
    {
        var difference = new float[a.Length];
        TensorPrimitives.Subtract(a, b, difference);
        return difference;
    }

    static void AssertSame(float[][] expected, float[][] actual, string how)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].AsSpan().SequenceEqual(actual[i]), $"{how}: text {i} embeds differently");
    }

    /// <summary>The ONNX Runtime session as an embedder, to build an index the way earlier builds did.</summary>
    sealed class OnnxRuntimeMiniLm(string cacheFolder) : IEmbeddingGenerator<string, Embedding<float>>
    {
        readonly MiniLmSession session = new(null, cacheFolder);

        public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default) =>
            Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(session.Encode([.. values], cancellationToken).Select(vector => new Embedding<float>(vector))));

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() => session.Dispose();
    }
}
