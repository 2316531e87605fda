using System.Text.Json.Nodes;
using Loom.Cli.Commands;
using Loom.Models;
using Loom.Retrieval;
using Loom.Tests.Server;
using Loom.Text;
using Microsoft.Extensions.AI;
using Xunit.Abstractions;

namespace Loom.Tests.Retrieval;

/// <summary>Cancels a run from inside the embedder once it has answered a given number of calls.</summary>
sealed class CancelAfterCalls(IEmbeddingGenerator<string, Embedding<float>> inner, int calls, CancellationTokenSource cancel)
    : DelegatingEmbeddingGenerator<string, Embedding<float>>(inner)
{
    int made;

    public override async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await base.GenerateAsync(values, options, cancellationToken);
        if (++made == calls)
            cancel.Cancel();
        return result;
    }
}

/// <summary>Machine-readable search and ask (--json), ingest progress and resumption, and the dotnet-docs public surface.</summary>
public sealed class RetrievalUxTests(ITestOutputHelper log) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-retrieval-ux-").FullName;

    static SourceDocument Document(string id, string text) =>
        new(id, id + " title", "text", text, new Dictionary<string, string> { ["team"] = "red" }, new Dictionary<string, string>());

    async Task<string> SmallIndexAsync()
    {
        string index = Path.Combine(folder, "kb");
        using var built = await RetrievalIndex.OpenAsync(index, Embedders.Hashing, null, create: true, default);
        await new Ingestor(built.Store, built.Embedder).IngestDocumentsAsync(
        [
            Document("dog", "The lazy dog sleeps all day today."),
            Document("fox", "The quick brown fox jumps over the lazy dog."),
            Document("hello", "Hello world, how are you today?"),
            Document("kettle", "A kettle boils water for tea."),
        ], default);
        return index;
    }

    [Fact]
    public async Task SearchJsonGivesRanksScoresChunksAndTheStageScoresThatFuseToTheScore()
    {
        string index = await SmallIndexAsync();
        var (exit, output, error) = CliRun.Run("search", "--index", index, "--json", "--top", "3", "lazy dog sleeps");
        Assert.True(exit == 0, error);
        var document = JsonNode.Parse(output)!;
        Assert.Equal("lazy dog sleeps", (string)document["query"]!);
        Assert.Equal("hybrid", (string)document["mode"]!);
        var hits = document["hits"]!.AsArray();
        Assert.Equal(3, hits.Count);
        Assert.Equal("dog", (string)hits[0]!["sourceId"]!);
        Assert.Equal("dog title", (string)hits[0]!["title"]!);
        Assert.Equal("The lazy dog sleeps all day today.", (string)hits[0]!["text"]!);
        Assert.Equal("red", (string)hits[0]!["tags"]!["team"]!);
        var defaults = new SearchOptions();
        for (int i = 0; i < hits.Count; i++)
        {
            var hit = hits[i]!;
            Assert.Equal(i + 1, (int)hit["rank"]!);
            var stages = hit["stages"]!.AsArray();
            Assert.NotEmpty(stages);
            // The fused score is the weighted reciprocal-rank sum over the stages that ranked the hit.
            double fused = stages.Sum(stage => ((string)stage!["stage"]! == "bm25" ? defaults.TextWeight : defaults.VectorWeight) / (defaults.RrfK + (int)stage!["rank"]!));
            Assert.Equal(fused, (double)hit["score"]!, 12);
            if (i > 0)
                Assert.True((double)hits[i - 1]!["score"]! >= (double)hit["score"]!);
        }
        Assert.Equal(["bm25", "vector"], hits[0]!["stages"]!.AsArray().Select(stage => (string)stage!["stage"]!));
        Assert.All(hits[0]!["stages"]!.AsArray(), stage => Assert.Equal(1, (int)stage!["rank"]!));

        (exit, output, error) = CliRun.Run("search", "--index", index, "--json", "--mode", "bm25", "kettle tea");
        Assert.True(exit == 0, error);
        var bm25 = JsonNode.Parse(output)!["hits"]!.AsArray();
        var only = Assert.Single(bm25);
        Assert.Equal("kettle", (string)only!["sourceId"]!);
        var stage = Assert.Single(only["stages"]!.AsArray())!;
        Assert.Equal("bm25", (string)stage["stage"]!);
        Assert.Equal((double)only["score"]!, (double)stage["score"]!);
    }

    [Fact]
    public async Task AskJsonGivesTheSameAnswerAsThePlainOutputWithSourcesAndUsage()
    {
        string index = await SmallIndexAsync();
        var (model, tokenizer) = ServerFixture.BpeModel(21, maxSeq: 512);
        string checkpoint = Path.Combine(folder, "model");
        Checkpoint.Save(checkpoint, model, tokenizer.Save);

        var (exit, plain, error) = CliRun.Run("ask", "--index", index, "--model", checkpoint, "--max-tokens", "12", "--top", "2", "how is the lazy dog?");
        Assert.True(exit == 0, error);
        (exit, var output, error) = CliRun.Run("ask", "--index", index, "--model", checkpoint, "--max-tokens", "12", "--top", "2", "--json", "how is the lazy dog?");
        Assert.True(exit == 0, error);
        var answer = JsonNode.Parse(output)!;
        Assert.Equal("how is the lazy dog?", (string)answer["question"]!);
        Assert.StartsWith((string)answer["answer"]! + "\n", plain.ReplaceLineEndings("\n"));
        var sources = answer["sources"]!.AsArray();
        Assert.Equal([1, 2], sources.Select(source => (int)source!["number"]!));
        Assert.All(sources, source => Assert.False(string.IsNullOrEmpty((string)source!["sourceId"]!)));
        Assert.All(sources, source => Assert.NotEmpty(source!["stages"]!.AsArray()));
        var cited = sources.Where(source => (bool)source!["cited"]!).Select(source => (int)source!["number"]!).ToList();
        Assert.Contains(cited.Count > 0 ? "Sources:" : "Sources given to the model (none cited):", plain);
        long outputTokens = (long)answer["usage"]!["outputTokens"]!;
        Assert.InRange(outputTokens, 1, 12);
        Assert.Equal((long)answer["usage"]!["inputTokens"]! + outputTokens, (long)answer["usage"]!["totalTokens"]!);
    }

    [Fact]
    public void ProgressLinesShowCountRateAndEta()
    {
        Assert.Equal("ingest: 1,200/45,000 documents, 40.0/s, ETA 18m 15s", IngestProgressPrinter.Format(new IngestProgress(1200, 45000, TimeSpan.FromSeconds(30))));
        Assert.Equal("ingest: 90/100 documents, 3.0/s, ETA 4s", IngestProgressPrinter.Format(new IngestProgress(90, 100, TimeSpan.FromSeconds(30))));
        Assert.Equal("ingest: 7,500 documents, 2.5/s", IngestProgressPrinter.Format(new IngestProgress(7500, null, TimeSpan.FromSeconds(3000))));
        Assert.Equal("ingest: 100/200,000 documents, 0.1/s, ETA 555h 16m", IngestProgressPrinter.Format(new IngestProgress(100, 200000, TimeSpan.FromSeconds(1000))));

        // Not a terminal: a plain line each time the interval has passed, nothing in between.
        var output = new StringWriter();
        var printer = new IngestProgressPrinter(output, terminal: false);
        for (int second = 1; second <= 12; second++)
            printer.Report(new IngestProgress(second * 10, 120, TimeSpan.FromSeconds(second)));
        Assert.Equal(["ingest: 50/120 documents, 10.0/s, ETA 7s", "ingest: 100/120 documents, 10.0/s, ETA 2s"],
            output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.TrimEnd('\r')));
    }

    string Corpus(int files)
    {
        string corpus = Path.Combine(folder, "corpus");
        Directory.CreateDirectory(corpus);
        for (int i = 0; i < files; i++)
            File.WriteAllText(Path.Combine(corpus, $"note{i:D3}.md"), $"# Note {i}\n\nNote {i} mentions item{i}.\n\n## More\n\nDetails for note {i}: alpha {i * 3}.");
        return corpus;
    }

    [Fact]
    public async Task IngestReportsEveryDocumentToItsProgressWithTheTotal()
    {
        string corpus = Corpus(6);
        var reports = new List<IngestProgress>();
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, new HashingEmbeddingGenerator(), new IngestOptions(EmbeddingBatch: 4, Progress: new Recorder(reports)));
        await ingestor.IngestPathsAsync([corpus], new Dictionary<string, string>(), default);
        // Two chunks per document, batches of at least four chunks: stored two documents at a time.
        Assert.Equal([2, 4, 6], reports.Select(report => report.Done));
        Assert.All(reports, report => Assert.Equal(6, report.Total));

        var output = new StringWriter();
        var plain = new IngestProgressPrinter(output, terminal: false) { PlainInterval = TimeSpan.Zero };
        await plain.RunAsync(() => new Ingestor(store, new HashingEmbeddingGenerator(), new IngestOptions(Progress: plain)).IngestPathsAsync([corpus], new Dictionary<string, string>(), default));
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        Assert.All(lines.Select((line, i) => (line, i)), item => Assert.StartsWith($"ingest: {item.i + 1}/6 documents, ", item.line));
    }

    sealed class Recorder(List<IngestProgress> reports) : IProgress<IngestProgress>
    {
        public void Report(IngestProgress value) => reports.Add(value);
    }

    [Fact]
    public async Task IngestCancelledMidRunResumesWithoutEmbeddingAnyDocumentTwice()
    {
        const int Files = 40;
        string corpus = Corpus(Files);
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var counting = new CountingEmbeddingGenerator(new HashingEmbeddingGenerator());
        using var cancel = new CancellationTokenSource();
        var options = new IngestOptions(EmbeddingBatch: 10);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new Ingestor(store, new CancelAfterCalls(counting, 3, cancel), options).IngestPathsAsync([corpus], new Dictionary<string, string>(), cancel.Token));
        var stored = await store.CountAsync(null, default);
        // Three batches of ten chunks (two per document) were embedded, and every one of them was stored.
        Assert.Equal(30, counting.Count);
        Assert.Equal(new StoreCounts(15, 30), stored);

        var resumed = await new Ingestor(store, counting, options).IngestPathsAsync([corpus], new Dictionary<string, string>(), default);
        Assert.Equal(15, resumed.Count(IngestOutcome.Unchanged));
        Assert.Equal(Files - 15, resumed.Count(IngestOutcome.Added));
        Assert.Equal(2 * Files, counting.Count);
        Assert.Equal(new StoreCounts(Files, 2 * Files), await store.CountAsync(null, default));
    }

    [Fact]
    public void OnlyReferencePacksAreRead()
    {
        string sdk = Path.Combine(folder, "sdk");
        foreach (string pack in new[] { "Fake.App.Ref", "Fake.App.Host.linux-x64", "Fake.Tools" })
        {
            string reference = Directory.CreateDirectory(Path.Combine(sdk, "packs", pack, "1.0.0", "ref", "net10.0")).FullName;
            File.WriteAllText(Path.Combine(reference, pack + ".xml"), "<doc><members/></doc>");
        }
        var file = Assert.Single(DotnetDocs.FindFiles(sdk));
        Assert.EndsWith("Fake.App.Ref.xml", file);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void RetrievalIngestsThePublicSurfaceOfTheReferencePacks()
    {
        var files = DotnetDocs.FindFiles();
        Assert.All(files, file => Assert.Matches(@"[/\\]packs[/\\][^/\\]+\.Ref[/\\][^/\\]+[/\\]ref[/\\]net[^/\\]+[/\\][^/\\]+\.xml$", file));
        var ids = DotnetDocsReader.ReadAll().Select(document => document.SourceId).ToHashSet(StringComparer.Ordinal);
        Assert.DoesNotContain(ids, id => id.Contains("MessagePack", StringComparison.Ordinal));
        Assert.DoesNotContain(ids, id => id.Contains("System.Text.RegularExpressions.Generated.", StringComparison.Ordinal));
        Assert.Contains("T:System.String", ids);
        Assert.Contains("M:System.String.Trim", ids);
        Assert.Contains("M:System.Collections.Generic.List`1.#ctor", ids);
        Assert.Contains("P:System.Collections.Generic.List`1.Count", ids);
        Assert.Contains("E:System.AppDomain.ProcessExit", ids);
        Assert.InRange(ids.Count, 30_000, 200_000);
        // Everything the XML files document, before the public-surface filter: the filter drops a few percent.
        var documented = DotnetDocs.ReadAll().Select(member => member.Id).ToHashSet(StringComparer.Ordinal);
        Assert.Contains(documented, id => id.Contains("MessagePack", StringComparison.Ordinal));
        Assert.Subset(documented, ids);
        Assert.InRange(ids.Count, documented.Count * 9 / 10, documented.Count - 1);
        // The retrieval question set asks for public API, except one question labelled with an internal helper that
        // Microsoft.AspNetCore.DataProtection compiles in from shared source (its public answer is ILogger.IsEnabled).
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "Loom.sln")))
            root = root.Parent!;
        var asked = File.ReadLines(Path.Combine(root.FullName, "bench", "Loom.Bench", "data", "retrieval-questions.jsonl"))
            .Select(line => (string)JsonNode.Parse(line)!["member"]!).ToList();
        Assert.Equal(386, asked.Count);
        Assert.Equal(["M:Microsoft.Extensions.Logging.LoggingExtensions.IsTraceLevelEnabled(Microsoft.Extensions.Logging.ILogger)"],
            asked.Where(member => !ids.Contains(member)));
        log.WriteLine($"{files.Count} files; {documented.Count} documented members, {ids.Count} on the public surface");
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(folder, recursive: true);
    }
}
