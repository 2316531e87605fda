using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

public enum SearchMode { Bm25, Vector, Hybrid }

/// <summary>Search settings; null filter means everything.</summary>
/// <param name="Top">How many results to return.</param>
/// <param name="RrfK">Reciprocal-rank-fusion constant: score = sum over lists of weight / (k + rank); a small k lets the top ranks count most.</param>
/// <param name="CandidatesPerList">How deep each list goes before fusion (at least Top).</param>
/// <param name="TextWeight">Weight of the BM25 list in hybrid fusion.</param>
/// <param name="VectorWeight">Weight of the vector list in hybrid fusion. Above TextWeight because embeddings rank
/// paraphrased questions better than word overlap does; k 10 and weights 1:4 were chosen on half of the
/// dotnet-docs question set (bench retrieval-eval) and checked on the other half.</param>
public sealed record SearchOptions(SearchMode Mode = SearchMode.Hybrid, int Top = 5, SearchFilter? Filter = null, int RrfK = 10, int CandidatesPerList = 50,
    double TextWeight = 1.0, double VectorWeight = 4.0);

/// <summary>BM25, vector and hybrid (weighted reciprocal-rank fusion) search over one store.</summary>
public sealed class Retriever(IRetrievalStore store, IEmbeddingGenerator<string, Embedding<float>> embedder)
{
    public IRetrievalStore Store => store;

    public async Task<IReadOnlyList<SearchHit>> SearchAsync(string query, SearchOptions? options, CancellationToken cancellationToken)
    {
        options ??= new SearchOptions();
        switch (options.Mode)
        {
            case SearchMode.Bm25:
                return Staged(await store.SearchTextAsync(query, options.Top, options.Filter, cancellationToken), Bm25Stage);
            case SearchMode.Vector:
                return Staged(await store.SearchVectorAsync(await EmbedAsync(query, cancellationToken), options.Top, options.Filter, cancellationToken), VectorStage);
            default:
                int depth = Math.Max(options.Top, options.CandidatesPerList);
                // The query embedding (milliseconds of model time) runs on another thread while the
                // full-text search runs on this one; the vector search follows the embedding.
                var vectorTask = Task.Run(async () => await store.SearchVectorAsync(await EmbedAsync(query, cancellationToken), depth, options.Filter, cancellationToken), cancellationToken);
                var text = await store.SearchTextAsync(query, depth, options.Filter, cancellationToken);
                var vector = await vectorTask;
                return Fuse([text, vector], [options.TextWeight, options.VectorWeight], options.RrfK, options.Top, [Bm25Stage, VectorStage]);
        }
    }

    /// <summary>Stage name of the full-text list in <see cref="SearchHit.Stages"/>.</summary>
    public const string Bm25Stage = "bm25";

    /// <summary>Stage name of the vector list in <see cref="SearchHit.Stages"/>.</summary>
    public const string VectorStage = "vector";

    static List<SearchHit> Staged(IReadOnlyList<SearchHit> hits, string stage) =>
        hits.Select((hit, index) => hit with { Stages = [new StageScore(stage, index + 1, hit.Score)] }).ToList();

    async Task<ReadOnlyMemory<float>> EmbedAsync(string query, CancellationToken cancellationToken)
    {
        var embeddings = await embedder.GenerateAsync([query], cancellationToken: cancellationToken);
        return embeddings[0].Vector;
    }

    /// <summary>Reciprocal-rank fusion: each list adds 1 / (k + rank) (rank from 1) to a chunk's score.</summary>
    public static IReadOnlyList<SearchHit> Fuse(IReadOnlyList<IReadOnlyList<SearchHit>> lists, int k, int top) =>
        Fuse(lists, lists.Select(_ => 1.0).ToList(), k, top);

    /// <summary>
    /// Weighted reciprocal-rank fusion: list i adds weights[i] / (k + rank) (rank from 1) to a chunk's
    /// score; ties go to the lower chunk id. Scores of the returned hits are the fused scores; when stage names
    /// are given (one per list), each hit's <see cref="SearchHit.Stages"/> holds its rank and score in every list that had it.
    /// </summary>
    public static IReadOnlyList<SearchHit> Fuse(IReadOnlyList<IReadOnlyList<SearchHit>> lists, IReadOnlyList<double> weights, int k, int top,
        IReadOnlyList<string>? stages = null)
    {
        if (weights.Count != lists.Count)
            throw new ArgumentException($"{lists.Count} lists but {weights.Count} weights", nameof(weights));
        if (stages is not null && stages.Count != lists.Count)
            throw new ArgumentException($"{lists.Count} lists but {stages.Count} stage names", nameof(stages));
        var scores = new Dictionary<long, (SearchHit Hit, double Score, List<StageScore> Stages)>();
        for (int list = 0; list < lists.Count; list++)
        {
            for (int rank = 0; rank < lists[list].Count; rank++)
            {
                var hit = lists[list][rank];
                double add = weights[list] / (k + rank + 1);
                var (first, score, ranked) = scores.TryGetValue(hit.ChunkId, out var existing) ? existing : (hit, 0.0, new List<StageScore>());
                if (stages is not null)
                    ranked.Add(new StageScore(stages[list], rank + 1, hit.Score));
                scores[hit.ChunkId] = (first, score + add, ranked);
            }
        }
        return scores.Values
            .OrderByDescending(item => item.Score)
            .ThenBy(item => item.Hit.ChunkId)
            .Take(top)
            .Select(item => item.Hit with { Score = item.Score, Stages = stages is null ? item.Hit.Stages : item.Stages })
            .ToList();
    }
}
