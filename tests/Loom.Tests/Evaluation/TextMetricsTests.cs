using Loom.Evaluation;

namespace Loom.Tests.Evaluation;

public class TextMetricsTests
{
    [Fact]
    public void NormalizationFollowsSquad()
    {
        Assert.Equal("cat sat on mat", TextMetrics.Normalize("The cat, sat on a  MAT!"));
        Assert.Equal(1, TextMetrics.ExactMatch("The Eiffel Tower.", "eiffel tower"));
        Assert.Equal(0, TextMetrics.ExactMatch("Eiffel", "eiffel tower"));
    }

    [Fact]
    public void TokenF1CountsSharedWords()
    {
        // prediction 4 tokens, reference 3 tokens, 2 shared: P = 1/2, R = 2/3, F1 = 4/7
        Assert.Equal(4.0 / 7, TextMetrics.TokenF1("red green blue yellow", "green red black"), 12);
        Assert.Equal(0, TextMetrics.TokenF1("one", "two"));
    }

    [Fact]
    public void RougeLUsesTheLongestCommonSubsequence()
    {
        // LCS of "police killed gunman" and "police kill gunman" is 2 (police, gunman): P = R = 2/3
        Assert.Equal(2.0 / 3, TextMetrics.RougeL("police killed gunman", "police kill gunman"), 12);
        // "gunman killed police" vs "police killed gunman": every common subsequence has one word, so P = R = 1/3
        Assert.Equal(1.0 / 3, TextMetrics.RougeL("gunman killed police", "police killed gunman"), 12);
    }
}
