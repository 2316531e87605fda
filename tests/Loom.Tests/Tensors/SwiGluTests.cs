using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class SwiGluTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void MatchesReferenceAndFiniteDifferences(int hidden)
    {
        var random = new Random(hidden);
        var gate = GradCheck.Random(random, 4f, 2, hidden);
        var up = GradCheck.Random(random, 1f, 2, hidden);
        GradCheck.Assert(
            v => v[0].Select((g, i) => g / (1 + Math.Exp(-g)) * v[1][i]).ToArray(),
            (tape, t) => tape.SwiGlu(t[0], t[1]),
            [gate, up]);
    }
}
