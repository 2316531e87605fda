using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class ElementwiseTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void AddMatchesReference(int n)
    {
        var random = new Random(n);
        GradCheck.Assert(
            x => x[0].Select((v, i) => v + x[1][i]).ToArray(),
            (tape, t) => tape.Add(t[0], t[1]),
            [GradCheck.Random(random, 1f, 2, n), GradCheck.Random(random, 1f, 2, n)]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void MulMatchesReference(int n)
    {
        var random = new Random(n + 1);
        GradCheck.Assert(
            x => x[0].Select((v, i) => v * x[1][i]).ToArray(),
            (tape, t) => tape.Mul(t[0], t[1]),
            [GradCheck.Random(random, 1f, 2, n), GradCheck.Random(random, 1f, 2, n)]);
    }

    [Fact]
    public void MulOfATensorWithItselfDoublesTheGradient()
    {
        var random = new Random(5);
        GradCheck.Assert(
            x => x[0].Select(v => v * v).ToArray(),
            (tape, t) => tape.Mul(t[0], t[0]),
            [GradCheck.Random(random, 1f, 3, 17)]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(130)]
    public void ScaleMatchesReference(int n)
    {
        var random = new Random(n + 2);
        GradCheck.Assert(
            x => x[0].Select(v => v * -2.5).ToArray(),
            (tape, t) => tape.Scale(t[0], -2.5f),
            [GradCheck.Random(random, 1f, 3, n)]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void SumAndMeanMatchReference(int n)
    {
        var random = new Random(n + 3);
        GradCheck.Assert(
            x => [x[0].Sum()],
            (tape, t) => tape.Sum(t[0]),
            [GradCheck.Random(random, 1f, 2, n)]);
        GradCheck.Assert(
            x => [x[0].Average()],
            (tape, t) => tape.Mean(t[0]),
            [GradCheck.Random(random, 1f, 2, n)]);
    }

    [Fact]
    public void AddRejectsDifferentShapes()
    {
        var tape = new Tape();
        var e = Assert.Throws<ArgumentException>(() => tape.Add(new Tensor(2, 3), new Tensor(3, 2)));
        Assert.Contains("[2, 3]", e.Message);
    }
}
