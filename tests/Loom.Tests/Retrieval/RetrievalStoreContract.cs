using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

/// <summary>
/// The one test suite every IRetrievalStore passes. A subclass says how to open a store by name
/// (opening the same name again must reach the same data) and how to damage its vector index file.
/// </summary>
public abstract class RetrievalStoreContract : IDisposable
{
    protected readonly string Folder = Path.Combine(Path.GetTempPath(), "loom-store-" + Guid.NewGuid().ToString("N"));
    readonly List<IRetrievalStore> opened = [];
    static readonly HashingEmbeddingGenerator Embedder = new(64);

    /// <summary>Opens (creating when new) the store called name; null means this store cannot run here (skip).</summary>
    protected abstract Task<IRetrievalStore> OpenCoreAsync(string name, int dimensions);

    /// <summary>Deletes the saved vector index of the store called name.</summary>
    protected abstract void DeleteVectorIndexFile(string name);

    /// <summary>Sets the store's full-text posting budget (<see cref="PostingBudget"/>).</summary>
    protected abstract void SetPostingBudget(IRetrievalStore store, long budget);

    protected async Task<IRetrievalStore> OpenAsync(string name = "main", int dimensions = 64)
    {
        var store = await OpenCoreAsync(name, dimensions);
        opened.Add(store);
        return store;
    }

    protected static SourceDocument Document(string sourceId, string text, params (string Key, string Value)[] tags) =>
        new(sourceId, Path.GetFileName(sourceId), "markdown", text, tags.ToDictionary(tag => tag.Key, tag => tag.Value), new Dictionary<string, string>());

    protected static List<EmbeddedChunk> Chunks(params string[] texts) =>
        texts.Select((text, index) => new EmbeddedChunk(new TextChunk(index, "", text, TokenCounter.Count(text)), Embedder.Embed(text))).ToList();

    static readonly (string Source, string[] Chunks, (string, string)[] Tags)[] Corpus =
    [
        ("/docs/fruit/apple.md", ["Apples are red or green fruit that grow on trees.", "Apple pie is baked with cinnamon."], [("topic", "fruit"), ("lang", "en")]),
        ("/docs/fruit/banana.md", ["Bananas are long yellow fruit rich in potassium."], [("topic", "fruit"), ("lang", "en")]),
        ("/docs/tools/hammer.md", ["A hammer drives nails into wood.", "Claw hammers also pull nails out."], [("topic", "tools"), ("lang", "en")]),
        ("/docs/tools/saw.md", ["A saw cuts wood with a toothed blade."], [("topic", "tools"), ("lang", "de")]),
    ];

    async Task<IRetrievalStore> LoadCorpusAsync(string name = "main")
    {
        var store = await OpenAsync(name);
        foreach (var (source, chunks, tags) in Corpus)
            await store.UpsertDocumentAsync(Document(source, string.Join("\n\n", chunks), tags), Chunks(chunks), default);
        return store;
    }

    [SkippableFact]
    public async Task UpsertStoresDocumentsChunksAndHashes()
    {
        var store = await LoadCorpusAsync();
        Assert.Equal(new StoreCounts(4, 6), await store.CountAsync(null, default));
        var document = Document(Corpus[0].Source, string.Join("\n\n", Corpus[0].Chunks), Corpus[0].Tags);
        Assert.Equal(document.ContentHash, await store.GetDocumentHashAsync(Corpus[0].Source, default));
        Assert.Null(await store.GetDocumentHashAsync("/docs/missing.md", default));
        var listed = await store.ListDocumentsAsync("/docs/tools/", default);
        Assert.Equal(["/docs/tools/hammer.md", "/docs/tools/saw.md"], listed.Select(item => item.SourceId));
        Assert.Equal(4, (await store.ListDocumentsAsync(null, default)).Count);
    }

