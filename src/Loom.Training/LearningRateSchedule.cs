namespace Loom.Training;

/// <summary>
/// Linear warmup to <see cref="MaxLearningRate"/>, then cosine decay to <see cref="MinLearningRate"/> at
/// <see cref="DecaySteps"/>, constant after (nanoGPT's get_lr). A pure function of the step, so a
/// resumed run needs only the step number to continue the schedule.
/// </summary>
public sealed record LearningRateSchedule(
    float MaxLearningRate = 1e-3f, // peak, reached at the end of warmup
    float MinLearningRate = 1e-4f, // floor, reached at DecaySteps
    int WarmupSteps = 100,         // steps of linear increase from near zero
    int DecaySteps = 2000)         // step at which the cosine reaches the floor (usually the run's length)
{
    /// <summary>The learning rate for optimizer step <paramref name="step"/> (0-based).</summary>
    public float At(int step)
    {
        if (step < WarmupSteps) return (float)((double)MaxLearningRate * (step + 1) / (WarmupSteps + 1));
        if (step >= DecaySteps) return MinLearningRate;
        double progress = (double)(step - WarmupSteps) / Math.Max(DecaySteps - WarmupSteps, 1);
        double coefficient = 0.5 * (1 + Math.Cos(Math.PI * progress)); // 1 → 0
        return (float)(MinLearningRate + coefficient * (MaxLearningRate - MinLearningRate));
    }

    /// <summary>Throws a one-line error naming the bad field.</summary>
    public LearningRateSchedule Validate()
    {
        if (!(MaxLearningRate > 0) || !float.IsFinite(MaxLearningRate)) throw new ArgumentException($"learning rate must be positive, got {MaxLearningRate}");
        if (!(MinLearningRate >= 0) || MinLearningRate > MaxLearningRate) throw new ArgumentException($"minimum learning rate must be in [0, {MaxLearningRate}], got {MinLearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"warmup steps must be ≥ 0, got {WarmupSteps}");
        if (DecaySteps < 0) throw new ArgumentException($"decay steps must be ≥ 0, got {DecaySteps}");
        return this;
    }
}
