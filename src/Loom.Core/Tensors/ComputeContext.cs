using System.Diagnostics;

namespace Loom.Tensors;

/// <summary>A unit of parallel work: <see cref="Execute"/> runs once for each index in [0, count).</summary>
/// <remarks>Kernels keep one cached instance and reset its fields per call, so a call allocates nothing.</remarks>
public interface IParallelWork
{
    void Execute(int index);
}

/// <summary>How long a context's calls waited for its workers: <see cref="ComputeContext.WaitStatistics"/>.</summary>
/// <param name="Runs">Parallel runs (those handed to workers; inline runs are not counted).</param>
/// <param name="Parallel">Wall time inside those runs, from hand-off to the last worker's finish; the rest of a step ran on one thread.</param>
/// <param name="CallerWait">Time the calling thread spent, after running out of work to claim, waiting for the workers to finish theirs.</param>
public readonly record struct ComputeWaitStatistics(long Runs, TimeSpan Parallel, TimeSpan CallerWait);

/// <summary>
/// The threads that kernels run on: its own pool of <see cref="ThreadCount"/> − 1 worker threads plus
/// the calling thread, so a 1-thread context runs everything inline (the deterministic mode).
/// Indices are claimed with an atomic counter; each index must write disjoint output. A
/// <see cref="Run"/> inside a work item (of this context or any other) runs inline. Contexts are
/// independent: two models on two contexts run side by side without sharing threads or state.
/// One <see cref="Run"/> at a time per context; concurrent callers wait their turn.
/// </summary>
/// <remarks>
/// A training step at a small batch makes hundreds of runs of tens of microseconds each, so the hand-off
/// must cost far less than waking a sleeping thread: workers spin on a generation counter for
/// <see cref="SpinTime"/> after each run before they block, and the caller spins the same way for the
/// workers to finish. Blocking uses one event per worker (kernel events: a blocking wait allocates no managed memory), with the sleeping flag and the generation
/// both written before the other is read (a Dekker pair), so no wake-up is lost.
/// </remarks>
public sealed class ComputeContext : IDisposable
{
    static readonly Lazy<ComputeContext> DefaultContext = new(() => new ComputeContext(Environment.ProcessorCount, isDefault: true));
    static readonly long SpinTime = Stopwatch.Frequency / 5000; // 200 µs: longer than the gaps between a step's runs, far shorter than a step

    readonly object gate = new();
    readonly int threadCount;
    readonly bool isDefault;
    Worker[] workers = [];
    readonly AutoResetEvent done = new(false);
    bool disposed;

    IParallelWork? running;
    int workCount;
    int nextIndex;
    long generation;      // bumped once per parallel run; workers wait for it to change
    int pending;          // workers that have not finished the current run
    int callerSleeping;   // 1 while the caller is blocked on done
    Exception? failure;
    long runs, parallelTicks, callerWaitTicks;
    [ThreadStatic] static bool insideWork;

    sealed class Worker
    {
        public readonly AutoResetEvent Wake = new(false);
        public int Sleeping;  // 1 while blocked on Wake
        public Thread? Thread;
    }

    /// <param name="threadCount">Threads used by kernels, the calling thread included; at least 1.</param>
    public ComputeContext(int threadCount) : this(threadCount, isDefault: false) { }

    ComputeContext(int threadCount, bool isDefault)
    {
        if (threadCount < 1) throw new ArgumentOutOfRangeException(nameof(threadCount), $"threadCount must be at least 1, got {threadCount}");
        this.threadCount = threadCount;
        this.isDefault = isDefault;
    }

    /// <summary>The shared context with <see cref="Environment.ProcessorCount"/> threads, made on first use; never disposed.</summary>
    public static ComputeContext Default => DefaultContext.Value;

    /// <summary>Threads used by kernels, the caller included.</summary>
    public int ThreadCount { get => threadCount; }

    /// <summary>Parallel runs and the caller's time waiting for workers since creation or <see cref="ResetWaitStatistics"/>.</summary>
    public ComputeWaitStatistics WaitStatistics
    {
        get
        {
            lock (gate) return new(runs, Stopwatch.GetElapsedTime(0, parallelTicks), Stopwatch.GetElapsedTime(0, callerWaitTicks));
        }
    }

    /// <summary>Sets <see cref="WaitStatistics"/> back to zero.</summary>
    public void ResetWaitStatistics()
    {
        lock (gate) { runs = 0; parallelTicks = 0; callerWaitTicks = 0; }
    }

