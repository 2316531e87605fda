namespace Loom.Tests;

/// <summary>
/// Measures what a call allocates on the managed heap, over all threads of the process (the kernels run on
/// worker threads). The count is process-wide, so the test host, a server another test left winding down, or
/// the JIT's background tier-up may allocate during a call now and then; an allocation the call itself makes
/// shows in every attempt. So the fewest bytes over several attempts, spaced a little apart, is what a test asserts.
/// </summary>
static class AllocationProbe
{
    /// <summary>Runs <paramref name="call"/> <paramref name="warmUp"/> times, then up to <paramref name="attempts"/>
    /// more, and returns the fewest bytes one call allocated (stops at the first call that allocated nothing).</summary>
    public static long FewestBytes(Action call, int warmUp = 3, int attempts = 12)
    {
        for (int i = 0; i < warmUp; i++) call();
        long fewest = long.MaxValue;
        for (int attempt = 0; attempt < attempts && fewest > 0; attempt++)
        {
            if (attempt > 0) Thread.Sleep(20);
            long before = GC.GetTotalAllocatedBytes(precise: true);
            call();
            fewest = Math.Min(fewest, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        return fewest;
    }
}
