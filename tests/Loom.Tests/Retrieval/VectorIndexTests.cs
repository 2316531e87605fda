using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

public sealed class VectorIndexTests
{
    /// <summary>Unit vectors in clusters, so many neighbours are close (the hard case for HNSW).</summary>
    static List<(long Key, float[] Vector)> ClusteredVectors(int count, int dimensions, int seed)
    {
        var random = new Random(seed);
        var centres = Enumerable.Range(0, 20).Select(_ => Enumerable.Range(0, dimensions).Select(_ => (float)random.NextDouble() - 0.5f).ToArray()).ToList();
        var items = new List<(long, float[])>();
        for (int i = 0; i < count; i++)
        {
            var centre = centres[i % centres.Count];
            var vector = centre.Select(value => value + 0.15f * ((float)random.NextDouble() - 0.5f)).ToArray();
            float norm = MathF.Sqrt(vector.Sum(value => value * value));
            items.Add((i + 1, vector.Select(value => value / norm).ToArray()));
        }
        return items;
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void SearchReturnsTheExactNearestNeighboursBestFirst()
    {
        const int dimensions = 48;
        var items = ClusteredVectors(4000, dimensions, seed: 3);
        using var index = VectorIndex.Open(null, dimensions);
        index.Add(items);
        var queries = ClusteredVectors(40, dimensions, seed: 11);
        int found = 0;
        foreach (var (_, query) in queries)
        {
            var exact = items
                .Select(item => (item.Key, Similarity: item.Vector.Zip(query, (left, right) => left * right).Sum()))
                .OrderByDescending(item => item.Similarity)
                .Take(10)
                .ToList();
            var nearest = index.Search(query, 10);
            Assert.Equal(10, nearest.Count);
            for (int i = 1; i < nearest.Count; i++)
                Assert.True(nearest[i - 1].Similarity >= nearest[i].Similarity - 1e-6f, "results are not best first");
            foreach (var (key, similarity) in nearest)
                Assert.Equal(items[(int)key - 1].Vector.Zip(query, (left, right) => left * right).Sum(), similarity, 1e-4f);
            found += nearest.Count(hit => exact.Any(item => item.Key == hit.Key));
        }
        // HNSW is approximate; with the search breadth it finds (almost) all true neighbours here.
        Assert.True(found >= 0.98 * queries.Count * 10, $"found {found} of {queries.Count * 10} true nearest neighbours");
    }
}
