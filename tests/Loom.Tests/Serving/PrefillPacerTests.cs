using Loom.Serving;

namespace Loom.Tests.Serving;

/// <summary>The slice sizing of <see cref="PrefillPacer"/> on given step times (seconds), as the engine's loop reports them.</summary>
public class PrefillPacerTests
{
    [Fact]
    public void TakesTheCapUntilAPlainStepIsTimedThenOneTokenToMeasureItsCost()
    {
        var pacer = new PrefillPacer(1.5, 16);
        Assert.Equal(16, pacer.Tokens());
        pacer.Observe(3, 0.050); // a slice step before any plain one: nothing to compare it with, ignored
        Assert.Equal(16, pacer.Tokens());
        pacer.Observe(0, 0.010);
        Assert.Equal(1, pacer.Tokens());
    }

    [Theory]
    [InlineData(1.5, 0.0019, 2)]  // 5 ms of extra time, 1.9 ms a token
    [InlineData(2.0, 0.0019, 5)]  // 10 ms of extra time
    [InlineData(1.5, 0.0001, 16)] // cheap tokens: the cap
    [InlineData(1.5, 0.020, 1)]   // a token costs more than the budget allows: one, so the prompt moves on
    public void FitsTheTokensToTheBudget(double budget, double tokenCost, int expected)
    {
        var pacer = new PrefillPacer(budget, 16);
        for (int i = 0; i < 5; i++) pacer.Observe(0, 0.010);
        pacer.Observe(3, 0.010 + 3 * tokenCost);
        Assert.Equal(expected, pacer.Tokens());
    }

    [Fact]
    public void MediansIgnoreAStallAndFollowTheGrowingCost()
    {
        var pacer = new PrefillPacer(1.5, 64);
        for (int i = 0; i < 15; i++) pacer.Observe(0, 0.010);
        pacer.Observe(0, 0.500); // a stall (another process, a collection) in one plain step
        for (int i = 0; i < 5; i++) pacer.Observe(4, 0.010 + 4 * 0.0009);
        pacer.Observe(4, 0.900);
        Assert.Equal(5, pacer.Tokens()); // idle 10 ms, 0.9 ms a token: 5 tokens in 5 ms of extra time
        // Later tokens attend to more keys: once most of the last 16 slice steps cost 2.2 ms a token, slices shrink.
        for (int i = 0; i < 11; i++) pacer.Observe(2, 0.010 + 2 * 0.0022);
        Assert.Equal(2, pacer.Tokens());
    }
}
