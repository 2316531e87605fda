using Loom.Serving;
using Loom.Tensors;
using Loom.Tests.Server;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Serving;

public class LoomEmbeddingGeneratorTests
{
    [Fact]
    public async Task EmbedsAsTheNormalisedMeanOfTheFinalHiddenStates()
    {
        var (model, tokenizer) = ServerFixture.BpeModel(4);
        using IEmbeddingGenerator<string, Embedding<float>> generator = new LoomEmbeddingGenerator(model, tokenizer, "tiny");
        var embeddings = await generator.GenerateAsync(["the quick brown fox", "hello world"]);
        Assert.Equal(2, embeddings.Count);

        // Reference: hidden states from a plain forward, averaged in double.
        var ids = tokenizer.Encode("the quick brown fox");
        var hidden = model.ForwardHidden(new Tape { Recording = false }, ids, 1, ids.Length).Span.ToArray();
        int dim = model.Config.Dim;
        var mean = new double[dim];
        for (int t = 0; t < ids.Length; t++)
            for (int c = 0; c < dim; c++) mean[c] += hidden[t * dim + c];
        double norm = Math.Sqrt(mean.Sum(v => v * v));
        var actual = embeddings[0].Vector.Span;
        Assert.Equal(dim, actual.Length);
        for (int c = 0; c < dim; c++) Assert.Equal(mean[c] / norm, actual[c], 5);
        Assert.NotEqual(embeddings[0].Vector.ToArray(), embeddings[1].Vector.ToArray());
        Assert.Equal(ids.Length + tokenizer.Encode("hello world").Length, embeddings.Usage!.InputTokenCount);
    }
}
