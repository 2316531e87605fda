using System.Diagnostics;
using System.Text.Json;
using Loom.Retrieval;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// retrieval-eval: recall@1, recall@5 and MRR@10 of BM25, vector and hybrid search on both stores,
/// over the dotnet-docs corpus (one document per documented member, source id = member id).
/// The corpus is every member a question asks about plus a deterministic sample of the others
/// (--members, default 20,000 documents), because embedding all 145k members with MiniLM takes
/// over half an hour on two cores. The built indexes are cached under bench/results/cache/.
/// A hit is the member's document among the top 5 distinct documents (chunks folded by document).
/// </summary>
static class RetrievalEvalBenchmark
{
    sealed record Question(string Id, string Text, string Member);

    public static async Task<int> RunAsync(string[] args)
    {
        var arguments = RetrievalBenchCommon.ParseArguments(args);
        if (!arguments.TryGetValue("questions", out string? questionsPath))
        {
            Console.Error.WriteLine("usage: Loom.Bench retrieval-eval --questions FILE [--members N] [--embedder minilm|hashing] [--postgres CONN]");
            return 2;
        }
        var questions = ReadQuestions(questionsPath);
        int memberCount = RetrievalBenchCommon.Int(arguments, "members", 20000);
        string embedderName = arguments.GetValueOrDefault("embedder", Embedders.MiniLm);

        var clock = Stopwatch.StartNew();
        var all = DotnetDocs.ReadAll().ToList();
        Console.WriteLine($"dotnet-docs: {all.Count} members read in {clock.Elapsed.TotalSeconds:F1} s");
        var asked = questions.Select(question => question.Member).ToHashSet(StringComparer.Ordinal);
        var present = all.Where(member => asked.Contains(member.Id)).ToList();
        var missing = asked.Except(present.Select(member => member.Id)).Order().ToList();
        if (missing.Count > 0)
            Console.WriteLine($"{missing.Count} question members are not in the corpus (scored as misses): {string.Join(", ", missing.Take(5))}");
        // Distractors: every k-th other member, so the sample spreads over all packs and namespaces.
        var others = all.Where(member => !asked.Contains(member.Id)).ToList();
        int wanted = Math.Max(0, memberCount - present.Count);
        int stride = Math.Max(1, others.Count / Math.Max(1, wanted));
        var corpus = present.Concat(others.Where((_, index) => index % stride == 0).Take(wanted)).Select(RetrievalBenchCommon.ToDocument).ToList();
        Console.WriteLine($"corpus: {corpus.Count} documents ({present.Count} asked about, {corpus.Count - present.Count} others)");

        string cache = Directory.CreateDirectory(Path.Combine(RetrievalBenchCommon.ResultsFolder(), "cache", $"eval-{embedderName}-{corpus.Count}")).FullName;
        using var embedder = new CachingEmbeddingGenerator(Embedders.Create(embedderName));
        var stores = await RetrievalBenchCommon.OpenStoresAsync(cache, $"loom_bench_eval_{embedderName}_{corpus.Count}", Embedders.DimensionsOf(embedderName), RetrievalBenchCommon.PostgresConnection(arguments));
        var results = new List<object>();
        try
        {
            foreach (var (name, store) in stores)
            {
                clock.Restart();
                var report = await new Ingestor(store, embedder).IngestDocumentsAsync(corpus, default);
                var counts = await store.CountAsync(null, default);
                Console.WriteLine($"{name}: {report} ({counts.Documents} documents, {counts.Chunks} chunks)");
                var retriever = new Retriever(store, embedder);
                foreach (var mode in new[] { SearchMode.Bm25, SearchMode.Vector, SearchMode.Hybrid })
                {
                    int hitsAt1 = 0, hitsAt5 = 0;
                    double reciprocalRanks = 0;
                    foreach (var question in questions)
                    {
                        // Latency is retrieval-latency's job: here query embeddings are cached across modes and stores.
                        var hits = await retriever.SearchAsync(question.Text, new SearchOptions(mode, Top: 30), default);
                        var documents = hits.Select(hit => hit.SourceId).Distinct().Take(10).ToList();
                        int rank = documents.IndexOf(question.Member) + 1;
                        if (rank == 1) hitsAt1++;
                        if (rank is >= 1 and <= 5) hitsAt5++;
                        if (rank >= 1) reciprocalRanks += 1.0 / rank;
                    }
                    var row = new
                    {
                        store = name,
                        mode = mode.ToString().ToLowerInvariant(),
                        questions = questions.Count,
                        recallAt1 = Math.Round((double)hitsAt1 / questions.Count, 4),
                        recallAt5 = Math.Round((double)hitsAt5 / questions.Count, 4),
                        mrrAt10 = Math.Round(reciprocalRanks / questions.Count, 4),
                    };
                    results.Add(row);
                    Console.WriteLine($"{name,-8} {row.mode,-6}  recall@1 {row.recallAt1:F3}  recall@5 {row.recallAt5:F3}  MRR@10 {row.mrrAt10:F3}");
                }
            }
        }
        finally
        {
            foreach (var (_, store) in stores)
                store.Dispose();
        }
        RetrievalBenchCommon.WriteJson($"retrieval-eval-{embedderName}.json", new
        {
            benchmark = "retrieval-eval",
            corpus = "dotnet-docs",
            documents = corpus.Count,
            embedder = embedderName,
            questionsFile = Path.GetFullPath(questionsPath),
            missingMembers = missing,
            machine = new { Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
            results,
        });
        return 0;
    }

    static List<Question> ReadQuestions(string path)
    {
        var questions = new List<Question>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Trim().Length == 0)
                continue;
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            string Field(string name) => root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()!
                : throw new InvalidDataException($"{path}:{lineNumber}: field '{name}' missing or not a string");
            questions.Add(new Question(Field("id"), Field("question"), Field("member")));
        }
        return questions;
    }
}
