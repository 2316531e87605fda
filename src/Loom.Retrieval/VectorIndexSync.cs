using System.Data.Common;

namespace Loom.Retrieval;

/// <summary>
/// What a database store gives its <see cref="VectorIndexSync"/>: a consistent read of its tables
/// (store_state, chunk_tombstones, chunks) and the rows of chunks found in the vector index.
/// </summary>
internal interface IVectorIndexSource
{
    /// <summary>Runs read inside one transaction that sees a single committed state of the store.</summary>
    Task ReadSnapshotAsync(Func<DbTransaction, Task> read, CancellationToken cancellationToken);

    /// <summary>The table as the store's SQL names it ("chunks", or "schema.chunks").</summary>
    string Table(string name);

    /// <summary>The embedding in column ordinal of a chunks row.</summary>
    float[] ReadEmbedding(DbDataReader reader, int ordinal);

    /// <summary>
    /// A command selecting c.id, d.source_id, d.title, c.heading, c.text, d.tags (the columns of
    /// <see cref="SearchHit.Read"/>) of the chunks with these ids whose documents pass the filter.
    /// </summary>
    DbCommand FetchChunks(IReadOnlyCollection<long> ids, SearchFilter? filter);
}

/// <summary>
/// The part both database stores share: this process's <see cref="VectorIndex"/> kept in step with
/// the database, and vector search over it. Every write bumps the store's generation; chunks carry
/// the generation that added them and removed chunk ids stay as tombstones with theirs, so an index
/// that is behind (another process wrote, or this one crashed before saving) replays only what
/// changed since its generation, and a missing index replays everything.
/// </summary>
internal sealed class VectorIndexSync : IDisposable
{
    /// <summary>Chunks read per <see cref="VectorIndex.Add"/> while replaying.</summary>
    const int ReplayBatch = 1024;

    readonly VectorIndex vectors;
    readonly IVectorIndexSource source;
    readonly SemaphoreSlim gate = new(1, 1);

    public VectorIndexSync(VectorIndex vectors, IVectorIndexSource source)
    {
        this.vectors = vectors;
        this.source = source;
    }

    public int Dimensions => vectors.Dimensions;

    /// <summary>Vectors in the index (equals the chunk count once in step).</summary>
    public long Count => vectors.Count;

    /// <summary>Throws when a chunk's embedding is not as wide as the store's.</summary>
    public void RequireWidth(SourceDocument document, IReadOnlyList<EmbeddedChunk> chunks)
    {
        foreach (var chunk in chunks)
            if (chunk.Embedding.Length != Dimensions)
                throw new InvalidDataException($"{document.SourceId}: chunk {chunk.Chunk.Ordinal} has a {chunk.Embedding.Length}-dimensional embedding, the store holds {Dimensions}");
    }

    /// <summary>Replays the chunks added and removed since the index's generation (all of them when the store is behind the index).</summary>
    public async Task SyncAsync(CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            await source.ReadSnapshotAsync(transaction => ReplayAsync(transaction, cancellationToken), cancellationToken);
        }
        finally { gate.Release(); }
    }

    /// <summary>Brings the index in step and saves it; returns the generation it was saved at.</summary>
    public async Task<long> FlushAsync(CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            await source.ReadSnapshotAsync(transaction => ReplayAsync(transaction, cancellationToken), cancellationToken);
            vectors.Save();
            return vectors.Generation;
        }
        finally { gate.Release(); }
    }

    async Task ReplayAsync(DbTransaction transaction, CancellationToken cancellationToken)
    {
        long current;
        await using (var command = Command(transaction, $"SELECT generation FROM {source.Table("store_state")} WHERE id = 1"))
            current = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken));
        if (current == vectors.Generation)
            return;
        // A store older than the index was recreated: start over.
        if (current < vectors.Generation)
            vectors.Reset();
        long since = vectors.Generation;
        var removed = new List<long>();
        await using (var command = Command(transaction, $"SELECT chunk_id FROM {source.Table("chunk_tombstones")} WHERE generation > @since AND generation <= @current", ("@since", since), ("@current", current)))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
                removed.Add(reader.GetInt64(0));
        }
        vectors.Remove(removed);
        await using (var command = Command(transaction, $"SELECT id, embedding FROM {source.Table("chunks")} WHERE generation > @since AND generation <= @current", ("@since", since), ("@current", current)))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            var batch = new List<(long, float[])>(ReplayBatch);
            while (await reader.ReadAsync(cancellationToken))
            {
                batch.Add((reader.GetInt64(0), source.ReadEmbedding(reader, 1)));
                if (batch.Count == ReplayBatch)
                {
                    vectors.Add(batch);
                    batch.Clear();
                }
            }
            vectors.Add(batch);
        }
        vectors.MarkGeneration(current);
    }

    /// <summary>A command in the snapshot; both providers bind @name parameters.</summary>
    static DbCommand Command(DbTransaction transaction, string sql, params (string Name, long Value)[] parameters)
    {
        var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value;
            command.Parameters.Add(parameter);
        }
        return command;
    }

    /// <summary>
    /// Nearest chunks by cosine similarity that pass the filter, best first. The index knows no tags
    /// and may still hold chunks another process deleted, so it is asked for more than top (8 times
    /// more under a filter) and asked again, 4 times deeper, until top chunks survive the database.
    /// </summary>
    public async Task<IReadOnlyList<SearchHit>> SearchAsync(ReadOnlyMemory<float> query, int top, SearchFilter? filter, CancellationToken cancellationToken)
    {
        if (query.Length != Dimensions)
            throw new ArgumentException($"query has {query.Length} dimensions, the store holds {Dimensions}", nameof(query));
        if (top <= 0)
            return [];
        await SyncAsync(cancellationToken);
        float[] vector = query.ToArray();
        long indexed = vectors.Count;
        int candidates = filter is null ? top : top * 8;
        while (true)
        {
            var nearest = vectors.Search(vector, candidates);
            var hits = await FetchAsync(nearest, filter, cancellationToken);
            if (hits.Count >= top || candidates >= indexed)
                return hits.Take(top).ToList();
            candidates = (int)Math.Min(indexed, (long)candidates * 4);
        }
    }

    async Task<List<SearchHit>> FetchAsync(IReadOnlyList<(long Key, float Similarity)> nearest, SearchFilter? filter, CancellationToken cancellationToken)
    {
        if (nearest.Count == 0)
            return [];
        var similarity = nearest.ToDictionary(pair => pair.Key, pair => pair.Similarity);
        await using var command = source.FetchChunks(similarity.Keys, filter);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var hits = new List<SearchHit>(nearest.Count);
        while (await reader.ReadAsync(cancellationToken))
            hits.Add(SearchHit.Read(reader, similarity[reader.GetInt64(0)]));
        hits.Sort((left, right) => right.Score.CompareTo(left.Score));
        return hits;
    }

    public void Dispose()
    {
        vectors.Dispose();
        gate.Dispose();
    }
}
