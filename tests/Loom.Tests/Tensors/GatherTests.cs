using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class GatherTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(65)]
    [InlineData(130)]
    public void MatchesReferenceWithRepeatedRows(int dim)
    {
        int[] rows = [5, 0, 5, 3];
        var x = GradCheck.Random(new Random(dim), 1f, 2, 3, dim); // 6 rows
        GradCheck.Assert(
            v => rows.SelectMany(r => v[0].Skip(r * dim).Take(dim)).ToArray(),
            (tape, t) => tape.GatherRows(t[0], rows),
            [x]);
    }

    [Fact]
    public void OutOfRangeRowNamesTheRowAndPosition()
    {
        var e = Assert.Throws<ArgumentException>(() => new Tape().GatherRows(new Tensor(2, 3, 4), [0, 6]));
        Assert.Contains("6", e.Message);
        Assert.Contains("position 1", e.Message);
    }
}
