using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Retrieval;

public sealed class RetrieverTests
{
    static SearchHit Hit(long id) => new(id, $"s{id}", "", "", "", 0, new Dictionary<string, string>());

    [Fact]
    public void ReciprocalRankFusionAddsOneOverKPlusRank()
    {
        IReadOnlyList<SearchHit> bm25 = [Hit(1), Hit(2), Hit(3)];
        IReadOnlyList<SearchHit> vector = [Hit(3), Hit(4), Hit(1)];
        var fused = Retriever.Fuse([bm25, vector], k: 60, top: 10);
        var expected = new Dictionary<long, double>
        {
            [1] = 1.0 / 61 + 1.0 / 63,
            [3] = 1.0 / 63 + 1.0 / 61,
            [2] = 1.0 / 62,
            [4] = 1.0 / 62,
        };
        Assert.Equal([1L, 3L, 2L, 4L], fused.Select(hit => hit.ChunkId));
        foreach (var hit in fused)
            Assert.Equal(expected[hit.ChunkId], hit.Score, 12);
        Assert.Equal(2, Retriever.Fuse([bm25, vector], 60, 2).Count);
    }

    [Fact]
    public void WeightedFusionScalesEachListsContribution()
    {
        IReadOnlyList<SearchHit> bm25 = [Hit(1), Hit(2), Hit(3)];
        IReadOnlyList<SearchHit> vector = [Hit(3), Hit(4), Hit(1)];
        var fused = Retriever.Fuse([bm25, vector], [1.0, 2.0], k: 10, top: 10);
        // Hand-computed: chunk 3 is 3rd in BM25 and 1st in vector, chunk 1 the other way round.
        var expected = new Dictionary<long, double>
        {
            [3] = 1.0 / 13 + 2.0 / 11,
            [1] = 1.0 / 11 + 2.0 / 13,
            [4] = 2.0 / 12,
            [2] = 1.0 / 12,
        };
        Assert.Equal([3L, 1L, 4L, 2L], fused.Select(hit => hit.ChunkId));
        foreach (var hit in fused)
            Assert.Equal(expected[hit.ChunkId], hit.Score, 12);
        Assert.Throws<ArgumentException>(() => Retriever.Fuse([bm25, vector], [1.0], 60, 5));
    }

    [Fact]
    public void ZeroTextWeightLeavesTheVectorOrder()
    {
        IReadOnlyList<SearchHit> bm25 = [Hit(5), Hit(6)];
        IReadOnlyList<SearchHit> vector = [Hit(7), Hit(6), Hit(8)];
        var fused = Retriever.Fuse([bm25, vector], [0.0, 1.0], k: 60, top: 3);
        Assert.Equal([7L, 6L, 8L], fused.Select(hit => hit.ChunkId));
    }
}

/// <summary>The default embedder really loads and runs here (ONNX Runtime, model inside the package).</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class MiniLmEmbedderTests
{
    [Fact]
    public async Task MiniLmMakesNormalisedSemanticEmbeddings()
    {
        using var embedder = new MiniLmEmbeddingGenerator();
        var embeddings = await embedder.GenerateAsync([
            "How do I remove whitespace from both ends of a string?",
            "Removes all leading and trailing white-space characters from the current string.",
            "Gets the number of elements contained in the list.",
        ]);
        Assert.Equal(3, embeddings.Count);
        Assert.All(embeddings, embedding => Assert.Equal(384, embedding.Vector.Length));
        Assert.All(embeddings, embedding => Assert.Equal(1.0, Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(embedding.Vector.Span, embedding.Vector.Span)), 4));
        float related = System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(embeddings[0].Vector.Span, embeddings[1].Vector.Span);
        float unrelated = System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(embeddings[0].Vector.Span, embeddings[2].Vector.Span);
        Assert.True(related > 0.5f && unrelated < 0.3f, $"related {related}, unrelated {unrelated}");
        // Batching does not change results: one text alone embeds the same as inside a batch.
        var alone = await embedder.GenerateAsync(["Gets the number of elements contained in the list."]);
        Assert.Equal(1.0, System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(alone[0].Vector.Span, embeddings[2].Vector.Span), 4);
        var metadata = (EmbeddingGeneratorMetadata)embedder.GetService(typeof(EmbeddingGeneratorMetadata))!;
        Assert.Equal(384, metadata.DefaultModelDimensions);
    }

    [Fact]
    public async Task LengthSortedBatchesKeepEachEmbeddingWithItsText()
    {
        // Batches of two over texts given out of length order: the embedder sorts by length to
        // batch, and every embedding must still come back at its text's position.
        using var embedder = new MiniLmEmbeddingGenerator(batchSize: 2);
        string[] texts =
        [
            "Removes all leading and trailing white-space characters from the current string instance.",
            "List count.",
            "Gets the number of elements contained in the list.",
            "Trim.",
            "Opens a file, reads all lines of the file, and then closes the file.",
        ];
        var batched = await embedder.GenerateAsync(texts);
        Assert.Equal(texts.Length, batched.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            var alone = await embedder.GenerateAsync([texts[i]]);
            Assert.Equal(1.0, System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(alone[0].Vector.Span, batched[i].Vector.Span), 4);
        }
    }
}