    [SkippableFact]
    public async Task UpsertReplacesChunksWithoutDuplicates()
    {
        var store = await LoadCorpusAsync();
        await store.UpsertDocumentAsync(Document("/docs/fruit/apple.md", "Apples are now blue.", ("topic", "fruit")), Chunks("Apples are now blue."), default);
        Assert.Equal(new StoreCounts(4, 5), await store.CountAsync(null, default));
        var hits = await store.SearchTextAsync("cinnamon", 10, null, default);
        Assert.Empty(hits);
        hits = await store.SearchTextAsync("blue", 10, null, default);
        Assert.Equal("/docs/fruit/apple.md", Assert.Single(hits).SourceId);
        // The old chunks are gone from the vector index too.
        var vectorHits = await store.SearchVectorAsync(Embedder.Embed("Apple pie is baked with cinnamon."), 10, null, default);
        Assert.DoesNotContain(vectorHits, hit => hit.Text.Contains("cinnamon"));
        Assert.Equal(5, vectorHits.Count);
    }

    [SkippableFact]
    public async Task FullTextQueryDropsCommonWordsOverThePostingBudget()
    {
        var store = await OpenAsync("budget");
        async Task WriteAsync(Func<int, string> text)
        {
            for (int i = 0; i < 12; i++)
                await store.UpsertDocumentAsync(Document($"/budget/{i}.md", text(i)), Chunks(text(i)), default);
        }
        // Every chunk holds "common", one holds "zebra": 12 chunks are over a budget of 5 postings, so
        // "common" (12 postings) is dropped and only the zebra chunk matches.
        await WriteAsync(i => i == 7 ? "common words and a zebra" : $"common words number {i}");
        SetPostingBudget(store, 5);
        Assert.Equal("/budget/7.md", Assert.Single(await store.SearchTextAsync("common zebra", 50, null, default)).SourceId);
        SetPostingBudget(store, long.MaxValue);
        var all = await store.SearchTextAsync("common zebra", 50, null, default);
        Assert.Equal(12, all.Count);
        Assert.Equal("/budget/7.md", all[0].SourceId);
        // A write forgets the remembered counts: now "zebra" is everywhere and "common" is rare.
        await WriteAsync(i => i == 3 ? "common words and a zebra" : $"zebra words number {i}");
        SetPostingBudget(store, 5);
        Assert.Equal("/budget/3.md", Assert.Single(await store.SearchTextAsync("common zebra", 50, null, default)).SourceId);
    }

    [SkippableFact]
    public async Task DeleteRemovesDocumentFromEverySearch()
    {
        var store = await LoadCorpusAsync();
        Assert.True(await store.DeleteDocumentAsync("/docs/tools/hammer.md", default));
        Assert.False(await store.DeleteDocumentAsync("/docs/tools/hammer.md", default));
        Assert.Equal(new StoreCounts(3, 4), await store.CountAsync(null, default));
        Assert.Empty(await store.SearchTextAsync("nails", 10, null, default));
        var vectorHits = await store.SearchVectorAsync(Embedder.Embed("A hammer drives nails into wood."), 10, null, default);
        Assert.DoesNotContain(vectorHits, hit => hit.SourceId == "/docs/tools/hammer.md");
    }

    [SkippableFact]
    public async Task TextSearchRanksMatchingChunksFirst()
    {
        var store = await LoadCorpusAsync();
        var hits = await store.SearchTextAsync("Which fruit is yellow?", 10, null, default);
        Assert.Equal("/docs/fruit/banana.md", hits[0].SourceId);
        Assert.Contains(hits, hit => hit.SourceId == "/docs/fruit/apple.md");
        Assert.All(hits, hit => Assert.True(hit.Text.Contains("fruit") || hit.Text.Contains("yellow")));
        Assert.True(hits.Zip(hits.Skip(1)).All(pair => pair.First.Score >= pair.Second.Score));
        Assert.Empty(await store.SearchTextAsync("zeppelin", 10, null, default));
        Assert.Empty(await store.SearchTextAsync("\"*()", 10, null, default));
        Assert.Single(await store.SearchTextAsync("wood", 1, null, default));
        Assert.Empty(await store.SearchTextAsync("wood", 0, null, default));
    }