    /// <summary>Runs <paramref name="work"/>.Execute(i) for i in [0, count) on this context's threads; returns when all are done.</summary>
    public void Run(int count, IParallelWork work)
    {
        if (count <= 0) return;
        if (count == 1 || threadCount == 1 || insideWork)
        {
            for (int i = 0; i < count; i++) work.Execute(i);
            return;
        }
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            EnsureWorkers();
            long runStart = Stopwatch.GetTimestamp();
            running = work;
            workCount = count;
            nextIndex = 0;
            failure = null;
            Volatile.Write(ref pending, workers.Length);
            Interlocked.Increment(ref generation); // full fence: the job is visible before the generation changes
            foreach (var worker in workers)
                if (Volatile.Read(ref worker.Sleeping) == 1) worker.Wake.Set();
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            long waitStart = Stopwatch.GetTimestamp();
            WaitForWorkers();
            long runEnd = Stopwatch.GetTimestamp();
            callerWaitTicks += runEnd - waitStart;
            parallelTicks += runEnd - runStart;
            runs++;
            running = null;
            if (failure is not null) throw new AggregateException(failure);
        }
    }

    /// <summary>Stops this context's worker threads (after a running <see cref="Run"/> finishes). Does nothing for <see cref="Default"/>.</summary>
    public void Dispose()
    {
        if (isDefault) return;
        Worker[] stopping;
        lock (gate)
        {
            if (disposed) return;
            Volatile.Write(ref disposed, true);
            stopping = workers;
            Interlocked.Increment(ref generation);
            foreach (var worker in stopping) worker.Wake.Set();
        }
        foreach (var worker in stopping)
        {
            worker.Thread!.Join();
            worker.Wake.Dispose();
        }
        done.Dispose();
    }

    void WaitForWorkers()
    {
        long spinEnd = Stopwatch.GetTimestamp() + SpinTime;
        int polls = 0;
        while (Volatile.Read(ref pending) != 0)
        {
            if (Stopwatch.GetTimestamp() < spinEnd)
            {
                Pause(ref polls);
                continue;
            }
            Interlocked.Exchange(ref callerSleeping, 1);
            if (Volatile.Read(ref pending) != 0) done.WaitOne();
            Volatile.Write(ref callerSleeping, 0);
        }
    }

    /// <summary>
    /// One poll of a spin: a short pause, and after the first few polls a yield as well, so that on an
    /// oversubscribed machine the thread being waited for can take this core.
    /// </summary>
    static void Pause(ref int polls)
    {
        if (++polls < 64) Thread.SpinWait(8);
        else Thread.Yield();
    }

    void Drain()
    {
        var job = running!;
        int count = workCount;
        while (true)
        {
            int i = Interlocked.Increment(ref nextIndex) - 1;
            if (i >= count) return;
            try { job.Execute(i); }
            catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
        }
    }

    void EnsureWorkers()
    {
        if (workers.Length == threadCount - 1) return;
        var created = new Worker[threadCount - 1];
        for (int i = 0; i < created.Length; i++)
            created[i] = new Worker { Thread = new Thread(WorkerLoop) { IsBackground = true, Name = $"loom-worker-{i + 1}" } };
        workers = created;
        foreach (var worker in created) worker.Thread!.Start((worker, generation)); // the generation before this run bumps it, so no worker misses the run
    }

    void WorkerLoop(object? state)
    {
        var (self, seen) = ((Worker, long))state!;
        while (true)
        {
            long spinEnd = Stopwatch.GetTimestamp() + SpinTime;
            int polls = 0;
            long current;
            while ((current = Volatile.Read(ref generation)) == seen)
            {
                if (Stopwatch.GetTimestamp() < spinEnd)
                {
                    Pause(ref polls);
                    continue;
                }
                Interlocked.Exchange(ref self.Sleeping, 1); // full fence: written before the generation is read again
                if (Volatile.Read(ref generation) == seen) self.Wake.WaitOne();
                Volatile.Write(ref self.Sleeping, 0);
                spinEnd = Stopwatch.GetTimestamp() + SpinTime;
            }
            seen = current;
            if (Volatile.Read(ref disposed)) return;
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            if (Interlocked.Decrement(ref pending) == 0 && Volatile.Read(ref callerSleeping) == 1) done.Set();
        }
    }

    /// <summary>
    /// Splits <paramref name="items"/> (rows, elements) that cost about <paramref name="itemCost"/>
    /// element-operations each into blocks big enough to be worth a thread hand-off.
    /// Returns the block count; block b covers [b·itemsPerBlock, min(items, (b+1)·itemsPerBlock)).
    /// The split does not depend on any context's <see cref="ThreadCount"/>, and blocks of more than 16
    /// items hold a multiple of 16 (whole vectors), so results are the same bit for bit with any thread count.
    /// </summary>
    public static int Blocks(int items, int itemCost, out int itemsPerBlock)
    {
        const long MinimumWork = 16384;
        const int MostBlocks = 256;
        long perBlock = Math.Clamp(MinimumWork / Math.Max(itemCost, 1), 1, Math.Max(items, 1));
        perBlock = Math.Max(perBlock, ((long)items + MostBlocks - 1) / MostBlocks);
        if (perBlock > 16) perBlock = (perBlock + 15) / 16 * 16;
        itemsPerBlock = (int)Math.Min(perBlock, int.MaxValue);
        return (int)((items + perBlock - 1) / perBlock);
    }
}
