using Loom.IO;
using System.Data.Common;
using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

/// <summary>What happened to each source in one ingestion run.</summary>
public enum IngestOutcome { Added, Updated, Unchanged, Removed, Skipped }

public sealed record IngestEntry(string Source, IngestOutcome Outcome, string? Reason = null, int Chunks = 0);

/// <summary>The ingest report: one entry per source touched, and totals.</summary>
public sealed class IngestReport
{
    readonly List<IngestEntry> entries = [];
    readonly Lock gate = new();

    public IReadOnlyList<IngestEntry> Entries { get { lock (gate) return entries.ToList(); } }

    public int Count(IngestOutcome outcome) { lock (gate) return entries.Count(entry => entry.Outcome == outcome); }

    public int ChunksEmbedded { get; internal set; }

    public TimeSpan Elapsed { get; internal set; }

    internal void Add(IngestEntry entry) { lock (gate) entries.Add(entry); }

    /// <summary>One report for several runs (files and SQL in one command).</summary>
    public static IngestReport Combine(IEnumerable<IngestReport> reports)
    {
        var combined = new IngestReport();
        foreach (var report in reports)
        {
            foreach (var entry in report.Entries)
                combined.Add(entry);
            combined.ChunksEmbedded += report.ChunksEmbedded;
            combined.Elapsed += report.Elapsed;
        }
        return combined;
    }

    /// <summary>True when the run did something useful or confirmed the index is current.</summary>
    public bool AnythingDone => Entries.Any(entry => entry.Outcome != IngestOutcome.Skipped);

    /// <summary>Documents read to the end: added, updated or unchanged.</summary>
    public int DocumentsDone => Count(IngestOutcome.Added) + Count(IngestOutcome.Updated) + Count(IngestOutcome.Unchanged);

    public override string ToString() =>
        $"added {Count(IngestOutcome.Added)}, updated {Count(IngestOutcome.Updated)}, unchanged {Count(IngestOutcome.Unchanged)}, " +
        $"removed {Count(IngestOutcome.Removed)}, skipped {Count(IngestOutcome.Skipped)}; {ChunksEmbedded} chunks embedded in {Elapsed.TotalSeconds:F1} s" +
        (Elapsed > TimeSpan.Zero ? $" ({DocumentsDone / Elapsed.TotalSeconds:F1} documents/s)" : "");
}

/// <summary>How far one ingestion run is: documents handled (stored, unchanged or skipped) of the total when known.</summary>
/// <param name="Total">Documents this run will handle; null when the source cannot tell in advance (SQL rows).</param>
public sealed record IngestProgress(int Done, int? Total, TimeSpan Elapsed)
{
    /// <summary>Documents per second so far; 0 before any time has passed.</summary>
    public double Rate => Elapsed > TimeSpan.Zero ? Done / Elapsed.TotalSeconds : 0;

    /// <summary>Time left at the rate so far; null without a total or a rate.</summary>
    public TimeSpan? Remaining => Total is { } total && Rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, total - Done) / Rate) : null;
}

/// <summary>A SQL source: the rows of a query.</summary>
public sealed record SqlSource(string Provider, string ConnectionString, string Query);

/// <summary>Ingestion settings; null means the default.</summary>
/// <param name="MaxFileBytes">Files above this are skipped unread.</param>
/// <param name="EmbeddingBatch">Chunks per embedding call (across documents); a large call lets the embedder batch texts of similar length together.</param>
/// <param name="Progress">Told on the ingesting thread after every document found unchanged or skipped and after every stored
/// embedding batch; null = no progress reports.</param>
public sealed record IngestOptions(ChunkerOptions? Chunking = null, long MaxFileBytes = FileReader.DefaultMaxBytes, int EmbeddingBatch = 512,
    IProgress<IngestProgress>? Progress = null);

/// <summary>
/// Brings a store in step with sources: only documents whose content hash changed are chunked and
/// embedded, documents whose source disappeared are removed, and each document is written in one
/// transaction. A cancelled run (Ctrl-C) stores every document it has embedded before it stops, so the next
/// run resumes where it left off and embeds no document twice.
/// </summary>
public sealed class Ingestor(IRetrievalStore store, IEmbeddingGenerator<string, Embedding<float>> embedder, IngestOptions? options = null)
{
    readonly IRetrievalStore store = store;
    readonly IEmbeddingGenerator<string, Embedding<float>> embedder = embedder;
    readonly IngestOptions options = options ?? new IngestOptions();
    readonly Chunker chunker = new((options ?? new IngestOptions()).Chunking);

