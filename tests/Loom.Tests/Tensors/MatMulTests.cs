using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class MatMulTests
{
    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(3, 17, 5, false)]
    [InlineData(17, 3, 65, true)]
    [InlineData(63, 65, 17, true)]
    [InlineData(5, 130, 3, false)]
    public void MatchesReferenceAndFiniteDifferences(int rows, int k, int n, bool transposeW)
    {
        var random = new Random(rows * 1000 + k * 10 + n);
        var x = GradCheck.Random(random, 1f, rows, k);
        var w = transposeW ? GradCheck.Random(random, 1f, n, k) : GradCheck.Random(random, 1f, k, n);
        GradCheck.Assert(
            inputs => Reference(inputs[0], inputs[1], rows, k, n, transposeW),
            (tape, t) => tape.MatMul(t[0], t[1], transposeW),
            [x, w]);
    }

    [Theory]
    [InlineData(1, 1, 1, 1, false)]
    [InlineData(2, 3, 17, 5, false)]
    [InlineData(2, 17, 3, 63, true)]
    [InlineData(3, 5, 65, 3, true)]
    [InlineData(1, 3, 130, 2, false)]
    public void BatchedMatchesReferenceAndFiniteDifferences(int batch, int m, int k, int n, bool transposeB)
    {
        var random = new Random(batch * 100000 + m * 1000 + k * 10 + n);
        var a = GradCheck.Random(random, 1f, batch, m, k);
        var b = transposeB ? GradCheck.Random(random, 1f, batch, n, k) : GradCheck.Random(random, 1f, batch, k, n);
        GradCheck.Assert(
            inputs => Enumerable.Range(0, batch).SelectMany(i => Reference(
                inputs[0][(i * m * k)..((i + 1) * m * k)], inputs[1][(i * k * n)..((i + 1) * k * n)], m, k, n, transposeB)).ToArray(),
            (tape, t) => tape.BatchedMatMul(t[0], t[1], transposeB),
            [a, b]);
    }

    static double[] Reference(double[] x, double[] w, int rows, int k, int n, bool transposeW)
    {
        var y = new double[rows * n];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++) s += x[i * k + p] * (transposeW ? w[j * k + p] : w[p * n + j]);
                y[i * n + j] = s;
            }
        return y;
    }
}
