using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class EmbeddingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void MatchesReferenceWithRepeatedIds(int dim)
    {
        const int vocab = 5, batch = 2, tokens = 3;
        int[] ids = [4, 0, 4, 2, 2, 4];
        var weight = GradCheck.Random(new Random(dim), 1f, vocab, dim);
        GradCheck.Assert(
            x => ids.SelectMany(id => x[0].Skip(id * dim).Take(dim)).ToArray(),
            (tape, t) => tape.Embedding(t[0], ids, batch, tokens),
            [weight]);
    }

    [Fact]
    public void OutOfRangeIdNamesTheIdAndPosition()
    {
        var tape = new Tape();
        var weight = new Tensor(4, 3);
        var e = Assert.Throws<ArgumentException>(() => tape.Embedding(weight, [1, 2, 7, 0], 2, 2));
        Assert.Contains("7", e.Message);
        Assert.Contains("position 2", e.Message);
        Assert.Throws<ArgumentException>(() => tape.Embedding(weight, [1, -1, 0, 0], 2, 2));
        Assert.Throws<ArgumentException>(() => tape.Embedding(weight, [1, 2, 3], 2, 2));
    }
}
