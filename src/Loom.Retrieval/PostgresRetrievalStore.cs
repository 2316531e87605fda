using System.Data;
using System.Data.Common;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using NpgsqlTypes;

namespace Loom.Retrieval;

/// <summary>
/// The scale-out store: documents and chunks in PostgreSQL (tsvector full-text search (ts_rank) with a GIN
/// index, embeddings as real[]), shared by many Loom processes. pgvector is not packaged for
/// Debian 12, so each process keeps its own USearch index (a local file) in step with the
/// database: writers bump a generation counter under a row lock, chunks and tombstones carry the
/// generation that wrote them, and before each vector search the process replays what changed.
/// Tombstones are kept (two integers per removed chunk) so that any process can catch up.
/// </summary>
public sealed partial class PostgresRetrievalStore : IRetrievalStore, IVectorIndexSource
{
    readonly NpgsqlDataSource dataSource;
    readonly string schema;
    readonly VectorIndexSync vectors;

    public int Dimensions { get; }

    /// <summary>Vectors in this process's HNSW index (equals the chunk count once in step).</summary>
    public long VectorCount => vectors.Count;

    PostgresRetrievalStore(NpgsqlDataSource dataSource, string schema, int dimensions, VectorIndex vectors)
    {
        this.dataSource = dataSource;
        this.schema = schema;
        Dimensions = dimensions;
        this.vectors = new VectorIndexSync(vectors, this);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaPattern();

    /// <summary>Opens (creating tables in schema when missing) the store; vectorIndexPath null keeps the index in memory.</summary>
    public static async Task<PostgresRetrievalStore> OpenAsync(string connectionString, int dimensions, string? vectorIndexPath, string schema, CancellationToken cancellationToken)
    {
        if (!SchemaPattern().IsMatch(schema))
            throw new ArgumentException($"schema '{schema}' must be lower-case letters, digits and underscores");
        var dataSource = NpgsqlDataSource.Create(connectionString);
        try
        {
            await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
            {
                await using (var command = connection.CreateCommand())
                {
                    // Two processes creating the same schema at once would race; an advisory lock serialises them.
                    command.CommandText = $"""
                        SELECT pg_advisory_lock(hashtext('loom-retrieval-{schema}'));
                        CREATE SCHEMA IF NOT EXISTS {schema};
                        CREATE TABLE IF NOT EXISTS {schema}.store_state(id int PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL, dimensions int NOT NULL);
                        CREATE TABLE IF NOT EXISTS {schema}.documents(
                            id bigserial PRIMARY KEY, source_id text NOT NULL UNIQUE, title text NOT NULL, kind text NOT NULL,
                            content_hash text NOT NULL, tags jsonb NOT NULL, metadata jsonb NOT NULL, updated_at timestamptz NOT NULL);
                        CREATE TABLE IF NOT EXISTS {schema}.document_tags(document_id bigint NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY(document_id, key));
                        CREATE INDEX IF NOT EXISTS document_tags_key_value ON {schema}.document_tags(key, value);
                        CREATE TABLE IF NOT EXISTS {schema}.chunks(
                            id bigserial PRIMARY KEY, document_id bigint NOT NULL, ordinal int NOT NULL, heading text NOT NULL, text text NOT NULL,
                            token_count int NOT NULL, embedding real[] NOT NULL, generation bigint NOT NULL,
                            tsv tsvector GENERATED ALWAYS AS (setweight(to_tsvector('english', heading), 'B') || to_tsvector('english', text)) STORED);
                        CREATE INDEX IF NOT EXISTS chunks_document ON {schema}.chunks(document_id);
                        CREATE INDEX IF NOT EXISTS chunks_generation ON {schema}.chunks(generation);
                        CREATE INDEX IF NOT EXISTS chunks_tsv ON {schema}.chunks USING gin(tsv);
                        CREATE TABLE IF NOT EXISTS {schema}.chunk_tombstones(chunk_id bigint NOT NULL, generation bigint NOT NULL);
                        CREATE INDEX IF NOT EXISTS chunk_tombstones_generation ON {schema}.chunk_tombstones(generation);
                        INSERT INTO {schema}.store_state(id, generation, dimensions) VALUES (1, 0, {dimensions}) ON CONFLICT (id) DO NOTHING;
                        SELECT pg_advisory_unlock(hashtext('loom-retrieval-{schema}'));
                        """;
                    await command.ExecuteNonQueryAsync(cancellationToken);
                }
                await using (var command = connection.CreateCommand())
                {
                    command.CommandText = $"SELECT dimensions FROM {schema}.store_state WHERE id = 1";
                    int stored = Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken));
                    if (stored != dimensions)
                        throw new InvalidDataException($"PostgreSQL schema {schema}: the store holds {stored}-dimensional embeddings, the embedder makes {dimensions}");
                }
            }
            var store = new PostgresRetrievalStore(dataSource, schema, dimensions, VectorIndex.Open(vectorIndexPath, dimensions));
            await store.vectors.SyncAsync(cancellationToken);
            return store;
        }
        catch
        {
            await dataSource.DisposeAsync();
            throw;
        }
    }

    /// <summary>Drops the schema and everything in it (tests and "start over").</summary>
    public static async Task DropAsync(string connectionString, string schema, CancellationToken cancellationToken)
    {
        if (!SchemaPattern().IsMatch(schema))
            throw new ArgumentException($"schema '{schema}' must be lower-case letters, digits and underscores");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS {schema} CASCADE");
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    async Task IVectorIndexSource.ReadSnapshotAsync(Func<DbTransaction, Task> read, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        await read(transaction);
    }

    string IVectorIndexSource.Table(string name) => $"{schema}.{name}";

    float[] IVectorIndexSource.ReadEmbedding(DbDataReader reader, int ordinal) => reader.GetFieldValue<float[]>(ordinal);

    DbCommand IVectorIndexSource.FetchChunks(IReadOnlyCollection<long> ids, SearchFilter? filter)
    {
        var command = dataSource.CreateCommand();
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        string filterSql = FilterSql(filter, command.Parameters);
        command.CommandText = $"""
            SELECT c.id, d.source_id, d.title, c.heading, c.text, d.tags::text
            FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
            WHERE c.id = ANY($1){filterSql}
            """;
        return command;
    }

    public async Task<string?> GetDocumentHashAsync(string sourceId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT content_hash FROM {schema}.documents WHERE source_id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = sourceId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    public async Task<IReadOnlyList<StoredDocument>> ListDocumentsAsync(string? sourcePrefix, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT source_id, content_hash FROM {schema}.documents WHERE $1::text IS NULL OR starts_with(source_id, $1::text) ORDER BY source_id");
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)sourcePrefix ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var result = new List<StoredDocument>();
        while (await reader.ReadAsync(cancellationToken))
            result.Add(new StoredDocument(reader.GetString(0), reader.GetString(1)));
        return result;
    }

    public async Task UpsertDocumentAsync(SourceDocument document, IReadOnlyList<EmbeddedChunk> chunks, CancellationToken cancellationToken)
    {
        vectors.RequireWidth(document, chunks);
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            long generation = await NextGenerationAsync(connection, transaction, cancellationToken);
            long? existing = await RemoveDocumentContentAsync(connection, transaction, document.SourceId, generation, cancellationToken);
            long documentId;
            string sql = existing is null
                ? $"INSERT INTO {schema}.documents(source_id, title, kind, content_hash, tags, metadata, updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, now()) RETURNING id"
                : $"UPDATE {schema}.documents SET title = $2, kind = $3, content_hash = $4, tags = $5::jsonb, metadata = $6::jsonb, updated_at = now() WHERE source_id = $1 RETURNING id";
            await using (var command = new NpgsqlCommand(sql, connection, transaction))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = document.SourceId });
                command.Parameters.Add(new NpgsqlParameter { Value = document.Title });
                command.Parameters.Add(new NpgsqlParameter { Value = document.Kind });
                command.Parameters.Add(new NpgsqlParameter { Value = document.ContentHash });
                command.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(document.Tags), NpgsqlDbType = NpgsqlDbType.Text });
                command.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(document.Metadata), NpgsqlDbType = NpgsqlDbType.Text });
                documentId = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken));
            }
            var batch = new NpgsqlBatch(connection, transaction);
            foreach (var (key, value) in document.Tags)
            {
                var command = new NpgsqlBatchCommand($"INSERT INTO {schema}.document_tags(document_id, key, value) VALUES ($1, $2, $3)");
                command.Parameters.Add(new NpgsqlParameter { Value = documentId });
                command.Parameters.Add(new NpgsqlParameter { Value = key });
                command.Parameters.Add(new NpgsqlParameter { Value = value });
                batch.BatchCommands.Add(command);
            }
            foreach (var chunk in chunks)
            {
                var command = new NpgsqlBatchCommand($"INSERT INTO {schema}.chunks(document_id, ordinal, heading, text, token_count, embedding, generation) VALUES ($1, $2, $3, $4, $5, $6, $7)");
                command.Parameters.Add(new NpgsqlParameter { Value = documentId });
                command.Parameters.Add(new NpgsqlParameter { Value = chunk.Chunk.Ordinal });
                command.Parameters.Add(new NpgsqlParameter { Value = chunk.Chunk.HeadingPath });
                command.Parameters.Add(new NpgsqlParameter { Value = chunk.Chunk.Text });
                command.Parameters.Add(new NpgsqlParameter { Value = chunk.Chunk.TokenCount });
                command.Parameters.Add(new NpgsqlParameter { Value = chunk.Embedding.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Real });
                command.Parameters.Add(new NpgsqlParameter { Value = generation });
                batch.BatchCommands.Add(command);
            }
            if (batch.BatchCommands.Count > 0)
                await batch.ExecuteNonQueryAsync(cancellationToken);
            await batch.DisposeAsync();
            await transaction.CommitAsync(cancellationToken);
        }
    }

    async Task<long> NextGenerationAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        // The row lock taken here serialises writers, so generations commit in order.
        await using var command = new NpgsqlCommand($"UPDATE {schema}.store_state SET generation = generation + 1 WHERE id = 1 RETURNING generation", connection, transaction);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken));
    }

    async Task<long?> RemoveDocumentContentAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sourceId, long generation, CancellationToken cancellationToken)
    {
        long? documentId;
        await using (var command = new NpgsqlCommand($"SELECT id FROM {schema}.documents WHERE source_id = $1", connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = sourceId });
            documentId = await command.ExecuteScalarAsync(cancellationToken) is long id ? id : null;
        }
        if (documentId is null)
            return null;
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var tombstones = new NpgsqlBatchCommand($"INSERT INTO {schema}.chunk_tombstones(chunk_id, generation) SELECT id, $2 FROM {schema}.chunks WHERE document_id = $1");
            tombstones.Parameters.Add(new NpgsqlParameter { Value = documentId.Value });
            tombstones.Parameters.Add(new NpgsqlParameter { Value = generation });
            var chunks = new NpgsqlBatchCommand($"DELETE FROM {schema}.chunks WHERE document_id = $1");
            chunks.Parameters.Add(new NpgsqlParameter { Value = documentId.Value });
            var tags = new NpgsqlBatchCommand($"DELETE FROM {schema}.document_tags WHERE document_id = $1");
            tags.Parameters.Add(new NpgsqlParameter { Value = documentId.Value });
            batch.BatchCommands.Add(tombstones);
            batch.BatchCommands.Add(chunks);
            batch.BatchCommands.Add(tags);
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
        return documentId;
    }

    public async Task<bool> DeleteDocumentAsync(string sourceId, CancellationToken cancellationToken)
    {
        bool removed;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            long generation = await NextGenerationAsync(connection, transaction, cancellationToken);
            long? documentId = await RemoveDocumentContentAsync(connection, transaction, sourceId, generation, cancellationToken);
            removed = documentId is not null;
            if (!removed)
                return false;
            await using (var command = new NpgsqlCommand($"DELETE FROM {schema}.documents WHERE id = $1", connection, transaction))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = documentId!.Value });
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            await transaction.CommitAsync(cancellationToken);
        }
        return true;
    }

    /// <summary>Appends " AND ..." conditions on documents aliased d; its parameters are numbered after those already in parameters.</summary>
    string FilterSql(SearchFilter? filter, NpgsqlParameterCollection parameters)
    {
        if (filter is null)
            return "";
        var sql = new StringBuilder();
        foreach (var (key, value) in filter.Tags ?? new Dictionary<string, string>())
        {
            parameters.Add(new NpgsqlParameter { Value = key });
            int keyIndex = parameters.Count;
            parameters.Add(new NpgsqlParameter { Value = value });
            sql.Append($" AND EXISTS (SELECT 1 FROM {schema}.document_tags t WHERE t.document_id = d.id AND t.key = ${keyIndex} AND t.value = ${keyIndex + 1})");
        }
        if (!string.IsNullOrEmpty(filter.SourcePrefix))
        {
            parameters.Add(new NpgsqlParameter { Value = filter.SourcePrefix });
            sql.Append($" AND starts_with(d.source_id, ${parameters.Count})");
        }
        return sql.ToString();
    }

    readonly PostingBudget postingBudget = new();

    /// <summary>Postings a full-text query may read (<see cref="PostingBudget"/>); long.MaxValue keeps every word.</summary>
    public long QueryPostingBudget { get => postingBudget.Budget; set => postingBudget.Budget = value; }

    async Task<long> ScalarAsync(string sql, string? word, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        if (word is not null)
            command.Parameters.Add(new NpgsqlParameter { Value = word });
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken));
    }

    public async Task<IReadOnlyList<SearchHit>> SearchTextAsync(string query, int top, SearchFilter? filter, CancellationToken cancellationToken)
    {
        var queryWords = QueryText.Words(query);
        if (queryWords.Count == 0 || top <= 0)
            return [];
        var words = await postingBudget.ChooseAsync(queryWords,
            await ScalarAsync($"SELECT generation FROM {schema}.store_state WHERE id = 1", null, cancellationToken),
            () => ScalarAsync($"SELECT count(*) FROM {schema}.chunks", null, cancellationToken),
            word => ScalarAsync($"SELECT count(*) FROM {schema}.chunks WHERE tsv @@ to_tsquery('english', $1)", word, cancellationToken));
        if (words.Count == 0)
            return [];
        await using var command = dataSource.CreateCommand();
        command.Parameters.Add(new NpgsqlParameter { Value = string.Join(" | ", words) });
        command.Parameters.Add(new NpgsqlParameter { Value = top });
        string filterSql = FilterSql(filter, command.Parameters);
        command.CommandText = $"""
            SELECT c.id, d.source_id, d.title, c.heading, c.text, d.tags::text, ts_rank(c.tsv, q.query, 1) AS rank
            FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id, to_tsquery('english', $1) AS q(query)
            WHERE c.tsv @@ q.query{filterSql}
            ORDER BY rank DESC, c.id LIMIT $2
            """;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var hits = new List<SearchHit>();
        while (await reader.ReadAsync(cancellationToken))
            hits.Add(SearchHit.Read(reader, reader.GetFloat(6)));
        return hits;
    }

    public Task<IReadOnlyList<SearchHit>> SearchVectorAsync(ReadOnlyMemory<float> query, int top, SearchFilter? filter, CancellationToken cancellationToken) =>
        vectors.SearchAsync(query, top, filter, cancellationToken);

    public async Task<StoreCounts> CountAsync(SearchFilter? filter, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand();
        string filterSql = FilterSql(filter, command.Parameters);
        command.CommandText = $"""
            SELECT (SELECT count(*) FROM {schema}.documents d WHERE true{filterSql}),
                   (SELECT count(*) FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id WHERE true{filterSql})
            """;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new StoreCounts(reader.GetInt64(0), reader.GetInt64(1));
    }

    public Task FlushAsync(CancellationToken cancellationToken) => vectors.FlushAsync(cancellationToken);

    public void Dispose()
    {
        vectors.Dispose();
        dataSource.Dispose();
    }
}
