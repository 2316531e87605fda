using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class RopeTests
{
    [Theory]
    [InlineData(2, 1, 0)]
    [InlineData(6, 2, 0)]
    [InlineData(34, 1, 3)]
    [InlineData(126, 2, 0)]
    [InlineData(130, 1, 7)]
    [InlineData(260, 1, 0)]
    public void MatchesHuggingFaceRotateHalfReference(int headDim, int heads, int offset)
    {
        const int batch = 2, tokens = 3;
        const float theta = 10000f;
        var x = GradCheck.Random(new Random(headDim), 1f, batch, tokens, heads * headDim);
        GradCheck.Assert(
            v => Reference(v[0], batch, tokens, heads, headDim, theta, offset),
            (tape, t) => tape.Rope(t[0], heads, headDim, theta, offset),
            [x]);
    }

    [Fact]
    public void LaterOffsetsReuseAndGrowTheTable()
    {
        var x = GradCheck.Random(new Random(1), 1f, 1, 1, 8);
        var tape = new Tape();
        for (int offset = 0; offset < 40; offset += 13)
        {
            var y = tape.Rope(x, 2, 4, 500f, offset);
            var expected = Reference(x.Span.ToArray().Select(v => (double)v).ToArray(), 1, 1, 2, 4, 500f, offset);
            Assert.True(GradCheck.RelativeError(y.Span.ToArray().Select(v => (double)v).ToArray(), expected) < 1e-5);
        }
    }

    /// <summary>transformers' apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, cos = cat(freqs, freqs).cos().</summary>
    static double[] Reference(double[] x, int batch, int tokens, int heads, int headDim, double theta, int offset)
    {
        var y = new double[x.Length];
        int half = headDim / 2;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < tokens; t++)
                for (int h = 0; h < heads; h++)
                {
                    int at = ((b * tokens + t) * heads + h) * headDim;
                    for (int i = 0; i < headDim; i++)
                    {
                        double inverseFrequency = 1 / Math.Pow(theta, 2.0 * (i % half) / headDim);
                        double angle = (t + offset) * inverseFrequency;
                        double rotated = i < half ? -x[at + i + half] : x[at + i - half];
                        y[at + i] = x[at + i] * Math.Cos(angle) + rotated * Math.Sin(angle);
                    }
                }
        return y;
    }
}
