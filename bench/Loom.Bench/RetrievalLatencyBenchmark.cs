using Loom.IO;
using System.Diagnostics;
using System.Text.Json;
using Loom.Retrieval;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// retrieval-latency: ingest throughput and query latency p50/p95 for BM25, vector and hybrid search
/// at --chunks (default 100,000) chunks of dotnet-docs on both stores.
/// Ingest throughput comes in two parts, since embeddings are remembered across runs
/// (bench/results/cache/embeddings-EMBEDDER.bin): the store's own rate (chunking, writes, FTS and
/// HNSW upkeep, with each build's count of embeddings computed rather than remembered) and the
/// embedder's rate on a fixed sample of 2,000 chunks computed afresh; a fresh ingest runs at about
/// 1 / (1/store + 1/embedder). The index is cached under bench/results/cache/latency-EMBEDDER-CHUNKS-TOKENS/.
/// Queries embed afresh (the query embedding is part of the latency). Goal: hybrid p95 under 20 ms on SQLite.
/// </summary>
static class RetrievalLatencyBenchmark
{
    sealed record BuildRecord(string Store, long Documents, long Chunks, double Seconds, double ChunksPerSecond, int EmbeddingsComputed);

    public static async Task<int> RunAsync(string[] args)
    {
        var arguments = RetrievalBenchCommon.ParseArguments(args);
        int targetChunks = RetrievalBenchCommon.Int(arguments, "chunks", 100_000);
        int queryCount = RetrievalBenchCommon.Int(arguments, "queries", int.MaxValue);
        string embedderName = arguments.GetValueOrDefault("embedder", Embedders.MiniLm);
        // dotnet-docs holds about 80k chunks at the default 200 tokens; smaller chunks reach 100k.
        var chunking = new ChunkerOptions(RetrievalBenchCommon.Int(arguments, "chunk-tokens", 80), 16);
        string cache = Directory.CreateDirectory(Path.Combine(RetrievalBenchCommon.ResultsFolder(), "cache", $"latency-{embedderName}-{targetChunks}-{chunking.MaxTokens}")).FullName;
        string buildsPath = Path.Combine(cache, "builds.json");
        var builds = File.Exists(buildsPath) ? JsonSerializer.Deserialize<List<BuildRecord>>(File.ReadAllText(buildsPath)) ?? [] : [];

        // Documents in corpus order until the chunk target is reached (the same on every run).
        var chunker = new Chunker(chunking);
        var documents = new List<SourceDocument>();
        // Every 50th chunk (2,000 at 100k chunks) also times the embedder alone, at the end.
        var sample = new List<string>();
        long plannedChunks = 0;
        foreach (var member in DotnetDocs.ReadAll())
        {
            var document = DotnetDocsReader.ToDocument(member);
            documents.Add(document);
            foreach (var chunk in chunker.Split(document.Text, isMarkdown: false))
                if (plannedChunks++ % 50 == 0)
                    sample.Add(chunk.EmbeddingText);
            if (plannedChunks >= targetChunks)
                break;
        }
        Console.WriteLine($"corpus: {documents.Count} dotnet-docs members, {plannedChunks} chunks of at most {chunking.MaxTokens} tokens");
        // The queries: the labelled questions of retrieval-eval (how people ask), whatever their answers.
        string questionsPath = arguments.GetValueOrDefault("questions", Path.Combine(BenchPaths.RepositoryRoot(), "bench", "Loom.Bench", "data", "retrieval-questions.jsonl"));
        var questions = File.ReadLines(questionsPath).Where(line => line.Trim().Length > 0)
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("question").GetString() ?? "").Take(queryCount).ToList();
        Console.WriteLine($"queries: {questions.Count} questions from {questionsPath}");

        using var embedder = new CachingEmbeddingGenerator(Embedders.Create(embedderName), Path.Combine(cache, "..", $"embeddings-{embedderName}.bin"), Embedders.DimensionsOf(embedderName));
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
                    int computedBefore = embedder.Computed;
                    var report = await new Ingestor(store, embedder, new IngestOptions(chunking)).IngestDocumentsAsync(documents, default);
                    double seconds = clock.Elapsed.TotalSeconds;
                    counts = await store.CountAsync(null, default);
                    builds.RemoveAll(build => build.Store == name);
                    builds.Add(new BuildRecord(name, counts.Documents, report.ChunksEmbedded, seconds, report.ChunksEmbedded / seconds, embedder.Computed - computedBefore));
                    AtomicFile.WriteAllText(buildsPath, JsonSerializer.Serialize(builds));
                    Console.WriteLine($"{name}: {report}");
                }
            }
            // All stores are built before any is queried, so the second store reused the first one's embeddings.
            foreach (var (name, store) in stores)
            {
                var counts = await store.CountAsync(null, default);
                var build = builds.Single(item => item.Store == name);
                Console.WriteLine($"{name}: {counts.Documents} documents, {counts.Chunks} chunks; built at {build.ChunksPerSecond:F0} chunks/s ({build.Seconds:F0} s, {build.EmbeddingsComputed} of the embeddings computed, the rest remembered)");

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
        // The embedder alone on the sample, nothing remembered.
        double embeddingRate;
        using (var fresh = Embedders.Create(embedderName))
        {
            await fresh.GenerateAsync(sample.Take(64));
            var clock = Stopwatch.StartNew();
            await fresh.GenerateAsync(sample);
            embeddingRate = sample.Count / clock.Elapsed.TotalSeconds;
        }
        Console.WriteLine($"{embedderName}: {embeddingRate:F0} chunks/s embedded ({sample.Count} chunks, batched as ingestion does)");
        foreach (var build in builds)
            Console.WriteLine($"{build.Store}: a fresh ingest runs at about {1 / (1 / build.ChunksPerSecond + 1 / embeddingRate):F0} chunks/s (store {build.ChunksPerSecond:F0}, embedder {embeddingRate:F0})");
        RetrievalBenchCommon.WriteJson($"retrieval-latency-{embedderName}-{targetChunks}.json", new
        {
            benchmark = "retrieval-latency",
            corpus = "dotnet-docs",
            embedder = embedderName,
            targetChunks,
            chunkTokens = chunking.MaxTokens,
            machine = new { Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
            builds,
            embedding = new { chunks = sample.Count, chunksPerSecond = Math.Round(embeddingRate, 1) },
            freshIngestChunksPerSecond = builds.ToDictionary(build => build.Store, build => Math.Round(1 / (1 / build.ChunksPerSecond + 1 / embeddingRate), 1)),
            results,
        });
        return 0;
    }
}