    [SkippableFact]
    public async Task VectorSearchMatchesBruteForceCosine()
    {
        var store = await LoadCorpusAsync();
        var all = Corpus.SelectMany(item => item.Chunks.Select(chunk => (item.Source, chunk))).ToList();
        foreach (string query in new[] { "wood nails hammer", "yellow fruit", "baked pie" })
        {
            float[] vector = Embedder.Embed(query);
            var expected = all
                .Select(item => (item.chunk, Similarity: System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(vector, Embedder.Embed(item.chunk))))
                .OrderByDescending(item => item.Similarity).ToList();
            var hits = await store.SearchVectorAsync(vector, 3, null, default);
            Assert.Equal(3, hits.Count);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(expected[i].Similarity, hits[i].Score, 4);
                // Ties may come in either order: the hit must be one of the chunks with that similarity.
                Assert.Contains(expected.Where(item => Math.Abs(item.Similarity - hits[i].Score) < 1e-4), item => item.chunk == hits[i].Text);
            }
            Assert.Empty(await store.SearchVectorAsync(vector, 0, null, default));
        }
    }

    [SkippableFact]
    public async Task FiltersByTagAndSourceInEverySearchAndCount()
    {
        var store = await LoadCorpusAsync();
        var tools = new SearchFilter(new Dictionary<string, string> { ["topic"] = "tools" });
        var toolsInGerman = new SearchFilter(new Dictionary<string, string> { ["topic"] = "tools", ["lang"] = "de" });
        var fruitFolder = new SearchFilter(SourcePrefix: "/docs/fruit/");
        Assert.Equal(new StoreCounts(2, 3), await store.CountAsync(tools, default));
        Assert.Equal(new StoreCounts(1, 1), await store.CountAsync(toolsInGerman, default));
        Assert.Equal(new StoreCounts(2, 3), await store.CountAsync(fruitFolder, default));

        var text = await store.SearchTextAsync("wood fruit", 10, toolsInGerman, default);
        Assert.Equal("/docs/tools/saw.md", Assert.Single(text).SourceId);
        text = await store.SearchTextAsync("wood fruit", 10, fruitFolder, default);
        Assert.All(text, hit => Assert.StartsWith("/docs/fruit/", hit.SourceId));
        Assert.Equal(2, text.Count);

        // The nearest chunks overall are fruit; the filter must still find the tools ones.
        var vector = await store.SearchVectorAsync(Embedder.Embed("Apples are red or green fruit"), 2, tools, default);
        Assert.Equal(2, vector.Count);
        Assert.All(vector, hit => Assert.Equal("tools", hit.Tags["topic"]));
        vector = await store.SearchVectorAsync(Embedder.Embed("Apples are red or green fruit"), 10, toolsInGerman, default);
        Assert.Equal("/docs/tools/saw.md", Assert.Single(vector).SourceId);
    }

    [SkippableFact]
    public async Task VectorIndexIsRebuiltWhenMissingAndRepairedWhenStale()
    {
        var store = await LoadCorpusAsync("persisted");
        await store.FlushAsync(default);
        // Writes after the last save leave the saved index stale.
        await store.DeleteDocumentAsync("/docs/fruit/banana.md", default);
        await store.UpsertDocumentAsync(Document("/docs/tools/drill.md", "A drill bores holes."), Chunks("A drill bores holes."), default);
        store.Dispose();
        opened.Remove(store);

        var reopened = await OpenAsync("persisted");
        var hits = await reopened.SearchVectorAsync(Embedder.Embed("A drill bores holes."), 10, null, default);
        Assert.Equal("/docs/tools/drill.md", hits[0].SourceId);
        Assert.DoesNotContain(hits, hit => hit.SourceId == "/docs/fruit/banana.md");
        Assert.Equal(6, hits.Count);
        await reopened.FlushAsync(default);
        reopened.Dispose();
        opened.Remove(reopened);

        DeleteVectorIndexFile("persisted");
        var rebuilt = await OpenAsync("persisted");
        hits = await rebuilt.SearchVectorAsync(Embedder.Embed("Claw hammers also pull nails out."), 10, null, default);
        Assert.Equal(6, hits.Count);
        Assert.Equal("Claw hammers also pull nails out.", hits[0].Text);
        Assert.Equal(1.0, hits[0].Score, 4);
    }

    [SkippableFact]
    public async Task ASecondOpenInstanceKeepsItsVectorIndexInStepWithWrites()
    {
        // Two processes on one store: each has its own vector index, and sees the other's writes.
        var writer = await LoadCorpusAsync("shared");
        var reader = await OpenAsync("shared");
        Assert.Equal(6, (await reader.SearchVectorAsync(Embedder.Embed("wood"), 10, null, default)).Count);
        await writer.UpsertDocumentAsync(Document("/docs/tools/drill.md", "A drill bores holes."), Chunks("A drill bores holes."), default);
        await writer.DeleteDocumentAsync("/docs/fruit/apple.md", default);
        var hits = await reader.SearchVectorAsync(Embedder.Embed("A drill bores holes."), 10, null, default);
        Assert.Equal(5, hits.Count);
        Assert.Equal("/docs/tools/drill.md", hits[0].SourceId);
        Assert.DoesNotContain(hits, hit => hit.SourceId == "/docs/fruit/apple.md");
    }

    [SkippableFact]
    public async Task AnInstanceThatWasBehindNeverReturnsChunksRemovedBeforeAnotherFlushed()
    {
        // A flush may forget which chunks were removed up to the index it saved, so an instance that
        // was behind can keep their vectors: its search must still skip them and look deeper.
        var writer = await LoadCorpusAsync("flushed");
        var reader = await OpenAsync("flushed");
        Assert.Equal(6, (await reader.SearchVectorAsync(Embedder.Embed("wood"), 10, null, default)).Count);
        await writer.DeleteDocumentAsync("/docs/tools/hammer.md", default);
        await writer.UpsertDocumentAsync(Document("/docs/fruit/apple.md", "Apples are now blue.", ("topic", "fruit")), Chunks("Apples are now blue."), default);
        await writer.FlushAsync(default);

        // The nearest vectors the reader may still hold are the two hammer chunks.
        var hits = await reader.SearchVectorAsync(Embedder.Embed("A hammer drives nails into wood."), 3, null, default);
        Assert.Equal(3, hits.Count);
        Assert.DoesNotContain(hits, hit => hit.SourceId == "/docs/tools/hammer.md" || hit.Text.Contains("cinnamon"));
        var tools = new SearchFilter(new Dictionary<string, string> { ["topic"] = "tools" });
        Assert.Equal("/docs/tools/saw.md", Assert.Single(await reader.SearchVectorAsync(Embedder.Embed("Claw hammers also pull nails out."), 2, tools, default)).SourceId);
        Assert.Equal("Apples are now blue.", (await reader.SearchVectorAsync(Embedder.Embed("Apples are now blue."), 1, null, default))[0].Text);
    }

    [SkippableFact]
    public async Task RejectsEmbeddingsOfTheWrongWidth()
    {
        var store = await OpenAsync("width");
        var wrong = new List<EmbeddedChunk> { new(new TextChunk(0, "", "x", 1), new float[3]) };
        await Assert.ThrowsAsync<InvalidDataException>(() => store.UpsertDocumentAsync(Document("/x.md", "x"), wrong, default));
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SearchVectorAsync(new float[3], 5, null, default));
        Assert.Equal("query", exception.ParamName);
        store.Dispose();
        opened.Remove(store);
        await Assert.ThrowsAsync<InvalidDataException>(() => OpenAsync("width", dimensions: 32));
    }

    public virtual void Dispose()
    {
        foreach (var store in opened)
            store.Dispose();
        if (Directory.Exists(Folder))
            Directory.Delete(Folder, recursive: true);
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteRetrievalStoreTests : RetrievalStoreContract
{
    protected override Task<IRetrievalStore> OpenCoreAsync(string name, int dimensions) =>
        Task.FromResult<IRetrievalStore>(SqliteRetrievalStore.Open(Path.Combine(Folder, name + ".db"), dimensions));

    protected override void DeleteVectorIndexFile(string name) => File.Delete(Path.Combine(Folder, name + ".db.usearch"));

    protected override void SetPostingBudget(IRetrievalStore store, long budget) => ((SqliteRetrievalStore)store).QueryPostingBudget = budget;

    [Fact]
    public void FullTextQueryKeepsTheRarestWordsWithinThePostingBudget()
    {
        (string, long)[] counted = [("string", 9000), ("whitespace", 40), ("trim", 120), ("remove", 3000), ("ends", 400)];
        // 40 + 120 + 400 = 560 fits a budget of 600; adding "remove" (3,000) would not.
        Assert.Equal(["whitespace", "trim", "ends"], PostingBudget.SelectRarest(counted, 600));
        Assert.Equal(["whitespace", "trim", "ends", "remove"], PostingBudget.SelectRarest(counted, 3560));
        // The rarest word is kept even when it alone is over the budget.
        Assert.Equal(["whitespace"], PostingBudget.SelectRarest(counted, 10));
        Assert.Empty(PostingBudget.SelectRarest([], 100));
    }
}

/// <summary>
/// Runs against the server in env LOOM_TEST_POSTGRES (a connection string); each test works in its
/// own schema and drops it. Without the variable the tests skip, except under CI=true where they fail.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class PostgresRetrievalStoreTests : RetrievalStoreContract
{
    readonly string? connectionString = PostgresTestServer.ConnectionString();
    readonly string schemaPrefix = "loom_test_" + Guid.NewGuid().ToString("N")[..12] + "_";
    readonly HashSet<string> schemas = [];

    protected override async Task<IRetrievalStore> OpenCoreAsync(string name, int dimensions)
    {
        Skip.If(connectionString is null, PostgresTestServer.SkipMessage);
        schemas.Add(schemaPrefix + name);
        return await PostgresRetrievalStore.OpenAsync(connectionString!, dimensions, Path.Combine(Folder, name + ".usearch"), schemaPrefix + name, default);
    }

    protected override void DeleteVectorIndexFile(string name) => File.Delete(Path.Combine(Folder, name + ".usearch"));

    protected override void SetPostingBudget(IRetrievalStore store, long budget) => ((PostgresRetrievalStore)store).QueryPostingBudget = budget;

    public override void Dispose()
    {
        base.Dispose();
        foreach (string schema in schemas)
            PostgresRetrievalStore.DropAsync(connectionString!, schema, default).GetAwaiter().GetResult();
    }
}

public static class PostgresTestServer
{
    public const string SkipMessage = "PostgreSQL tests skipped: set LOOM_TEST_POSTGRES to a connection string (they run, and must pass, when CI=true)";

    /// <summary>The connection string, or null to skip; under CI a missing server is a failure.</summary>
    public static string? ConnectionString()
    {
        string? value = Environment.GetEnvironmentVariable("LOOM_TEST_POSTGRES");
        if (string.IsNullOrWhiteSpace(value))
        {
            if (Environment.GetEnvironmentVariable("CI") == "true")
                throw new InvalidOperationException("CI=true but LOOM_TEST_POSTGRES is not set: .ci/run must start PostgreSQL and export it");
            return null;
        }
        return value;
    }
}
