using Loom.Tensors;
using Loom.Tests.Tensors;
using Loom.Training;

namespace Loom.Tests.Training;

public class ObjectivesTests
{
    static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));

    static Tensor Constant(Random random, float scale, int length)
    {
        var t = GradCheck.Random(random, scale, length);
        t.RequiresGrad = false;
        return t;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    public void BradleyTerryMatchesReference(int pairs)
    {
        var random = new Random(pairs);
        GradCheck.Assert(
            x => [Enumerable.Range(0, pairs).Average(i => -LogSigmoid(x[0][i] - x[1][i]))],
            (tape, t) => tape.BradleyTerryLoss(t[0], t[1]),
            [GradCheck.Random(random, 2f, pairs), GradCheck.Random(random, 2f, pairs)]);
    }

    [Theory]
    [InlineData(1, 0.1f)]
    [InlineData(5, 0.5f)]
    [InlineData(17, 2f)]
    public void DpoMatchesReference(int pairs, float beta)
    {
        var random = new Random(pairs);
        var inputs = new[] { GradCheck.Random(random, 3f, pairs), GradCheck.Random(random, 3f, pairs), Constant(random, 3f, pairs), Constant(random, 3f, pairs) };
        GradCheck.Assert(
            x => [Enumerable.Range(0, pairs).Average(i => -LogSigmoid(beta * ((x[0][i] - x[2][i]) - (x[1][i] - x[3][i]))))],
            (tape, t) => tape.DpoLoss(t[0], t[1], t[2], t[3], beta),
            inputs);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(63)]
    public void ClippedPolicyLossMatchesReference(int tokens)
    {
        const float epsilon = 0.2f, kl = 0.05f;
        var random = new Random(tokens);
        var logProbs = GradCheck.Random(random, 1f, tokens);
        var old = Constant(random, 1f, tokens);
        // keep |logp − old| away from the clip boundaries ln(0.8), ln(1.2), where the objective has a kink
        for (int i = 0; i < tokens; i++)
        {
            float d = logProbs[i] - old[i];
            if (Math.Abs(d - MathF.Log(1 + epsilon)) < 0.01f || Math.Abs(d - MathF.Log(1 - epsilon)) < 0.01f) logProbs[i] += 0.05f;
        }
        var reference = Constant(random, 1f, tokens);
        var advantages = Constant(random, 2f, tokens);
        var mask = new Tensor(tokens);
        for (int i = 0; i < tokens; i++) mask[i] = i % 4 == 3 ? 0 : 1;
        GradCheck.Assert(
            x =>
            {
                double sum = 0, count = 0;
                for (int i = 0; i < tokens; i++)
                {
                    if (x[4][i] == 0) continue;
                    double ratio = Math.Exp(x[0][i] - x[1][i]);
                    double surrogate = Math.Min(ratio * x[3][i], Math.Clamp(ratio, 1 - epsilon, 1 + epsilon) * x[3][i]);
                    double delta = x[2][i] - x[0][i];
                    sum += -surrogate + kl * (Math.Exp(delta) - delta - 1);
                    count++;
                }
                return [sum / count];
            },
            (tape, t) => tape.ClippedPolicyLoss(t[0], t[1], t[2], t[3], t[4], epsilon, kl),
            [logProbs, old, reference, advantages, mask],
            step: 1e-4);
    }

    [Fact]
    public void SegmentSumAddsRowsIntoTheirSequences()
    {
        var random = new Random(3);
        int[] segmentOf = [0, 0, -1, 1, 1, 1, -1, 2];
        GradCheck.Assert(
            x => [x[0][0] + x[0][1], x[0][3] + x[0][4] + x[0][5], x[0][7]],
            (tape, t) => tape.SegmentSum(t[0], segmentOf, 3),
            [GradCheck.Random(random, 1f, 8)]);
    }
}
