using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Retrieval;

/// <summary>A chat client that records the messages it got and answers with a fixed text.</summary>
sealed class RecordingChatClient(string answer) : IChatClient
{
    public List<ChatMessage> Received { get; } = [];

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Received.AddRange(messages);
        return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, answer)));
    }

    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException();

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose()
    {
    }
}

public sealed class AnsweringTests
{
    static SearchHit Hit(long id, string source, string heading, string text) => new(id, source, Path.GetFileName(source), heading, text, 1.0, new Dictionary<string, string>());

    [Fact]
    public void PromptNumbersSourcesAndAsksForCitations()
    {
        var sources = RagPrompt.Number([Hit(7, "/d/a.md", "Guide > Install", "Run setup.\n"), Hit(9, "/d/b.md", "", "Use apt.")]);
        var messages = RagPrompt.Build("  How do I install? ", sources);
        Assert.Equal(2, messages.Count);
        Assert.Equal(ChatRole.System, messages[0].Role);
        Assert.Contains("[1]", messages[0].Text);
        Assert.Equal(
            "Sources:\n\n[1] a.md (Guide > Install)\nRun setup.\n\n[2] b.md\nUse apt.\n\nQuestion: How do I install?\nAnswer with citations:",
            messages[1].Text);
    }

    [Theory]
    [InlineData("Use apt [2], then run setup [1].", 3, new[] { 2, 1 })]
    [InlineData("Both [1][3] and again [1, 3] and [2; 3].", 3, new[] { 1, 3, 2 })]
    [InlineData("Out of range [0] [4] [12] but [3] is fine.", 3, new[] { 3 })]
    [InlineData("No citations, [a], [ 1 ] or [1.5].", 3, new int[0])]
    [InlineData("Array x[1] counts too [2].", 2, new[] { 1, 2 })]
    public void CitationsAreParsedInOrderAndOnlyWhenTheSourceExists(string answer, int sourceCount, int[] expected) =>
        Assert.Equal(expected, RagPrompt.ParseCitations(answer, sourceCount));

    [Fact]
    public async Task AnswererRetrievesPromptsAndReturnsOnlyCitedSources()
    {
        string folder = Directory.CreateTempSubdirectory("loom-answer-").FullName;
        try
        {
            using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
            var embedder = new HashingEmbeddingGenerator();
            var ingestor = new Ingestor(store, embedder);
            var documents = new[]
            {
                new SourceDocument("doc:printer", "Printer", "text", "The printer on floor two jams on A3 paper.", new Dictionary<string, string>(), new Dictionary<string, string>()),
                new SourceDocument("doc:vpn", "VPN", "text", "The VPN needs a certificate renewed every year.", new Dictionary<string, string>(), new Dictionary<string, string>()),
                new SourceDocument("doc:lunch", "Lunch", "text", "Lunch is served at noon in the canteen.", new Dictionary<string, string>(), new Dictionary<string, string>()),
            };
            await ingestor.IngestDocumentsAsync(documents, default);
            var chat = new RecordingChatClient("Renew the VPN certificate yearly [1]. See also [7].");
            var answerer = new GroundedAnswerer(new Retriever(store, embedder), chat, new SearchOptions(SearchMode.Hybrid, Top: 2));
            var answer = await answerer.AnswerAsync("How often must the VPN certificate be renewed?", default);
            Assert.Equal("Renew the VPN certificate yearly [1]. See also [7].", answer.Text);
            Assert.Equal(2, answer.AllSources.Count);
            Assert.Equal("doc:vpn", answer.AllSources[0].Hit.SourceId);
            var cited = Assert.Single(answer.CitedSources);
            Assert.Equal((1, "doc:vpn"), (cited.Number, cited.Hit.SourceId));
            Assert.Contains("[1] VPN\nThe VPN needs a certificate renewed every year.", chat.Received[1].Text);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }
}

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
