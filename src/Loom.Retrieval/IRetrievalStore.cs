namespace Loom.Retrieval;

/// <summary>
/// Where documents, chunks and their embeddings live. Every implementation runs the same
/// contract tests (tests/Loom.Tests/Retrieval/RetrievalStoreContract.cs).
/// Writes are per document and atomic: a document's old chunks disappear and its new chunks
/// appear in one transaction, so an interrupted ingestion never leaves half a document.
/// </summary>
public interface IRetrievalStore : IDisposable
{
    /// <summary>Embedding width the store was created with.</summary>
    int Dimensions { get; }

    /// <summary>The stored content hash of a document, or null when the store lacks it.</summary>
    Task<string?> GetDocumentHashAsync(string sourceId, CancellationToken cancellationToken);

    /// <summary>All stored documents whose source id starts with sourcePrefix (all when null).</summary>
    Task<IReadOnlyList<StoredDocument>> ListDocumentsAsync(string? sourcePrefix, CancellationToken cancellationToken);

    /// <summary>Replaces the document (and all its chunks) in one transaction.</summary>
    Task UpsertDocumentAsync(SourceDocument document, IReadOnlyList<EmbeddedChunk> chunks, CancellationToken cancellationToken);

    /// <summary>Removes the document and its chunks; false when it was not stored.</summary>
    Task<bool> DeleteDocumentAsync(string sourceId, CancellationToken cancellationToken);

    /// <summary>Full-text search ranked by BM25 (SQLite FTS5) or ts_rank (PostgreSQL); any query word may match.</summary>
    Task<IReadOnlyList<SearchHit>> SearchTextAsync(string query, int top, SearchFilter? filter, CancellationToken cancellationToken);

    /// <summary>Nearest chunks by cosine similarity (HNSW index); Score is the cosine similarity.</summary>
    Task<IReadOnlyList<SearchHit>> SearchVectorAsync(ReadOnlyMemory<float> query, int top, SearchFilter? filter, CancellationToken cancellationToken);

    /// <summary>Documents and chunks matching the filter (everything when null).</summary>
    Task<StoreCounts> CountAsync(SearchFilter? filter, CancellationToken cancellationToken);

    /// <summary>Saves the vector index next to the store so the next open need not repair it.</summary>
    Task FlushAsync(CancellationToken cancellationToken);
}
