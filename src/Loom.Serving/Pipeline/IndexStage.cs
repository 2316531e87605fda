using System.Diagnostics;
using Loom.Retrieval;

namespace Loom.Serving.Pipeline;

/// <summary>How documents go into the retrieval index inside a pipeline; null means the default.</summary>
public sealed record IndexStageOptions
{
    /// <summary>Wall-clock budget: no further document is taken once it is spent. Null: no budget.</summary>
    public TimeSpan? TimeBudget { get; init; }
    /// <summary>The first this many documents are ingested even past the budget; null: none.</summary>
    public int? AlwaysIngest { get; init; }
    /// <summary>Chunking and file limits; null: the ingestor's defaults.</summary>
    public IngestOptions? Ingest { get; init; }
}

/// <summary>What went into the index.</summary>
/// <param name="Report">Per-document outcomes and timings.</param>
/// <param name="DocumentsAdded">Documents added.</param>
/// <param name="ChunksEmbedded">Chunks embedded.</param>
public sealed record IndexStageResult(IngestReport Report, int DocumentsAdded, int ChunksEmbedded);

/// <summary>Stage 5: chunk, embed and store documents in an open retrieval index.</summary>
public static class IndexStage
{
    public static async Task<IndexStageResult> RunAsync(RetrievalIndex index, IEnumerable<SourceDocument> documents, IndexStageOptions? options = null,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new IndexStageOptions();
        var ingestor = new Ingestor(index.Store, index.Embedder, options.Ingest);
        var clock = Stopwatch.StartNew();
        int always = options.AlwaysIngest ?? 0;
        var taken = options.TimeBudget is { } budget ? documents.TakeWhile((_, i) => i < always || clock.Elapsed < budget) : documents;
        var report = await ingestor.IngestDocumentsAsync(taken, cancellationToken);
        progress?.Report($"{report.Count(IngestOutcome.Added):N0} documents, {report.ChunksEmbedded:N0} chunks embedded in {report.Elapsed.TotalSeconds:F1} s " +
            $"({report.ChunksEmbedded / Math.Max(0.001, report.Elapsed.TotalSeconds):F0} chunks/s)");
        return new IndexStageResult(report, report.Count(IngestOutcome.Added), report.ChunksEmbedded);
    }
}
