using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class TokenLogProbsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 3)]
    [InlineData(4, 17)]
    [InlineData(4, 63)]
    [InlineData(4, 65)]
    [InlineData(3, 130)]
    [InlineData(2, 1100)]
    public void MatchesReferenceWithIgnoredRows(int rows, int vocab)
    {
        var random = new Random(rows * 100 + vocab);
        var logits = GradCheck.Random(random, 3f, rows, vocab);
        int[] targets = CrossEntropyTests.Targets(random, rows, vocab);
        GradCheck.Assert(
            v => CrossEntropyTests.NegativeLogProbs(v[0], targets, vocab).Select(l => -l).ToArray(),
            (tape, t) => tape.TokenLogProbs(t[0], targets),
            [logits]);
    }

    [Fact]
    public void InPlaceGradientThroughMatMulMatchesFiniteDifferences()
    {
        const int rows = 5, k = 3, vocab = 19;
        var random = new Random(19);
        var x = GradCheck.Random(random, 1f, rows, k);
        var w = GradCheck.Random(random, 1f, vocab, k);
        int[] targets = CrossEntropyTests.Targets(random, rows, vocab);
        GradCheck.Assert(
            v => CrossEntropyTests.NegativeLogProbs(CrossEntropyTests.Logits(v[0], v[1], rows, k, vocab), targets, vocab).Select(l => -l).ToArray(),
            (tape, t) => tape.TokenLogProbs(tape.MatMul(t[0], t[1], transposeW: true), targets),
            [x, w]);
    }
}
