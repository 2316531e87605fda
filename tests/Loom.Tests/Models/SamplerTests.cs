using Loom.Models;
using Loom.Tensors;

namespace Loom.Tests.Models;

public class SamplerTests
{
    static float[] Logits() => [1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.5f];

    [Fact]
    public void GreedyPicksTheLargestLogit()
    {
        var sampler = new Sampler(SamplingOptions.Greedy, 6);
        Assert.Equal(1, sampler.Sample(Logits(), []));
    }

    [Fact]
    public void DrawsFollowTheSoftmaxAtTheGivenTemperature()
    {
        const float temperature = 0.7f;
        var sampler = new Sampler(new SamplingOptions { Temperature = temperature, Seed = 7 }, 6);
        var expected = Softmax(Logits(), temperature);
        var counts = new int[6];
        const int draws = 60_000;
        for (int i = 0; i < draws; i++) counts[sampler.Sample(Logits(), [])]++;
        for (int t = 0; t < 6; t++)
        {
            double observed = counts[t] / (double)draws;
            double sd = Math.Sqrt(expected[t] * (1 - expected[t]) / draws);
            Assert.True(Math.Abs(observed - expected[t]) < 5 * sd + 1e-4, $"token {t}: {observed:F4} vs {expected[t]:F4}");
        }
    }

    [Fact]
    public void DrawsInvertTheSoftmaxCdfAtEachUniformOfTheCallersStream()
    {
        // With the filters off, each draw is the first token whose cumulative softmax(logits / T) probability
        // exceeds one uniform number from the caller's DeterministicRandom (computed here in float64).
        const float temperature = 0.7f;
        var sampler = new Sampler(new SamplingOptions { Temperature = temperature }, 6, new DeterministicRandom(9));
        var stream = new DeterministicRandom(9);
        var probabilities = Softmax(Logits(), temperature);
        for (int i = 0; i < 2000; i++)
        {
            double u = stream.NextDouble(), cumulative = 0;
            int expected = probabilities.Length - 1;
            for (int t = 0; t < probabilities.Length; t++)
            {
                cumulative += probabilities[t];
                if (u < cumulative) { expected = t; break; }
            }
            Assert.Equal(expected, sampler.Sample(Logits(), []));
        }
    }

    [Fact]
    public void TemperatureZeroIsGreedyAndDrawsNothing()
    {
        var stream = new DeterministicRandom(3);
        var sampler = new Sampler(new SamplingOptions { Temperature = 0f }, 6, stream);
        for (int i = 0; i < 5; i++) Assert.Equal(1, sampler.Sample(Logits(), []));
        Assert.Equal(new DeterministicRandom(3).NextUInt64(), stream.NextUInt64());
    }

    [Fact]
    public void TopKTopPAndMinPKeepOnlyTheirCandidates()
    {
        Assert.Equal(new[] { 1, 5 }, Support(new SamplingOptions { TopK = 2, Seed = 1 }));
        // probabilities at T=1, sorted: 3.0→0.4525, 2.5→0.2744, 2.0→0.1665, 1.0→0.0612, ...; top-p 0.6 needs the first two
        Assert.Equal(new[] { 1, 5 }, Support(new SamplingOptions { TopP = 0.6f, Seed = 1 }));
        Assert.Equal(new[] { 1, 3, 5 }, Support(new SamplingOptions { TopP = 0.75f, Seed = 1 }));
        // min-p 0.3: keep p >= 0.3 * 0.4525 = 0.136: tokens 1, 5, 3
        Assert.Equal(new[] { 1, 3, 5 }, Support(new SamplingOptions { MinP = 0.3f, Seed = 1 }));
    }

    [Fact]
    public void PenaltiesFollowTheirFormulas()
    {
        var options = new SamplingOptions { Temperature = 0f, RepetitionPenalty = 2f, FrequencyPenalty = 0.5f, PresencePenalty = 0.25f };
        var logits = Logits();
        new Sampler(options, 6).Sample(logits, [1, 1, 4, 1]);
        Assert.Equal(3.0f / 2f - 0.5f * 3 - 0.25f, logits[1], 6);
        Assert.Equal(-1.0f * 2f - 0.5f * 1 - 0.25f, logits[4], 6);
        Assert.Equal(2.5f, logits[5]);
    }

    [Fact]
    public void TheSameSeedGivesTheSameTokens()
    {
        var options = new SamplingOptions { Temperature = 1.3f, TopP = 0.95f, Seed = 42 };
        var a = new Sampler(options, 6);
        var b = new Sampler(options, 6);
        for (int i = 0; i < 200; i++) Assert.Equal(a.Sample(Logits(), []), b.Sample(Logits(), []));
    }

    [Fact]
    public void OutOfRangeOptionsNameTheField()
    {
        var error = Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { TopP = 0f }, 6));
        Assert.Contains("top_p", error.Message);
    }

    static int[] Support(SamplingOptions options)
    {
        var sampler = new Sampler(options, 6);
        var seen = new SortedSet<int>();
        for (int i = 0; i < 5000; i++) seen.Add(sampler.Sample(Logits(), []));
        return [.. seen];
    }

    static double[] Softmax(float[] logits, float temperature)
    {
        var e = logits.Select(l => Math.Exp(l / temperature)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }
}

public class StopSequenceTests
{
    [Fact]
    public void HoldsBackAPossibleStartAndCutsAtTheStop()
    {
        var matcher = new StopSequenceMatcher(["\nUser:", "###"]);
        Assert.Equal("Hello", matcher.Push("Hello\nUs"));
        Assert.Equal("", matcher.Push("e"));
        Assert.Equal("\nUsed it", matcher.Push("d it"));
        Assert.Equal(" ok", matcher.Push(" ok##"));
        Assert.Equal("", matcher.Push("#more"));
        Assert.True(matcher.Stopped);
        Assert.Equal("", matcher.Push("ignored"));
    }

    [Fact]
    public void FlushReturnsHeldTextWhenNoStopCompleted()
    {
        var matcher = new StopSequenceMatcher(["END"]);
        Assert.Equal("the ", matcher.Push("the EN"));
        Assert.Equal("EN", matcher.Flush());
        Assert.False(matcher.Stopped);
    }
}
