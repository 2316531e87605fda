namespace Loom.Serving;

/// <summary>
/// Sizes the prompt slices that ride along decode steps so that such a step takes about <c>budget</c> times a plain
/// decode step, measured: the median of the last plain steps is the idle step, the median of the last slice steps' extra
/// time per prompt token is a token's cost, and a slice takes the tokens whose cost fits the budget's extra time (at least
/// one, so the prompt always moves on; at most the engine's cap). A token costs about what a row of every projection
/// costs, plus its attention, which grows with its position; the medians follow both, and the machine's own pace.
/// Steps and slices are timed by the engine's loop, the only caller.
/// </summary>
internal sealed class PrefillPacer
{
    /// <summary>Steps of each kind kept for the medians.</summary>
    const int Window = 16;

    readonly double budget;
    readonly int maxTokens;
    readonly double[] plainSteps = new double[Window];    // [Window] seconds of the last plain decode steps (a ring)
    readonly double[] tokenCosts = new double[Window];    // [Window] extra seconds per slice token of the last slice steps (a ring)
    int plainCount, tokenCount;

    /// <param name="budget">A step with a slice may take this many times a plain step; above 1.</param>
    /// <param name="maxTokens">The most tokens a slice takes.</param>
    public PrefillPacer(double budget, int maxTokens)
    {
        if (!(budget > 1)) throw new ArgumentOutOfRangeException(nameof(budget), budget, "a step budget is above 1");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        this.budget = budget;
        this.maxTokens = maxTokens;
    }

    /// <summary>Tokens the next slice takes: the cap until a plain step has been timed, one until a slice step has.</summary>
    public int Tokens()
    {
        if (plainCount == 0) return maxTokens;
        if (tokenCount == 0) return 1;
        double extra = (budget - 1) * Median(plainSteps, plainCount), cost = Median(tokenCosts, tokenCount);
        return cost <= extra / maxTokens ? maxTokens : Math.Max(1, (int)(extra / cost));
    }

    /// <summary>Records a decode step of the running sequences that carried <paramref name="sliceTokens"/> prompt tokens (0: none).</summary>
    public void Observe(int sliceTokens, double seconds)
    {
        if (sliceTokens == 0)
        {
            plainSteps[plainCount++ % Window] = seconds;
            if (plainCount == 2 * Window) plainCount = Window; // keeps the ring's position and its count at Window
            return;
        }
        if (plainCount == 0) return;
        tokenCosts[tokenCount++ % Window] = Math.Max(0, seconds - Median(plainSteps, plainCount)) / sliceTokens;
        if (tokenCount == 2 * Window) tokenCount = Window;
    }

    /// <summary>The median of a ring's first min(count, Window) entries (the upper one of an even count).</summary>
    static double Median(double[] ring, int count)
    {
        Span<double> sorted = stackalloc double[Window];
        sorted = sorted[..Math.Min(count, Window)];
        ring.AsSpan(0, sorted.Length).CopyTo(sorted);
        sorted.Sort();
        return sorted[sorted.Length / 2];
    }
}
