using System.Diagnostics;
using Loom.Retrieval;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Retrieval;

/// <summary>Counts the texts that reach the wrapped embedder.</summary>
public sealed class CountingEmbeddingGenerator(IEmbeddingGenerator<string, Embedding<float>> inner)
    : DelegatingEmbeddingGenerator<string, Embedding<float>>(inner)
{
    int count;

    public int Count => Volatile.Read(ref count);

    public override Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = values.ToList();
        Interlocked.Add(ref count, list.Count);
        return base.GenerateAsync(list, options, cancellationToken);
    }
}

public sealed class IngestionTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-ingest-").FullName;
    static readonly Dictionary<string, string> NoTags = [];

    static string FileText(int index, int version = 0) =>
        $"# Note {index}\n\nThis note is number {index}{(version > 0 ? " (revised)" : "")}. It mentions topic{index % 37} and item{index}.\n\n" +
        $"## Details\n\nMore words for note {index}: alpha beta gamma delta {index * 7}.";

    string MakeCorpus(int files)
    {
        string corpus = Path.Combine(folder, "corpus");
        for (int i = 0; i < files; i++)
        {
            string sub = Path.Combine(corpus, $"d{i % 10}");
            Directory.CreateDirectory(sub);
            File.WriteAllText(Path.Combine(sub, $"note{i:D4}.md"), FileText(i));
        }
        return corpus;
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task EditingOneFileOfAThousandReembedsOnlyItsChunksAndDeletingRemovesIt()
    {
        string corpus = MakeCorpus(1000);
        var embedder = new CountingEmbeddingGenerator(new HashingEmbeddingGenerator());
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, embedder);

        var first = await ingestor.IngestPathsAsync([corpus], NoTags, default);
        Assert.Equal(1000, first.Count(IngestOutcome.Added));
        var counts = await store.CountAsync(null, default);
        Assert.Equal(1000, counts.Documents);
        Assert.Equal(2000, counts.Chunks);
        Assert.Equal(2000, embedder.Count);

        string edited = Path.Combine(corpus, "d3", "note0123.md");
        File.WriteAllText(edited, FileText(123, version: 1));
        var second = await ingestor.IngestPathsAsync([corpus], NoTags, default);
        Assert.Equal(1, second.Count(IngestOutcome.Updated));
        Assert.Equal(999, second.Count(IngestOutcome.Unchanged));
        Assert.Equal(0, second.Count(IngestOutcome.Added));
        Assert.Equal(2002, embedder.Count);
        Assert.Equal(new StoreCounts(1000, 2000), await store.CountAsync(null, default));
        var hits = await store.SearchTextAsync("revised", 3, null, default);
        Assert.Equal(edited, hits[0].SourceId);

        File.Delete(Path.Combine(corpus, "d5", "note0555.md"));
        var third = await ingestor.IngestPathsAsync([corpus], NoTags, default);
        Assert.Equal(1, third.Count(IngestOutcome.Removed));
        Assert.Equal(Path.Combine(corpus, "d5", "note0555.md"), third.Entries.Single(entry => entry.Outcome == IngestOutcome.Removed).Source);
        Assert.Equal(2002, embedder.Count);
        Assert.Equal(new StoreCounts(999, 1998), await store.CountAsync(null, default));
        Assert.Empty(await store.SearchTextAsync("item555", 5, null, default));
        Assert.Equal(1998, store.VectorCount);
        var vectorHits = await store.SearchVectorAsync(new HashingEmbeddingGenerator().Embed("This note is number 555. It mentions topic0 and item555."), 5, null, default);
        Assert.DoesNotContain(vectorHits, hit => hit.SourceId.EndsWith("note0555.md"));
    }

    [Fact]
    public async Task TagsAreStoredAndFilterAndChangingThemReingests()
    {
        string corpus = MakeCorpus(6);
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, new HashingEmbeddingGenerator());
        await ingestor.IngestPathsAsync([Path.Combine(corpus, "d1")], new Dictionary<string, string> { ["team"] = "red" }, default);
        await ingestor.IngestPathsAsync([Path.Combine(corpus, "d2")], new Dictionary<string, string> { ["team"] = "blue" }, default);
        var red = new SearchFilter(new Dictionary<string, string> { ["team"] = "red" });
        Assert.Equal(new StoreCounts(1, 2), await store.CountAsync(red, default));
        var retriever = new Retriever(store, new HashingEmbeddingGenerator());
        var hits = await retriever.SearchAsync("note", new SearchOptions(SearchMode.Hybrid, 10, red), default);
        Assert.All(hits, hit => Assert.Equal("red", hit.Tags["team"]));
        var again = await ingestor.IngestPathsAsync([Path.Combine(corpus, "d1")], new Dictionary<string, string> { ["team"] = "green" }, default);
        Assert.Equal(1, again.Count(IngestOutcome.Updated));
        Assert.Equal(new StoreCounts(0, 0), await store.CountAsync(red, default));
    }

    [Fact]
    public async Task BadInputsAreSkippedWithReasonsAndTheRestIsIngested()
    {
        string corpus = MakeCorpus(3);
        File.WriteAllBytes(Path.Combine(corpus, "blob.txt"), [1, 0, 2]);
        File.WriteAllText(Path.Combine(corpus, "broken.pdf"), "not a pdf");
        File.WriteAllText(Path.Combine(corpus, "photo.jpg"), "x");
        File.WriteAllText(Path.Combine(corpus, "big.txt"), new string('x', 5000));
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, new HashingEmbeddingGenerator(), new IngestOptions(MaxFileBytes: 4096));
        var report = await ingestor.IngestPathsAsync([corpus, Path.Combine(folder, "missing")], NoTags, default);
        Assert.Equal(3, report.Count(IngestOutcome.Added));
        var skipped = report.Entries.Where(entry => entry.Outcome == IngestOutcome.Skipped).ToDictionary(entry => Path.GetFileName(entry.Source), entry => entry.Reason);
        Assert.Equal(5, skipped.Count);
        Assert.Equal("binary content (NUL bytes) in a text file", skipped["blob.txt"]);
        Assert.StartsWith("unreadable PDF", skipped["broken.pdf"]);
        Assert.Equal("unsupported file type '.jpg'", skipped["photo.jpg"]);
        Assert.Equal("file is 5,000 bytes, over the 4,096-byte limit", skipped["big.txt"]);
        Assert.Equal("no such file or folder", skipped["missing"]);
        Assert.True(report.AnythingDone);
    }

    [Fact]
    public async Task FifosDevicesOutsideLinksAndLinkLoopsAreSkippedNotFollowed()
    {
        string corpus = MakeCorpus(2);
        string fifo = Path.Combine(corpus, "pipe.txt");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();
        File.CreateSymbolicLink(Path.Combine(corpus, "zero.txt"), "/dev/zero");
        File.CreateSymbolicLink(Path.Combine(corpus, "os.txt"), "/etc/os-release");
        string sub = Directory.CreateDirectory(Path.Combine(corpus, "sub")).FullName;
        for (int i = 0; i < 3; i++) Directory.CreateSymbolicLink(Path.Combine(sub, $"loop{i}"), corpus);
        File.CreateSymbolicLink(Path.Combine(corpus, "gone.md"), Path.Combine(folder, "nowhere.md"));
        File.CreateSymbolicLink(Path.Combine(sub, "again.md"), Path.Combine(corpus, "d0", "note0000.md"));
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, new HashingEmbeddingGenerator());
        // A reader blocked on the FIFO or /dev/zero would never return: the guard turns a hang into a failure.
        var report = await ingestor.IngestPathsAsync([corpus], NoTags, default).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(2, report.Count(IngestOutcome.Added));
        var skipped = report.Entries.Where(e => e.Outcome == IngestOutcome.Skipped).ToDictionary(e => Path.GetFileName(e.Source), e => e.Reason);
        Assert.Equal("not a regular file (a FIFO, device or socket)", skipped["pipe.txt"]);
        Assert.Equal("link to '/dev/zero', outside the folder", skipped["zero.txt"]);
        Assert.EndsWith("os-release', outside the folder", skipped["os.txt"]); // /etc/os-release links on to /usr/lib/os-release
        Assert.StartsWith("the same file as one already read", skipped["again.md"]);
        foreach (int i in new[] { 0, 1, 2 }) Assert.StartsWith("link to a folder already walked", skipped[$"loop{i}"]);
        Assert.Equal("broken link", skipped["gone.md"]);
        Assert.Empty(await store.SearchTextAsync("PRETTY_NAME", 5, null, default));

        // The corpus reader walks the same way: the two regular files only.
        var text = Loom.Text.TextCorpus.Open(corpus);
        Assert.Equal(2, text.Files.Count);
        Assert.Contains(text.Skipped, s => s.Path == fifo);
        Assert.Contains(text.Skipped, s => s.Path.EndsWith("gone.md", StringComparison.Ordinal) && s.Reason == "broken link");
    }

    [Fact]
    public async Task SqlRowsAreDocumentsAndVanishedRowsAreRemoved()
    {
        string database = Path.Combine(folder, "rows.db");
        using (var connection = new SqliteConnection($"Data Source={database}"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE tickets(id INTEGER PRIMARY KEY, title TEXT, body TEXT); INSERT INTO tickets VALUES (1, 'Printer jam', 'Jams on A3'), (2, 'VPN down', 'Certificate expired'), (3, 'Laptop', NULL);";
            command.ExecuteNonQuery();
        }
        using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        var ingestor = new Ingestor(store, new HashingEmbeddingGenerator());
        var source = new SqlSource(SqlReader.Sqlite, $"Data Source={database};Pooling=False", "SELECT id, title, body FROM tickets");
        var report = await ingestor.IngestSqlAsync(source, new Dictionary<string, string> { ["src"] = "tickets" }, default);
        Assert.Equal(3, report.Count(IngestOutcome.Added));
        var hit = Assert.Single(await store.SearchTextAsync("certificate", 5, null, default));
        Assert.Equal("id: 2\ntitle: VPN down\nbody: Certificate expired", hit.Text);
        Assert.EndsWith("/2", hit.SourceId);
        Assert.Equal("tickets", hit.Tags["src"]);

        using (var connection = new SqliteConnection($"Data Source={database};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM tickets WHERE id = 3; UPDATE tickets SET body = 'Jams on A4' WHERE id = 1;";
            command.ExecuteNonQuery();
        }
        report = await ingestor.IngestSqlAsync(source, new Dictionary<string, string> { ["src"] = "tickets" }, default);
        Assert.Equal((1, 1, 1), (report.Count(IngestOutcome.Updated), report.Count(IngestOutcome.Unchanged), report.Count(IngestOutcome.Removed)));
        Assert.Equal(new StoreCounts(2, 2), await store.CountAsync(null, default));

        var badQuery = await ingestor.IngestSqlAsync(source with { Query = "SELECT nope FROM tickets" }, NoTags, default);
        Assert.Equal("SQLite Error 1: 'no such column: nope'.", Assert.Single(badQuery.Entries).Reason);
        Assert.False(badQuery.AnythingDone);
        var missing = await ingestor.IngestSqlAsync(source with { ConnectionString = $"Data Source={Path.Combine(folder, "none.db")}" }, NoTags, default);
        Assert.Equal(IngestOutcome.Skipped, Assert.Single(missing.Entries).Outcome);
        // A failed query proves nothing about rows: nothing was removed.
        Assert.Equal(new StoreCounts(2, 2), await store.CountAsync(null, default));
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task IngestionKilledMidwayLeavesAnIndexThatOpensAnswersAndCompletes()
    {
        // Enough files that the run is still going after its first commits (about 256 documents per embedding batch).
        const int files = 3000;
        string corpus = MakeCorpus(files);
        string index = Path.Combine(folder, "index");
        string cli = typeof(Loom.Cli.Program).Assembly.Location;
        var start = new ProcessStartInfo("dotnet", ["exec", cli, "ingest", "--index", index, "--embedder", "hashing", corpus])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        string database = Path.Combine(index, "index.db");
        long committed = 0;
        var deadline = Stopwatch.StartNew();
        while (committed < 30 && !process.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(20);
            committed = CountDocuments(database);
        }
        Assert.False(process.HasExited, "the ingestion finished before it could be killed; the corpus is too small for this machine");
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        Assert.False(File.Exists(Path.Combine(index, "index.db.usearch")), "the vector index is saved only at the end of a run");

        // The half-built index opens (the vector index is rebuilt from the database) and answers.
        using (var store = SqliteRetrievalStore.Open(database, 256))
        {
            var counts = await store.CountAsync(null, default);
            Assert.InRange(counts.Documents, 30, files - 1);
            Assert.Equal(counts.Chunks, store.VectorCount);
            var hits = await store.SearchVectorAsync(new HashingEmbeddingGenerator().Embed("Note 0 > Details\nMore words for note 0: alpha beta gamma delta 0."), 3, null, default);
            Assert.EndsWith("note0000.md", hits[0].SourceId);
            Assert.NotEmpty(await store.SearchTextAsync("alpha", 3, null, default));

            // The next run completes it: committed documents are unchanged, the rest are added.
            var report = await new Ingestor(store, new HashingEmbeddingGenerator(), null).IngestPathsAsync([corpus], NoTags, default);
            Assert.Equal(files, report.Count(IngestOutcome.Added) + report.Count(IngestOutcome.Unchanged));
            Assert.Equal(0, report.Count(IngestOutcome.Updated));
            Assert.InRange(report.Count(IngestOutcome.Unchanged), 30, files - 1);
        }

        // Nothing lost or duplicated: the same chunks as an uninterrupted ingestion.
        using var resumed = SqliteRetrievalStore.Open(database, 256);
        using var clean = SqliteRetrievalStore.Open(Path.Combine(folder, "clean.db"), 256);
        await new Ingestor(clean, new HashingEmbeddingGenerator(), null).IngestPathsAsync([corpus], NoTags, default);
        var resumedCounts = await resumed.CountAsync(null, default);
        Assert.Equal(await clean.CountAsync(null, default), resumedCounts);
        Assert.Equal(files, resumedCounts.Documents);
        Assert.Equal(resumedCounts.Chunks, resumed.VectorCount);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task WatchModeReingestsChangedAndRemovedFiles()
    {
        string corpus = MakeCorpus(5);
        string index = Path.Combine(folder, "index");
        string cli = typeof(Loom.Cli.Program).Assembly.Location;
        var start = new ProcessStartInfo("dotnet", ["exec", cli, "ingest", "--index", index, "--embedder", "hashing", "--watch", corpus])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var watching = new TaskCompletionSource();
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, line) =>
        {
            lock (output)
                output.AppendLine(line.Data);
            if (line.Data?.Contains("watching for changes") == true)
                watching.TrySetResult();
        };
        process.BeginOutputReadLine();
        _ = process.StandardError.ReadToEndAsync();
        try
        {
            await watching.Task.WaitAsync(TimeSpan.FromSeconds(60));
            string database = Path.Combine(index, "index.db");
            Assert.Equal(5, CountDocuments(database));
            File.WriteAllText(Path.Combine(corpus, "d2", "note0002.md"), FileText(2, version: 1));
            File.Delete(Path.Combine(corpus, "d4", "note0004.md"));
            File.WriteAllText(Path.Combine(corpus, "d4", "added.md"), "# Added\n\nA new file.");
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(90) && !(CountDocuments(database) == 5 && CountMatches(database, "revised") == 1 && CountMatches(database, "new") == 1))
                await Task.Delay(100);
            Assert.Equal(5, CountDocuments(database));
            Assert.Equal(1, CountMatches(database, "revised"));
            Assert.Equal(1, CountMatches(database, "new"));
            Assert.Equal(0, CountMatches(database, "item4"));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    static long CountMatches(string database, string word)
    {
        using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH $word";
        command.Parameters.AddWithValue("$word", word);
        return (long)command.ExecuteScalar()!;
    }

    static long CountDocuments(string database)
    {
        if (!File.Exists(database))
            return 0;
        try
        {
            using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT count(*) FROM documents";
            return (long)command.ExecuteScalar()!;
        }
        catch (SqliteException)
        {
            // The writer is still creating the schema.
            return 0;
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(folder, recursive: true);
    }
}
