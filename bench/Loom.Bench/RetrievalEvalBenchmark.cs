using System.Diagnostics;
using System.Text.Json;
using Loom.Retrieval;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Bench;

/// <summary>
/// retrieval-eval: recall@1, recall@5 and MRR@10 of BM25, vector and hybrid search on both stores,
/// over the dotnet-docs corpus (one document per documented member, source id = member id).
/// The corpus is every member (78,588 documents); --members N takes every member a question asks
/// about plus a deterministic sample of the others, for quicker runs. Embedding the full corpus
/// with MiniLM takes 10 minutes to half an hour on two cores; the built indexes are cached under
/// bench/results/cache/. BM25 and vector lists are fetched 50 deep once per question; hybrid rows
/// fuse them (weights tuned on one half of the questions, reported on the other) and, last, run
/// the Retriever end to end with its default options.
/// A hit is the member's document among the top 5 distinct documents (chunks folded by document).
/// Last, on SQLite, the ceilings: how often exact vector search, BM25 over every word, or either of
/// them holds the member within depth 5 to 100 (what no fusion or re-ranking of them can exceed).
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
        int memberCount = RetrievalBenchCommon.Int(arguments, "members", int.MaxValue);
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
        var corpus = present.Concat(others.Where((_, index) => index % stride == 0).Take(wanted)).Select(member => DotnetDocsReader.ToDocument(member)).ToList();
        Console.WriteLine($"corpus: {corpus.Count} documents ({present.Count} asked about, {corpus.Count - present.Count} others)");

        string cache = Directory.CreateDirectory(Path.Combine(RetrievalBenchCommon.ResultsFolder(), "cache", $"eval-{embedderName}-{corpus.Count}")).FullName;
        using var embedder = new CachingEmbeddingGenerator(Embedders.Create(embedderName), Path.Combine(cache, "..", $"embeddings-{embedderName}.bin"), Embedders.DimensionsOf(embedderName));
        var stores = await RetrievalBenchCommon.OpenStoresAsync(cache, $"loom_bench_eval_{embedderName}_{corpus.Count}", Embedders.DimensionsOf(embedderName), RetrievalBenchCommon.PostgresConnection(arguments));
        var results = new List<object>();
        var tuningGrids = new List<object>();
        object? ceilings = null;
        try
        {
            foreach (var (name, store) in stores)
            {
                clock.Restart();
                var report = await new Ingestor(store, embedder).IngestDocumentsAsync(corpus, default);
                var counts = await store.CountAsync(null, default);
                Console.WriteLine($"{name}: {report} ({counts.Documents} documents, {counts.Chunks} chunks)");
                var retriever = new Retriever(store, embedder);
                // Each question's BM25 and vector lists, 50 chunks deep, fetched once; the fusion
                // weights are chosen on the even-numbered questions (the tuning half) and reported on
                // the odd-numbered ones (the held-out half) as well as on all.
                var lists = new List<(IReadOnlyList<SearchHit> Text, IReadOnlyList<SearchHit> Vector)>();
                foreach (var question in questions)
                {
                    var text = await store.SearchTextAsync(question.Text, Depth, null, default);
                    var vector = await store.SearchVectorAsync((await embedder.GenerateAsync([question.Text]))[0].Vector, Depth, null, default);
                    lists.Add((text, vector));
                }
                var tuning = Enumerable.Range(0, questions.Count).Where(index => index % 2 == 0).ToList();
                var heldOut = Enumerable.Range(0, questions.Count).Where(index => index % 2 == 1).ToList();
                var grid = new List<object>();
                (double TextWeight, double VectorWeight, int K, double Recall) best = (1, 1, 60, -1);
                foreach (int k in new[] { 10, 30, 60 })
                {
                    foreach (double vectorWeight in new[] { 1.0, 1.5, 2.0, 3.0, 4.0, 6.0 })
                    {
                        var score = Score(questions, tuning, index => Retriever.Fuse([lists[index].Text, lists[index].Vector], [1.0, vectorWeight], k, 30));
                        grid.Add(new { k, textWeight = 1.0, vectorWeight, tuningRecallAt5 = score.RecallAt5, tuningMrrAt10 = score.Mrr });
                        if (score.RecallAt5 > best.Recall + 1e-9)
                            best = (1.0, vectorWeight, k, score.RecallAt5);
                    }
                }
                Console.WriteLine($"{name}: fusion chosen on the tuning half: k {best.K}, text weight {best.TextWeight}, vector weight {best.VectorWeight} (tuning recall@5 {best.Recall:F3})");
                var defaults = new SearchOptions();
                var rows = new (string Mode, Func<int, IReadOnlyList<SearchHit>> Hits)[]
                {
                    ("bm25", index => lists[index].Text),
                    ("vector", index => lists[index].Vector),
                    ("hybrid-rrf-equal", index => Retriever.Fuse([lists[index].Text, lists[index].Vector], 60, 30)),
                    ("hybrid-tuned", index => Retriever.Fuse([lists[index].Text, lists[index].Vector], [best.TextWeight, best.VectorWeight], best.K, 30)),
                };
                foreach (var (mode, hits) in rows)
                    results.Add(Report(name, mode, questions, hits, tuning, heldOut, null));
                // The Retriever with its default options, end to end (what users get).
                var defaultHits = new List<IReadOnlyList<SearchHit>>();
                foreach (var question in questions)
                    defaultHits.Add(await retriever.SearchAsync(question.Text, defaults with { Top = 30 }, default));
                results.Add(Report(name, "hybrid", questions, index => defaultHits[index], tuning, heldOut,
                    new { defaults.RrfK, defaults.TextWeight, defaults.VectorWeight, defaults.CandidatesPerList }));
                tuningGrids.Add(new { store = name, chosen = new { best.K, best.TextWeight, best.VectorWeight }, grid });
                if (store is SqliteRetrievalStore sqlite)
                    ceilings = await CeilingsAsync(sqlite, questions, embedder);
            }
        }
        finally
        {
            foreach (var (_, store) in stores)
                store.Dispose();
        }
        // The full corpus writes retrieval-eval-EMBEDDER.json; a --members subset adds its document count.
        string resultName = corpus.Count == all.Count ? $"retrieval-eval-{embedderName}.json" : $"retrieval-eval-{embedderName}-{corpus.Count}.json";
        RetrievalBenchCommon.WriteJson(resultName, new
        {
            benchmark = "retrieval-eval",
            corpus = "dotnet-docs",
            documents = corpus.Count,
            embedder = embedderName,
            questionsFile = Path.GetFullPath(questionsPath),
            missingMembers = missing,
            split = "fusion weights tuned on the even-numbered questions (tuning half), reported on the odd-numbered (held-out half) and on all",
            tuningGrids,
            ceilings,
            machine = new { Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
            results,
        });
        return 0;
    }

    const int Depth = 50;

    /// <summary>
    /// What any fusion or re-ranking of the two first-stage lists could reach: the share of questions
    /// whose member is among the top k documents of exact (brute-force) vector search, of BM25 over
    /// every query word (no posting budget), and of the two together.
    /// </summary>
    static async Task<object> CeilingsAsync(SqliteRetrievalStore store, List<Question> questions, IEmbeddingGenerator<string, Embedding<float>> embedder)
    {
        int[] depths = [5, 10, 50, 100];
        var sources = new List<string>();
        var vectors = new List<float[]>();
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={store.DatabasePath};Mode=ReadOnly;Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT d.source_id, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                sources.Add(reader.GetString(0));
                vectors.Add(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>((byte[])reader.GetValue(1)).ToArray());
            }
        }
        long budget = store.QueryPostingBudget;
        store.QueryPostingBudget = long.MaxValue;
        var exact = new int[depths.Length];
        var text = new int[depths.Length];
        var union = new int[depths.Length];
        var scores = new float[vectors.Count];
        try
        {
            foreach (var question in questions)
            {
                var query = (await embedder.GenerateAsync([question.Text]))[0].Vector.Span;
                for (int i = 0; i < vectors.Count; i++)
                    scores[i] = System.Numerics.Tensors.TensorPrimitives.Dot(query, vectors[i]);
                var vectorDocuments = Enumerable.Range(0, vectors.Count).OrderByDescending(i => scores[i]).Select(i => sources[i]).Distinct().Take(depths[^1]).ToList();
                var textDocuments = (await store.SearchTextAsync(question.Text, 3 * depths[^1], null, default)).Select(hit => hit.SourceId).Distinct().Take(depths[^1]).ToList();
                for (int d = 0; d < depths.Length; d++)
                {
                    bool inVector = vectorDocuments.Take(depths[d]).Contains(question.Member);
                    bool inText = textDocuments.Take(depths[d]).Contains(question.Member);
                    exact[d] += inVector ? 1 : 0;
                    text[d] += inText ? 1 : 0;
                    union[d] += inVector || inText ? 1 : 0;
                }
            }
        }
        finally
        {
            store.QueryPostingBudget = budget;
        }
        var rows = depths.Select((depth, d) => new
        {
            depth,
            exactVector = Math.Round((double)exact[d] / questions.Count, 4),
            bm25EveryWord = Math.Round((double)text[d] / questions.Count, 4),
            either = Math.Round((double)union[d] / questions.Count, 4),
        }).ToList();
        foreach (var row in rows)
            Console.WriteLine($"ceiling at depth {row.depth,3}: exact vector {row.exactVector:F3}, BM25 every word {row.bm25EveryWord:F3}, either {row.either:F3}");
        return rows;
    }

    sealed record Metrics(double RecallAt1, double RecallAt5, double Mrr);

    /// <summary>recall@1, recall@5, MRR@10 over the given questions; chunks fold into their documents.</summary>
    static Metrics Score(List<Question> questions, List<int> indexes, Func<int, IReadOnlyList<SearchHit>> hits)
    {
        int hitsAt1 = 0, hitsAt5 = 0;
        double reciprocalRanks = 0;
        foreach (int index in indexes)
        {
            var documents = hits(index).Select(hit => hit.SourceId).Distinct().Take(10).ToList();
            int rank = documents.IndexOf(questions[index].Member) + 1;
            if (rank == 1) hitsAt1++;
            if (rank is >= 1 and <= 5) hitsAt5++;
            if (rank >= 1) reciprocalRanks += 1.0 / rank;
        }
        return new Metrics(Math.Round((double)hitsAt1 / indexes.Count, 4), Math.Round((double)hitsAt5 / indexes.Count, 4), Math.Round(reciprocalRanks / indexes.Count, 4));
    }

    static object Report(string store, string mode, List<Question> questions, Func<int, IReadOnlyList<SearchHit>> hits, List<int> tuning, List<int> heldOut, object? options)
    {
        var all = Score(questions, Enumerable.Range(0, questions.Count).ToList(), hits);
        var tuned = Score(questions, tuning, hits);
        var held = Score(questions, heldOut, hits);
        Console.WriteLine($"{store,-8} {mode,-17} recall@1 {all.RecallAt1:F3}  recall@5 {all.RecallAt5:F3}  MRR@10 {all.Mrr:F3}   held-out half recall@5 {held.RecallAt5:F3}  tuning half {tuned.RecallAt5:F3}");
        return new
        {
            store,
            mode,
            questions = questions.Count,
            recallAt1 = all.RecallAt1,
            recallAt5 = all.RecallAt5,
            mrrAt10 = all.Mrr,
            heldOutHalf = held,
            tuningHalf = tuned,
            options,
        };
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
