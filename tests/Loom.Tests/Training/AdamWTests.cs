using Loom.Tensors;
using Loom.Training;
using Loom.Tests.Tensors;

namespace Loom.Tests.Training;

public class AdamWTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void MatchesPyTorchFormula(int steps)
    {
        var options = new AdamWOptions(LearningRate: 1e-2f, Beta1: 0.9f, Beta2: 0.95f, Epsilon: 1e-8f, WeightDecay: 0.1f);
        var random = new Random(steps);
        var matrix = GradCheck.Random(random, 1f, 3, 17); // decayed
        var vector = GradCheck.Random(random, 1f, 65); // a norm weight: not decayed
        Tensor[] parameters = [matrix, vector];
        var reference = parameters.Select(p => new ReferenceAdamW(p.Span.ToArray(), p.Rank >= 2 ? options.WeightDecay : 0, options)).ToArray();
        var optimizer = new AdamW(parameters, options);
        for (int step = 1; step <= steps; step++)
        {
            float learningRate = options.LearningRate * step / steps;
            for (int i = 0; i < parameters.Length; i++)
            {
                var g = parameters[i].EnsureGrad().Span;
                for (int j = 0; j < g.Length; j++) g[j] = (float)(random.NextDouble() * 2 - 1);
                reference[i].Step(g.ToArray(), learningRate);
            }
            optimizer.Step(learningRate);
        }
        Assert.Equal(steps, optimizer.StepCount);
        for (int i = 0; i < parameters.Length; i++)
        {
            var actual = parameters[i].Span.ToArray();
            for (int j = 0; j < actual.Length; j++)
            {
                Assert.True(Math.Abs(actual[j] - reference[i].Parameter[j]) < 1e-6, $"parameter {i}[{j}]: {actual[j]} vs {reference[i].Parameter[j]}");
                Assert.True(Math.Abs(optimizer.FirstMoments[i][j] - reference[i].First[j]) < 1e-6);
                Assert.True(Math.Abs(optimizer.SecondMoments[i][j] - reference[i].Second[j]) < 1e-6);
            }
        }
    }

    [Fact]
    public void SavedStateResumesBitForBit()
    {
        var random = new Random(2);
        var straight = GradCheck.Random(random, 1f, 4, 9);
        var resumed = Tensor.From(straight.Span, 4, 9);
        resumed.RequiresGrad = true;
        var gradients = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 36).Select(_ => (float)random.NextDouble() - 0.5f).ToArray()).ToArray();
        var first = new AdamW([straight], new AdamWOptions());
        for (int s = 0; s < 5; s++)
        {
            gradients[s].CopyTo(straight.EnsureGrad().Span);
            first.Step(1e-2f);
        }

        var before = new AdamW([resumed], new AdamWOptions());
        for (int s = 0; s < 3; s++)
        {
            gradients[s].CopyTo(resumed.EnsureGrad().Span);
            before.Step(1e-2f);
        }
        using var stream = new MemoryStream();
        before.Save(stream);
        stream.Position = 0;
        var after = new AdamW([resumed], new AdamWOptions());
        after.Load(stream);
        Assert.Equal(3, after.StepCount);
        for (int s = 3; s < 5; s++)
        {
            gradients[s].CopyTo(resumed.EnsureGrad().Span);
            after.Step(1e-2f);
        }
        Assert.Equal(straight.Span.ToArray(), resumed.Span.ToArray());
    }

    [Fact]
    public void TinyGradientsLeaveNoSubnormalMoments()
    {
        var p = GradCheck.Random(new Random(3), 1f, 2, 33);
        p.EnsureGrad().Span.Fill(1e-20f); // g² = 1e-40 is subnormal
        var optimizer = new AdamW([p], new AdamWOptions());
        optimizer.Step(1e-3f);
        Assert.Equal(0, Subnormals.Count(optimizer.SecondMoments[0].Span));
        Assert.All(optimizer.SecondMoments[0].Span.ToArray(), v => Assert.Equal(0f, v));
        Assert.All(optimizer.FirstMoments[0].Span.ToArray(), v => Assert.Equal(1e-21f, v, 1e-27f));
    }

    [Fact]
    public void ZeroGradClearsEveryGradient()
    {
        var p = GradCheck.Random(new Random(4), 1f, 3);
        p.EnsureGrad().Span.Fill(2f);
        new AdamW([p], new AdamWOptions()).ZeroGrad();
        Assert.All(p.Grad!.Span.ToArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(0.5f, 1)]
    [InlineData(100f, 1)]
    [InlineData(0.5f, 2)]
    [InlineData(100f, 2)]
    public void ClippingMatchesReference(float maxNorm, int threads)
    {
        using var compute = new ComputeContext(threads);
        var random = new Random(5);
        Tensor[] parameters = [GradCheck.Random(random, 1f, 3, 17), GradCheck.Random(random, 1f, 65), GradCheck.Random(random, 1f, 2)];
        parameters[2].RequiresGrad = false; // no gradient: skipped
        foreach (var p in parameters.Take(2))
        {
            var g = p.EnsureGrad().Span;
            for (int j = 0; j < g.Length; j++) g[j] = (float)(random.NextDouble() * 2 - 1);
        }
        var grads = parameters.Take(2).Select(p => p.Grad!.Span.ToArray()).ToArray();
        double norm = Math.Sqrt(grads.SelectMany(g => g).Sum(v => (double)v * v));
        double coefficient = Math.Min(1, maxNorm / (norm + 1e-6));

        float returned = GradientClipping.ClipGradientNorm(parameters, maxNorm, compute);

        Assert.Equal(norm, returned, 1e-5 * norm);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < grads[i].Length; j++)
                Assert.Equal(grads[i][j] * coefficient, parameters[i].Grad![j], 1e-6);
        Assert.Null(parameters[2].Grad);
    }

    [Fact]
    public void ClippingOnTwoThreadsGivesTheBitsOfOneThread()
    {
        float[] Clip(int threads, out float norm)
        {
            var random = new Random(6);
            var parameters = Enumerable.Range(0, 9).Select(i => GradCheck.Random(random, 1f, 1 + 37 * i, 5)).ToArray();
            foreach (var p in parameters)
            {
                var g = p.EnsureGrad().Span;
                for (int j = 0; j < g.Length; j++) g[j] = (float)(random.NextDouble() * 2 - 1);
            }
            using var compute = new ComputeContext(threads);
            norm = GradientClipping.ClipGradientNorm(parameters, 1f, compute);
            return [.. parameters.SelectMany(p => p.Grad!.Span.ToArray())];
        }

        var one = Clip(1, out float normOne);
        var two = Clip(2, out float normTwo);
        Assert.True(normOne > 1f, "the gradients were not clipped");
        Assert.Equal(BitConverter.SingleToInt32Bits(normOne), BitConverter.SingleToInt32Bits(normTwo));
        Assert.Equal(one.Select(BitConverter.SingleToInt32Bits), two.Select(BitConverter.SingleToInt32Bits));
    }

    /// <summary>torch.optim.AdamW's update for one parameter, in double.</summary>
    sealed class ReferenceAdamW(float[] initial, double weightDecay, AdamWOptions o)
    {
        public readonly double[] Parameter = [.. initial.Select(v => (double)v)];
        public readonly double[] First = new double[initial.Length];
        public readonly double[] Second = new double[initial.Length];
        int step;

        public void Step(float[] gradient, double learningRate)
        {
            step++;
            double correction1 = 1 - Math.Pow(o.Beta1, step), correction2 = 1 - Math.Pow(o.Beta2, step);
            for (int j = 0; j < Parameter.Length; j++)
            {
                Parameter[j] *= 1 - learningRate * weightDecay;
                First[j] = o.Beta1 * First[j] + (1 - o.Beta1) * gradient[j];
                Second[j] = o.Beta2 * Second[j] + (1 - o.Beta2) * gradient[j] * gradient[j];
                double denominator = Math.Sqrt(Second[j]) / Math.Sqrt(correction2) + o.Epsilon;
                Parameter[j] -= learningRate / correction1 * First[j] / denominator;
            }
        }
    }
}
