using Loom.IO;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

/// <summary>What an index folder records about itself (index.json), so search uses the embedder that built it.</summary>
/// <param name="Embedder">Built-in embedder name ("minilm", "hashing").</param>
/// <param name="Dimensions">Embedding width.</param>
/// <param name="Store">"sqlite" (index.db in the folder) or "postgres".</param>
/// <param name="PostgresSchema">Schema holding the tables when Store is "postgres".</param>
public sealed record IndexManifest(string Embedder = Embedders.MiniLm, int Dimensions = MiniLmEmbeddingGenerator.Dimensions, string Store = "sqlite", string PostgresSchema = "loom");

/// <summary>
/// An index folder: index.json, and either index.db (+ index.db.usearch) or, for PostgreSQL,
/// the local vector index file vectors.usearch. Opening gives a store, its embedder and a retriever.
/// </summary>
public sealed class RetrievalIndex : IDisposable
{
    public const string ManifestFile = "index.json";

    public IndexManifest Manifest { get; }
    public IRetrievalStore Store { get; }
    public IEmbeddingGenerator<string, Embedding<float>> Embedder { get; }
    public Retriever Retriever { get; }

    RetrievalIndex(IndexManifest manifest, IRetrievalStore store, IEmbeddingGenerator<string, Embedding<float>> embedder)
    {
        Manifest = manifest;
        Store = store;
        Embedder = embedder;
        Retriever = new Retriever(store, embedder);
    }

    /// <summary>
    /// Opens the index folder. A new folder is created with the requested embedder and store; an
    /// existing one keeps what it was built with (asking for another embedder is an error).
    /// postgresConnection is needed whenever the store is PostgreSQL.
    /// </summary>
    public static async Task<RetrievalIndex> OpenAsync(string folder, string? embedder, string? postgresConnection, bool create, CancellationToken cancellationToken,
        IEmbeddingGenerator<string, Embedding<float>>? customEmbedder = null)
    {
        string manifestPath = Path.Combine(folder, ManifestFile);
        IndexManifest manifest;
        bool existed = File.Exists(manifestPath), folderExisted = Directory.Exists(folder);
        if (existed)
        {
            try
            {
                manifest = JsonSerializer.Deserialize<IndexManifest>(File.ReadAllText(manifestPath)) ?? throw new JsonException("empty");
            }
            catch (JsonException exception)
            {
                throw new InvalidDataException($"{manifestPath}: not a valid index manifest ({exception.Message})");
            }
            if (embedder is not null && embedder != manifest.Embedder)
                throw new InvalidDataException($"{folder}: the index was built with embedder '{manifest.Embedder}', not '{embedder}'");
        }
        else if (!create)
        {
            throw new FileNotFoundException($"{folder}: no index here (ingest documents into it first)");
        }
        else
        {
            string name = embedder ?? Embedders.MiniLm;
            manifest = new IndexManifest(name, Embedders.DimensionsOf(name), postgresConnection is null ? "sqlite" : "postgres");
            AtomicFile.WriteAllText(manifestPath, JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
        }
        string database = Path.Combine(folder, "index.db");
        // An existing index whose database is gone or empty would silently become a new empty index beside stale vectors.
        if (existed && manifest.Store == "sqlite" && (!File.Exists(database) || new FileInfo(database).Length == 0))
            throw new InvalidDataException($"{database}: the index database is {(File.Exists(database) ? "empty (0 bytes)" : "missing")}, though {manifestPath} describes an index; restore it or ingest into a new folder");
        // The embedder loads on another core while the store opens (MiniLM takes a few hundred milliseconds even from
        // its cached model: most of a `loom search` call).
        var embedderLoad = customEmbedder is not null ? Task.FromResult(customEmbedder) : Task.Run(() => Embedders.Create(manifest.Embedder), CancellationToken.None);
        IRetrievalStore store;
        try
        {
            store = await OpenStoreAsync(manifest, folder, postgresConnection, cancellationToken);
        }
        catch
        {
            if (customEmbedder is null) _ = embedderLoad.ContinueWith(load => load.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
            if (!existed)
            {
                // A new index whose store cannot be opened (PostgreSQL unreachable) leaves nothing behind.
                File.Delete(manifestPath);
                if (!folderExisted && !Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
            }
            throw;
        }
        try
        {
            return new RetrievalIndex(manifest, store, await embedderLoad);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    static async Task<IRetrievalStore> OpenStoreAsync(IndexManifest manifest, string folder, string? postgresConnection, CancellationToken cancellationToken)
    {
        IRetrievalStore store;
        if (manifest.Store == "postgres")
        {
            if (postgresConnection is null)
                throw new ArgumentException($"{folder}: the index lives in PostgreSQL; give its connection string (postgresConnection)");
            store = await PostgresRetrievalStore.OpenAsync(postgresConnection, manifest.Dimensions, Path.Combine(folder, "vectors.usearch"), manifest.PostgresSchema, cancellationToken);
        }
        else
        {
            store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), manifest.Dimensions);
        }
        return store;
    }

    public void Dispose()
    {
        Store.Dispose();
        Embedder.Dispose();
    }
}