    /// <summary>Ingests files and folders (recursively, supported extensions only).</summary>
    public async Task<IngestReport> IngestPathsAsync(IEnumerable<string> paths, IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken)
    {
        var report = new IngestReport();
        var started = System.Diagnostics.Stopwatch.StartNew();
        // Folders are walked first so that progress knows the total.
        var plan = paths.Select(Path.GetFullPath)
            .Select(fullPath => (FullPath: fullPath, Root: Path.EndsInDirectorySeparator(fullPath) ? fullPath : fullPath + Path.DirectorySeparatorChar))
            .Select(item => (item.FullPath, item.Root, Files: Directory.Exists(item.FullPath) ? EnumerateFiles(item.Root, report).ToList() : null))
            .ToList();
        var pending = new Pending(this, report, plan.Sum(item => item.Files?.Count ?? (File.Exists(item.FullPath) ? 1 : 0)), started);
        foreach (var (fullPath, root, files) in plan)
        {
            if (files is not null)
            {
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (string file in files)
                {
                    seen.Add(file);
                    await pending.AddAsync(FileReader.Read(file, tags, options.MaxFileBytes), file, cancellationToken);
                }
                await pending.FlushAsync(cancellationToken);
                foreach (var stored in await store.ListDocumentsAsync(root, cancellationToken))
                    if (!seen.Contains(stored.SourceId) && await store.DeleteDocumentAsync(stored.SourceId, cancellationToken))
                        report.Add(new IngestEntry(stored.SourceId, IngestOutcome.Removed, "source no longer exists"));
            }
            else if (File.Exists(fullPath))
            {
                await pending.AddAsync(FileReader.Read(fullPath, tags, options.MaxFileBytes), fullPath, cancellationToken);
            }
            else if (await store.DeleteDocumentAsync(fullPath, cancellationToken))
            {
                report.Add(new IngestEntry(fullPath, IngestOutcome.Removed, "source no longer exists"));
            }
            else
            {
                report.Add(new IngestEntry(fullPath, IngestOutcome.Skipped, "no such file or folder"));
            }
        }
        await pending.FlushAsync(cancellationToken);
        await store.FlushAsync(cancellationToken);
        report.ChunksEmbedded = pending.ChunksEmbedded;
        report.Elapsed = started.Elapsed;
        return report;
    }

    /// <summary>Ingests the rows of a SQL query; rows that no longer come back are removed.</summary>
    public async Task<IngestReport> IngestSqlAsync(SqlSource source, IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken)
    {
        var report = new IngestReport();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var pending = new Pending(this, report, null, started);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string label = $"sql:{source.Provider} \"{source.Query}\"";
        bool completed = false;
        try
        {
            await foreach (var document in SqlReader.ReadAsync(source.Provider, source.ConnectionString, source.Query, tags, cancellationToken))
            {
                seen.Add(document.SourceId);
                await pending.AddAsync(new ReadResult(document, null), document.SourceId, cancellationToken);
            }
            completed = true;
        }
        catch (Exception exception) when (exception is DbException or ArgumentException or InvalidOperationException)
        {
            report.Add(new IngestEntry(label, IngestOutcome.Skipped, exception.Message.ReplaceLineEndings(" ")));
        }
        await pending.FlushAsync(cancellationToken);
        // Only a query that ran to the end may prove that a row is gone.
        if (completed)
            foreach (var stored in await store.ListDocumentsAsync(SqlReader.SourcePrefix(source.Provider, source.ConnectionString, source.Query), cancellationToken))
                if (!seen.Contains(stored.SourceId) && await store.DeleteDocumentAsync(stored.SourceId, cancellationToken))
                    report.Add(new IngestEntry(stored.SourceId, IngestOutcome.Removed, "row no longer returned"));
        await store.FlushAsync(cancellationToken);
        report.ChunksEmbedded = pending.ChunksEmbedded;
        report.Elapsed = started.Elapsed;
        return report;
    }

