using System.Data.Common;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Loom.Retrieval;

/// <summary>
/// The embedded default store: one SQLite file (documents, chunks, FTS5 for BM25) and a USearch
/// HNSW index saved beside it (<c>file.db.usearch</c>). The index is brought in step with the
/// database on open and before each vector search, so a crash between a commit and an index
/// save loses nothing.
/// </summary>
public sealed class SqliteRetrievalStore : IRetrievalStore, IVectorIndexSource
{
    readonly SqliteConnection connection;
    readonly VectorIndexSync vectors;
    readonly SemaphoreSlim gate = new(1, 1);

    public int Dimensions { get; }

    /// <summary>Vectors in this process's HNSW index (equals the chunk count once in step).</summary>
    public long VectorCount => vectors.Count;

    /// <summary>Where the database lives.</summary>
    public string DatabasePath { get; }

    SqliteRetrievalStore(string databasePath, SqliteConnection connection, int dimensions, VectorIndex vectors)
    {
        DatabasePath = databasePath;
        this.connection = connection;
        Dimensions = dimensions;
        this.vectors = new VectorIndexSync(vectors, this);
    }

    /// <summary>Opens (creating when missing) the store; the vector index is repaired from the database.</summary>
    public static SqliteRetrievalStore Open(string databasePath, int dimensions)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(databasePath))!);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString());
        connection.Open();
        Execute(connection, """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            PRAGMA busy_timeout=30000;
            CREATE TABLE IF NOT EXISTS store_state(id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, dimensions INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS documents(
                id INTEGER PRIMARY KEY, source_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, kind TEXT NOT NULL,
                content_hash TEXT NOT NULL, tags TEXT NOT NULL, metadata TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS document_tags(document_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(document_id, key));
            CREATE INDEX IF NOT EXISTS document_tags_key_value ON document_tags(key, value);
            CREATE TABLE IF NOT EXISTS chunks(
                id INTEGER PRIMARY KEY AUTOINCREMENT, document_id INTEGER NOT NULL, ordinal INTEGER NOT NULL,
                heading TEXT NOT NULL, text TEXT NOT NULL, token_count INTEGER NOT NULL, embedding BLOB NOT NULL, generation INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
            CREATE INDEX IF NOT EXISTS chunks_generation ON chunks(generation);
            CREATE TABLE IF NOT EXISTS chunk_tombstones(chunk_id INTEGER NOT NULL, generation INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS chunk_tombstones_generation ON chunk_tombstones(generation);
            CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(heading, text, content='chunks', content_rowid='id', tokenize='porter unicode61');
            INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(0.5, 1.0)');
            CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
                INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text);
            END;
            CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
                INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) VALUES ('delete', old.id, old.heading, old.text);
            END;
            """);
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "INSERT OR IGNORE INTO store_state(id, generation, dimensions) VALUES (1, 0, $dimensions); SELECT dimensions FROM store_state WHERE id = 1;";
            command.Parameters.AddWithValue("$dimensions", dimensions);
            long stored = (long)command.ExecuteScalar()!;
            if (stored != dimensions)
            {
                connection.Dispose();
                throw new InvalidDataException($"{databasePath}: the index holds {stored}-dimensional embeddings, the embedder makes {dimensions}");
            }
        }
        var vectors = VectorIndex.Open(databasePath + ".usearch", dimensions);
        var store = new SqliteRetrievalStore(databasePath, connection, dimensions, vectors);
        // Microsoft.Data.Sqlite completes its async methods synchronously, so waiting here cannot deadlock.
        store.vectors.SyncAsync(default).GetAwaiter().GetResult();
        return store;
    }

    static void Execute(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    async Task IVectorIndexSource.ReadSnapshotAsync(Func<DbTransaction, Task> read, CancellationToken cancellationToken)
    {
        // A deferred transaction reads one snapshot of the WAL database from its first statement on.
        using var transaction = connection.BeginTransaction(deferred: true);
        await read(transaction);
    }

    string IVectorIndexSource.Table(string name) => name;

    float[] IVectorIndexSource.ReadEmbedding(DbDataReader reader, int ordinal) =>
        MemoryMarshal.Cast<byte, float>((byte[])reader.GetValue(ordinal)).ToArray();

    DbCommand IVectorIndexSource.FetchChunks(IReadOnlyCollection<long> ids, SearchFilter? filter)
    {
        var command = connection.CreateCommand();
        string filterSql = FilterSql(filter, command);
        command.CommandText = $"""
            SELECT c.id, d.source_id, d.title, c.heading, c.text, d.tags
            FROM chunks c JOIN documents d ON d.id = c.document_id
            WHERE c.id IN (SELECT value FROM json_each($ids)){filterSql}
            """;
        command.Parameters.AddWithValue("$ids", JsonSerializer.Serialize(ids));
        return command;
    }

    long ScalarLong(string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar());
    }

    public async Task<string?> GetDocumentHashAsync(string sourceId, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT content_hash FROM documents WHERE source_id = $source";
            command.Parameters.AddWithValue("$source", sourceId);
            return command.ExecuteScalar() as string;
        }
        finally { gate.Release(); }
    }

    public async Task<IReadOnlyList<StoredDocument>> ListDocumentsAsync(string? sourcePrefix, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT source_id, content_hash FROM documents WHERE $prefix IS NULL OR substr(source_id, 1, length($prefix)) = $prefix ORDER BY source_id";
            command.Parameters.AddWithValue("$prefix", (object?)sourcePrefix ?? DBNull.Value);
            using var reader = command.ExecuteReader();
            var result = new List<StoredDocument>();
            while (reader.Read())
                result.Add(new StoredDocument(reader.GetString(0), reader.GetString(1)));
            return result;
        }
        finally { gate.Release(); }
    }

    public async Task UpsertDocumentAsync(SourceDocument document, IReadOnlyList<EmbeddedChunk> chunks, CancellationToken cancellationToken)
    {
        vectors.RequireWidth(document, chunks);
        await gate.WaitAsync(cancellationToken);
        try
        {
            using (var transaction = connection.BeginTransaction(deferred: false))
            {
                long generation = NextGeneration(transaction);
                long? existing = RemoveDocumentContent(document.SourceId, generation, transaction);
                long documentId;
                using (var command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText = existing is null
                        ? "INSERT INTO documents(source_id, title, kind, content_hash, tags, metadata, updated_at) VALUES ($source, $title, $kind, $hash, $tags, $metadata, $updated) RETURNING id"
                        : "UPDATE documents SET title = $title, kind = $kind, content_hash = $hash, tags = $tags, metadata = $metadata, updated_at = $updated WHERE source_id = $source RETURNING id";
                    command.Parameters.AddWithValue("$source", document.SourceId);
                    command.Parameters.AddWithValue("$title", document.Title);
                    command.Parameters.AddWithValue("$kind", document.Kind);
                    command.Parameters.AddWithValue("$hash", document.ContentHash);
                    command.Parameters.AddWithValue("$tags", JsonSerializer.Serialize(document.Tags));
                    command.Parameters.AddWithValue("$metadata", JsonSerializer.Serialize(document.Metadata));
                    command.Parameters.AddWithValue("$updated", DateTime.UtcNow.ToString("O"));
                    documentId = Convert.ToInt64(command.ExecuteScalar());
                }
                using (var command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText = "INSERT INTO document_tags(document_id, key, value) VALUES ($document, $key, $value)";
                    var key = command.Parameters.Add("$key", SqliteType.Text);
                    var value = command.Parameters.Add("$value", SqliteType.Text);
                    command.Parameters.AddWithValue("$document", documentId);
                    foreach (var (tagKey, tagValue) in document.Tags)
                    {
                        key.Value = tagKey;
                        value.Value = tagValue;
                        command.ExecuteNonQuery();
                    }
                }
                using (var command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText = "INSERT INTO chunks(document_id, ordinal, heading, text, token_count, embedding, generation) VALUES ($document, $ordinal, $heading, $text, $tokens, $embedding, $generation)";
                    command.Parameters.AddWithValue("$document", documentId);
                    command.Parameters.AddWithValue("$generation", generation);
                    var ordinal = command.Parameters.Add("$ordinal", SqliteType.Integer);
                    var heading = command.Parameters.Add("$heading", SqliteType.Text);
                    var text = command.Parameters.Add("$text", SqliteType.Text);
                    var tokens = command.Parameters.Add("$tokens", SqliteType.Integer);
                    var embedding = command.Parameters.Add("$embedding", SqliteType.Blob);
                    foreach (var chunk in chunks)
                    {
                        ordinal.Value = chunk.Chunk.Ordinal;
                        heading.Value = chunk.Chunk.HeadingPath;
                        text.Value = chunk.Chunk.Text;
                        tokens.Value = chunk.Chunk.TokenCount;
                        embedding.Value = MemoryMarshal.AsBytes(chunk.Embedding.Span).ToArray();
                        command.ExecuteNonQuery();
                    }
                }
                transaction.Commit();
            }
        }
        finally { gate.Release(); }
    }

    long NextGeneration(SqliteTransaction transaction)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "UPDATE store_state SET generation = generation + 1 WHERE id = 1 RETURNING generation";
        return Convert.ToInt64(command.ExecuteScalar());
    }

    /// <summary>Deletes a document's tags and chunks (leaving tombstones); returns its row id, or null.</summary>
    long? RemoveDocumentContent(string sourceId, long generation, SqliteTransaction transaction)
    {
        long? documentId;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "SELECT id FROM documents WHERE source_id = $source";
            command.Parameters.AddWithValue("$source", sourceId);
            documentId = command.ExecuteScalar() is long id ? id : null;
        }
        if (documentId is null)
            return null;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = """
                INSERT INTO chunk_tombstones(chunk_id, generation) SELECT id, $generation FROM chunks WHERE document_id = $document;
                DELETE FROM chunks WHERE document_id = $document;
                DELETE FROM document_tags WHERE document_id = $document;
                """;
            command.Parameters.AddWithValue("$generation", generation);
            command.Parameters.AddWithValue("$document", documentId.Value);
            command.ExecuteNonQuery();
        }
        return documentId;
    }

    public async Task<bool> DeleteDocumentAsync(string sourceId, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            bool removed;
            using (var transaction = connection.BeginTransaction(deferred: false))
            {
                long generation = NextGeneration(transaction);
                long? documentId = RemoveDocumentContent(sourceId, generation, transaction);
                removed = documentId is not null;
                if (removed)
                {
                    using var command = connection.CreateCommand();
                    command.Transaction = transaction;
                    command.CommandText = "DELETE FROM documents WHERE id = $document";
                    command.Parameters.AddWithValue("$document", documentId!.Value);
                    command.ExecuteNonQuery();
                    transaction.Commit();
                }
            }
            return removed;
        }
        finally { gate.Release(); }
    }

    /// <summary>Appends " AND ..." conditions on documents aliased d.</summary>
    static string FilterSql(SearchFilter? filter, SqliteCommand command)
    {
        if (filter is null)
            return "";
        var sql = new StringBuilder();
        int index = 0;
        foreach (var (key, value) in filter.Tags ?? new Dictionary<string, string>())
        {
            sql.Append($" AND EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id AND t.key = $tagKey{index} AND t.value = $tagValue{index})");
            command.Parameters.AddWithValue($"$tagKey{index}", key);
            command.Parameters.AddWithValue($"$tagValue{index}", value);
            index++;
        }
        if (!string.IsNullOrEmpty(filter.SourcePrefix))
        {
            sql.Append(" AND substr(d.source_id, 1, length($sourcePrefix)) = $sourcePrefix");
            command.Parameters.AddWithValue("$sourcePrefix", filter.SourcePrefix);
        }
        return sql.ToString();
    }

    readonly PostingBudget postingBudget = new();

    /// <summary>Postings a full-text query may read (<see cref="PostingBudget"/>); long.MaxValue keeps every word.</summary>
    public long QueryPostingBudget { get => postingBudget.Budget; set => postingBudget.Budget = value; }

    Task<IReadOnlyList<string>> RarestTermsAsync(IReadOnlyList<string> words) =>
        postingBudget.ChooseAsync(words, ScalarLong("SELECT generation FROM store_state WHERE id = 1"),
            () => Task.FromResult(ScalarLong("SELECT count(*) FROM chunks")),
            word =>
            {
                using var command = connection.CreateCommand();
                command.CommandText = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH $word";
                command.Parameters.AddWithValue("$word", "\"" + word + "\"");
                return Task.FromResult(Convert.ToInt64(command.ExecuteScalar()));
            });

    public async Task<IReadOnlyList<SearchHit>> SearchTextAsync(string query, int top, SearchFilter? filter, CancellationToken cancellationToken)
    {
        var queryWords = QueryText.Words(query);
        if (queryWords.Count == 0 || top <= 0)
            return [];
        await gate.WaitAsync(cancellationToken);
        try
        {
            var words = await RarestTermsAsync(queryWords);
            if (words.Count == 0)
                return [];
            using var command = connection.CreateCommand();
            string filterSql = FilterSql(filter, command);
            // Without a filter, FTS5 picks the top rows by its rank column (bm25 with heading weight 0.5)
            // before the join, which is much faster than joining every match.
            command.CommandText = filter is null
                ? """
                  WITH top AS (SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH $query ORDER BY rank LIMIT $top)
                  SELECT c.id, d.source_id, d.title, c.heading, c.text, d.tags, top.rank
                  FROM top JOIN chunks c ON c.id = top.rowid JOIN documents d ON d.id = c.document_id
                  ORDER BY top.rank
                  """
                : $"""
                  SELECT c.id, d.source_id, d.title, c.heading, c.text, d.tags, chunks_fts.rank
                  FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
                  WHERE chunks_fts MATCH $query{filterSql}
                  ORDER BY chunks_fts.rank LIMIT $top
                  """;
            command.Parameters.AddWithValue("$query", string.Join(" OR ", words.Select(word => "\"" + word + "\"")));
            command.Parameters.AddWithValue("$top", top);
            using var reader = command.ExecuteReader();
            var hits = new List<SearchHit>();
            while (reader.Read())
                hits.Add(SearchHit.Read(reader, -reader.GetDouble(6)));
            return hits;
        }
        finally { gate.Release(); }
    }

    public async Task<IReadOnlyList<SearchHit>> SearchVectorAsync(ReadOnlyMemory<float> query, int top, SearchFilter? filter, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            return await vectors.SearchAsync(query, top, filter, cancellationToken);
        }
        finally { gate.Release(); }
    }

    public async Task<StoreCounts> CountAsync(SearchFilter? filter, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            using var command = connection.CreateCommand();
            string filterSql = FilterSql(filter, command);
            command.CommandText = $"""
                SELECT (SELECT count(*) FROM documents d WHERE 1 = 1{filterSql}),
                       (SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE 1 = 1{filterSql})
                """;
            using var reader = command.ExecuteReader();
            reader.Read();
            return new StoreCounts(reader.GetInt64(0), reader.GetInt64(1));
        }
        finally { gate.Release(); }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            long saved = await vectors.FlushAsync(cancellationToken);
            // The saved index holds these removals; an index older than it replays missing chunks
            // from the chunks table and finds any it still holds gone when it fetches them.
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM chunk_tombstones WHERE generation <= $generation";
            command.Parameters.AddWithValue("$generation", saved);
            command.ExecuteNonQuery();
        }
        finally { gate.Release(); }
    }

    public void Dispose()
    {
        vectors.Dispose();
        connection.Dispose();
        gate.Dispose();
    }
}
