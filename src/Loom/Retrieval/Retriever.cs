using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

public enum SearchMode { Bm25, Vector, Hybrid }

/// <summary>Search settings; null filter means everything.</summary>
/// <param name="Top">How many results to return.</param>
/// <param name="RrfK">Reciprocal-rank-fusion constant: score = sum over lists of 1 / (k + rank).</param>
/// <param name="CandidatesPerList">How deep each list goes before fusion (at least Top).</param>
public sealed record SearchOptions(SearchMode Mode = SearchMode.Hybrid, int Top = 5, SearchFilter? Filter = null, int RrfK = 60, int CandidatesPerList = 20);

/// <summary>BM25, vector and hybrid (reciprocal-rank fusion) search over one store.</summary>
public sealed class Retriever(IRetrievalStore store, IEmbeddingGenerator<string, Embedding<float>> embedder)
{
    public IRetrievalStore Store => store;

    public async Task<IReadOnlyList<SearchHit>> SearchAsync(string query, SearchOptions? options, CancellationToken cancellationToken)
    {
        options ??= new SearchOptions();
        switch (options.Mode)
        {
            case SearchMode.Bm25:
                return await store.SearchTextAsync(query, options.Top, options.Filter, cancellationToken);
            case SearchMode.Vector:
                return await store.SearchVectorAsync(await EmbedAsync(query, cancellationToken), options.Top, options.Filter, cancellationToken);
            default:
                int depth = Math.Max(options.Top, options.CandidatesPerList);
                var vectorTask = EmbedAsync(query, cancellationToken);
                var text = await store.SearchTextAsync(query, depth, options.Filter, cancellationToken);
                var vector = await store.SearchVectorAsync(await vectorTask, depth, options.Filter, cancellationToken);
                return Fuse([text, vector], options.RrfK, options.Top);
        }
    }

    async Task<ReadOnlyMemory<float>> EmbedAsync(string query, CancellationToken cancellationToken)
    {
        var embeddings = await embedder.GenerateAsync([query], cancellationToken: cancellationToken);
        return embeddings[0].Vector;
    }

    /// <summary>Reciprocal-rank fusion: each list adds 1 / (k + rank) (rank from 1) to a chunk's score.</summary>
    public static IReadOnlyList<SearchHit> Fuse(IReadOnlyList<IReadOnlyList<SearchHit>> lists, int k, int top)
    {
        var scores = new Dictionary<long, (SearchHit Hit, double Score)>();
        foreach (var list in lists)
        {
            for (int rank = 0; rank < list.Count; rank++)
            {
                var hit = list[rank];
                double add = 1.0 / (k + rank + 1);
                scores[hit.ChunkId] = scores.TryGetValue(hit.ChunkId, out var existing) ? (existing.Hit, existing.Score + add) : (hit, add);
            }
        }
        return scores.Values
            .OrderByDescending(item => item.Score)
            .ThenBy(item => item.Hit.ChunkId)
            .Take(top)
            .Select(item => item.Hit with { Score = item.Score })
            .ToList();
    }
}