    /// <summary>Ingests documents produced by code (a corpus reader); no removal. Progress has a total when the sequence knows its count.</summary>
    public async Task<IngestReport> IngestDocumentsAsync(IEnumerable<SourceDocument> documents, CancellationToken cancellationToken)
    {
        var report = new IngestReport();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var pending = new Pending(this, report, documents.TryGetNonEnumeratedCount(out int total) ? total : null, started);
        foreach (var document in documents)
            await pending.AddAsync(new ReadResult(document, null), document.SourceId, cancellationToken);
        await pending.FlushAsync(cancellationToken);
        await store.FlushAsync(cancellationToken);
        report.ChunksEmbedded = pending.ChunksEmbedded;
        report.Elapsed = started.Elapsed;
        return report;
    }

    static IEnumerable<string> EnumerateFiles(string root, IngestReport report)
    {
        foreach (var (file, skipReason) in FileWalker.Walk(root))
        {
            if (skipReason is not null)
                report.Add(new IngestEntry(file, IngestOutcome.Skipped, skipReason));
            else if (FileReader.IsSupported(file))
                yield return file;
            else
                report.Add(new IngestEntry(file, IngestOutcome.Skipped, $"unsupported file type '{Path.GetExtension(file)}'"));
        }
    }

    /// <summary>Documents read and chunked, waiting for one batched embedding call.</summary>
    sealed class Pending(Ingestor owner, IngestReport report, int? total, System.Diagnostics.Stopwatch clock)
    {
        readonly List<(SourceDocument Document, IReadOnlyList<TextChunk> Chunks, bool Existed)> documents = [];
        int chunkCount;
        int done;

        public int ChunksEmbedded { get; private set; }

        public async Task AddAsync(ReadResult result, string source, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (result.Document is not { } document)
            {
                Handled(new IngestEntry(source, IngestOutcome.Skipped, result.SkipReason));
                return;
            }
            string? storedHash = await owner.store.GetDocumentHashAsync(document.SourceId, cancellationToken);
            if (storedHash == document.ContentHash)
            {
                Handled(new IngestEntry(document.SourceId, IngestOutcome.Unchanged));
                return;
            }
            var chunks = owner.chunker.Split(document.Text, document.Kind is "markdown" or "html" or "code");
            if (chunks.Count == 0)
            {
                Handled(new IngestEntry(document.SourceId, IngestOutcome.Skipped, "no text content"));
                return;
            }
            documents.Add((document, chunks, storedHash is not null));
            chunkCount += chunks.Count;
            if (chunkCount >= owner.options.EmbeddingBatch)
                await FlushAsync(cancellationToken);
        }

        public async Task FlushAsync(CancellationToken cancellationToken)
        {
            if (documents.Count == 0)
                return;
            var texts = documents.SelectMany(item => item.Chunks.Select(chunk => chunk.EmbeddingText)).ToList();
            var embeddings = await owner.embedder.GenerateAsync(texts, cancellationToken: cancellationToken);
            if (embeddings.Count != texts.Count)
                throw new InvalidOperationException($"the embedder returned {embeddings.Count} embeddings for {texts.Count} texts");
            ChunksEmbedded += texts.Count;
            int next = 0;
            // Embeddings in hand are stored even when cancellation arrives meanwhile (writes take milliseconds,
            // embedding took seconds), so a resumed run never embeds these documents again.
            foreach (var (document, chunks, existed) in documents)
            {
                var embedded = chunks.Select(chunk => new EmbeddedChunk(chunk, embeddings[next++].Vector)).ToList();
                await owner.store.UpsertDocumentAsync(document, embedded, CancellationToken.None);
                Handled(new IngestEntry(document.SourceId, existed ? IngestOutcome.Updated : IngestOutcome.Added, null, chunks.Count), tell: false);
            }
            // One report per stored batch: the documents of a batch are all done at the same moment.
            owner.options.Progress?.Report(new IngestProgress(done, total, clock.Elapsed));
            documents.Clear();
            chunkCount = 0;
        }

        void Handled(IngestEntry entry, bool tell = true)
        {
            report.Add(entry);
            done++;
            if (tell)
                owner.options.Progress?.Report(new IngestProgress(done, total, clock.Elapsed));
        }
    }
}
