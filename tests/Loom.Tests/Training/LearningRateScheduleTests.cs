using Loom.Training;

namespace Loom.Tests.Training;

public class LearningRateScheduleTests
{
    [Fact]
    public void MatchesNanoGptGetLr()
    {
        var schedule = new LearningRateSchedule(1e-3f, 1e-4f, 100, 2000);
        // nanoGPT: lr·(it+1)/(warmup+1) in warmup; min + 0.5(1+cos(π·ratio))(lr−min) after; min past decay.
        Assert.Equal(1e-3 * 1 / 101, schedule.At(0), 7);
        Assert.Equal(1e-3 * 100 / 101, schedule.At(99), 7);
        Assert.Equal(1e-3, schedule.At(100), 7);
        Assert.Equal(1e-4 + 0.5 * 9e-4, schedule.At(1050), 7);
        Assert.Equal(1e-4 + 0.5 * (1 + Math.Cos(Math.PI * 0.25)) * 9e-4, schedule.At(100 + 475), 7);
        Assert.Equal(1e-4, schedule.At(2000), 7);
        Assert.Equal(1e-4, schedule.At(5000), 7);
        for (int step = 100; step < 2000; step++) Assert.True(schedule.At(step + 1) <= schedule.At(step));
    }

    [Fact]
    public void ValidationNamesTheField()
    {
        Assert.Contains("minimum learning rate", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(1e-3f, 1e-2f).Validate()).Message);
        Assert.Contains("warmup", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(WarmupSteps: -1).Validate()).Message);
    }
}
