using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class RmsNormTests
{
    [Theory]
    [InlineData(1, 0.5f)]
    [InlineData(3, 1e-5f)]
    [InlineData(17, 1e-5f)]
    [InlineData(63, 1e-5f)]
    [InlineData(65, 1e-5f)]
    [InlineData(130, 1e-5f)]
    public void MatchesReferenceAndFiniteDifferences(int dim, float eps)
    {
        var random = new Random(dim);
        var x = GradCheck.Random(random, 2f, 2, 3, dim);
        var weight = GradCheck.Random(random, 1f, dim);
        GradCheck.Assert(
            v => Reference(v[0], v[1], dim, eps),
            (tape, t) => tape.RmsNorm(t[0], t[1], eps),
            [x, weight]);
    }

    static double[] Reference(double[] x, double[] weight, int dim, double eps)
    {
        var y = new double[x.Length];
        for (int r = 0; r < x.Length / dim; r++)
        {
            double meanSquare = 0;
            for (int i = 0; i < dim; i++) meanSquare += x[r * dim + i] * x[r * dim + i];
            double scale = 1 / Math.Sqrt(meanSquare / dim + eps);
            for (int i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * scale * weight[i];
        }
        return y;
    }
}
