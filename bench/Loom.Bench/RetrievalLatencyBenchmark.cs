using System.Diagnostics;
using System.Text.Json;
using Loom.Retrieval;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// retrieval-latency: ingest throughput (chunks/s, embedding included) and query latency p50/p95 for
/// BM25, vector and hybrid search at --chunks (default 100,000) chunks of dotnet-docs on both stores.
/// The index is cached under bench/results/cache/latency-EMBEDDER-CHUNKS/ and reused: a cached run
/// reports the throughput measured when it was built. Goal: hybrid p95 under 20 ms on SQLite.
/// </summary>
static class RetrievalLatencyBenchmark
{
    sealed record BuildRecord(string Store, long Documents, long Chunks, double Seconds, double ChunksPerSecond);

    public static async Task<int> RunAsync(string[] args)
    {
        var arguments = RetrievalBenchCommon.ParseArguments(args);
        int targetChunks = RetrievalBenchCommon.Int(arguments, "chunks", 100_000);
        int queryCount = RetrievalBenchCommon.Int(arguments, "queries", 300);
        string embedderName = arguments.GetValueOrDefault("embedder", Embedders.MiniLm);
        // dotnet-docs holds about 80k chunks at the default 200 tokens; smaller chunks reach 100k.
        var chunking = new ChunkerOptions(RetrievalBenchCommon.Int(arguments, "chunk-tokens", 80), 16);
        string cache = Directory.CreateDirectory(Path.Combine(RetrievalBenchCommon.ResultsFolder(), "cache", $"latency-{embedderName}-{targetChunks}-{chunking.MaxTokens}")).FullName;
        string buildsPath = Path.Combine(cache, "builds.json");
        var builds = File.Exists(buildsPath) ? JsonSerializer.Deserialize<List<BuildRecord>>(File.ReadAllText(buildsPath)) ?? [] : [];

        // Documents in corpus order until the chunk target is reached (the same on every run).
        var chunker = new Chunker(chunking);
        var documents = new List<SourceDocument>();
        long plannedChunks = 0;
        foreach (var member in DotnetDocs.ReadAll())
        {
            var document = RetrievalBenchCommon.ToDocument(member);
            documents.Add(document);
            plannedChunks += chunker.Split(document.Text, isMarkdown: false).Count;
            if (plannedChunks >= targetChunks)
                break;
        }
        Console.WriteLine($"corpus: {documents.Count} dotnet-docs members, {plannedChunks} chunks of at most {chunking.MaxTokens} tokens");
        var questions = documents.Where((_, index) => index % Math.Max(1, documents.Count / queryCount) == 0).Take(queryCount)
            .Select(document => string.Join(' ', document.Text.Split('\n').Skip(1).FirstOrDefault("").Split(' ').Take(12))).Where(text => text.Length > 0).ToList();

        using var embedder = new CachingEmbeddingGenerator(Embedders.Create(embedderName));
        var stores = await RetrievalBenchCommon.OpenStoresAsync(cache, $"loom_bench_latency_{embedderName}_{targetChunks}_{chunking.MaxTokens}", Embedders.DimensionsOf(embedderName), RetrievalBenchCommon.PostgresConnection(arguments));
        var results = new List<object>();
        try
        {
            foreach (var (name, store) in stores)
            {
                var counts = await store.CountAsync(null, default);
                if (counts.Chunks < plannedChunks || builds.All(build => build.Store != name))
                {
                    var clock = Stopwatch.StartNew();
                    var report = await new Ingestor(store, embedder, new IngestOptions(chunking)).IngestDocumentsAsync(documents, default);
                    double seconds = clock.Elapsed.TotalSeconds;
                    counts = await store.CountAsync(null, default);
                    builds.RemoveAll(build => build.Store == name);
                    builds.Add(new BuildRecord(name, counts.Documents, report.ChunksEmbedded, seconds, report.ChunksEmbedded / seconds));
                    File.WriteAllText(buildsPath, JsonSerializer.Serialize(builds));
                    Console.WriteLine($"{name}: {report}");
                }
            }
            // All stores are built before any is queried, so the second store reused the first one's embeddings.
            foreach (var (name, store) in stores)
            {
                var counts = await store.CountAsync(null, default);
                var build = builds.Single(item => item.Store == name);
                Console.WriteLine($"{name}: {counts.Documents} documents, {counts.Chunks} chunks; built at {build.ChunksPerSecond:F0} chunks/s ({build.Seconds:F0} s, embedding included)");

                // Opening again measures the vector index load (or repair) and warms the caches.
                var retriever = new Retriever(store, embedder);
                foreach (string question in questions.Take(20))
                    await retriever.SearchAsync(question, new SearchOptions(SearchMode.Hybrid, 10), default);
                foreach (var mode in new[] { SearchMode.Bm25, SearchMode.Vector, SearchMode.Hybrid })
                {
                    var latencies = new List<double>();
                    foreach (string question in questions)
                    {
                        embedder.Clear();
                        var timer = Stopwatch.StartNew();
                        await retriever.SearchAsync(question, new SearchOptions(mode, 10), default);
                        latencies.Add(timer.Elapsed.TotalMilliseconds);
                    }
                    latencies.Sort();
                    var row = new
                    {
                        store = name,
                        mode = mode.ToString().ToLowerInvariant(),
                        chunks = counts.Chunks,
                        queries = latencies.Count,
                        p50Ms = Math.Round(RetrievalBenchCommon.Percentile(latencies, 0.5), 2),
                        p95Ms = Math.Round(RetrievalBenchCommon.Percentile(latencies, 0.95), 2),
                    };
                    results.Add(row);
                    Console.WriteLine($"{name,-8} {row.mode,-6}  p50 {row.p50Ms,7:F2} ms  p95 {row.p95Ms,7:F2} ms  (top 10, {row.queries} queries, query embedding included)");
                }
            }
        }
        finally
        {
            foreach (var (_, store) in stores)
                store.Dispose();
        }
        RetrievalBenchCommon.WriteJson($"retrieval-latency-{embedderName}-{targetChunks}.json", new
        {
            benchmark = "retrieval-latency",
            corpus = "dotnet-docs",
            embedder = embedderName,
            targetChunks,
            chunkTokens = chunking.MaxTokens,
            machine = new { Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
            builds,
            results,
        });
        return 0;
    }
}
