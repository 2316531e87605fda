using System.Runtime.InteropServices;

namespace Loom.Bench;

/// <summary>
/// CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID). On a shared machine a single-threaded run's
/// wall time includes the time other processes held its core; its own CPU time does not.
/// </summary>
internal static unsafe partial class ThreadClock
{
    const int ThreadCpuTimeId = 3;

    public static bool IsAvailable { get; } = OperatingSystem.IsLinux();

    /// <summary>Seconds of CPU this thread has used.</summary>
    public static double Seconds()
    {
        if (!IsAvailable) return double.NaN;
        Timespec time;
        return ClockGetTime(ThreadCpuTimeId, &time) == 0 ? time.Seconds + time.Nanoseconds * 1e-9 : double.NaN;
    }

    struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clockId, Timespec* time);
}
