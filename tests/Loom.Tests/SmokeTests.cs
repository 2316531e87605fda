using Loom.Tensors;

namespace Loom.Tests;

public class GemmSmokeTests
{
    [Fact]
    public void SmallProductMatchesHandComputed()
    {
        float[] a = [1, 2, 3, 4, 5, 6]; // [2, 3]
        float[] b = [7, 8, 9, 10, 11, 12]; // [3, 2]
        var c = new float[4];
        Gemm.Multiply(a, b, 2, 3, 2, c);
        Assert.Equal([58f, 64f, 139f, 154f], c);
    }
}
