namespace Loom.Tensors;

/// <summary>A unit of parallel work: <see cref="Execute"/> runs once for each index in [0, count).</summary>
/// <remarks>Kernels keep one cached instance and reset its fields per call, so a call allocates nothing.</remarks>
public interface IParallelWork
{
    void Execute(int index);
}

/// <summary>
/// The threads that kernels run on: its own pool of <see cref="ThreadCount"/> − 1 worker threads plus
/// the calling thread, so a 1-thread context runs everything inline (the deterministic mode).
/// Indices are claimed with an atomic counter; each index must write disjoint output. A
/// <see cref="Run"/> inside a work item (of this context or any other) runs inline. Contexts are
/// independent: two models on two contexts run side by side without sharing threads or state.
/// One <see cref="Run"/> at a time per context; concurrent callers wait their turn.
/// </summary>
public sealed class ComputeContext : IDisposable
{
    static readonly Lazy<ComputeContext> DefaultContext = new(() => new ComputeContext(Environment.ProcessorCount, isDefault: true));

    readonly object gate = new();
    readonly int threadCount;
    readonly bool isDefault;
    readonly SemaphoreSlim start = new(0);
    readonly ManualResetEventSlim done = new(false);
    Thread[] workers = [];
    bool disposed;

    IParallelWork? running;
    int workCount;
    int nextIndex;
    int pending;          // workers that have not finished the current run
    Exception? failure;
    [ThreadStatic] static bool insideWork;

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

    /// <summary>Runs <paramref name="work"/>.Execute(i) for i in [0, count) on this context's threads; returns when all are done.</summary>
    public void Run(int count, IParallelWork work)
    {
        if (count <= 0) return;
        int threads = Math.Min(ThreadCount, count);
        if (threads == 1 || insideWork)
        {
            for (int i = 0; i < count; i++) work.Execute(i);
            return;
        }
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            EnsureWorkers(threads - 1);
            running = work;
            workCount = count;
            nextIndex = 0;
            failure = null;
            done.Reset();
            pending = threads - 1;
            start.Release(threads - 1);
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            done.Wait();
            running = null;
            if (failure is not null) throw new AggregateException(failure);
        }
    }

    /// <summary>Stops this context's worker threads (after a running <see cref="Run"/> finishes). Does nothing for <see cref="Default"/>.</summary>
    public void Dispose()
    {
        if (isDefault) return;
        Thread[] stopping;
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            stopping = workers;
            if (stopping.Length > 0) start.Release(stopping.Length);
        }
        foreach (var thread in stopping) thread.Join();
        start.Dispose();
        done.Dispose();
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

    void EnsureWorkers(int needed)
    {
        if (workers.Length >= needed) return;
        var grown = new Thread[needed];
        Array.Copy(workers, grown, workers.Length);
        for (int i = workers.Length; i < needed; i++)
        {
            grown[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"loom-worker-{i + 1}" };
            grown[i].Start();
        }
        workers = grown;
    }

    void WorkerLoop()
    {
        while (true)
        {
            start.Wait();
            if (Volatile.Read(ref disposed)) return;
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            if (Interlocked.Decrement(ref pending) == 0) done.Set();
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
