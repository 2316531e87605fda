namespace Loom.Tensors;

/// <summary>A unit of parallel work: <see cref="Execute"/> runs once for each index in [0, count).</summary>
/// <remarks>Kernels keep one cached instance and reset its fields per call, so a call allocates nothing.</remarks>
public interface IParallelWork
{
    void Execute(int index);
}

/// <summary>
/// One pool of worker threads for every kernel. The calling thread takes part, so
/// <see cref="ThreadCount"/> = 1 runs everything inline (the deterministic mode).
/// Indices are claimed with an atomic counter; each index must write disjoint output.
/// </summary>
public static class WorkerPool
{
    static readonly object Gate = new();
    static Thread[] workers = [];
    static int threadCount = Environment.ProcessorCount;

    static IParallelWork? work;
    static int workCount;
    static int nextIndex;
    static int pending;          // workers that have not finished the current generation
    static int generation;
    static Exception? failure;
    static readonly SemaphoreSlim Start = new(0);
    static readonly ManualResetEventSlim Done = new(false);
    [ThreadStatic] static bool insideWork;

    /// <summary>Threads used by kernels, the caller included. Defaults to the processor count.</summary>
    public static int ThreadCount
    {
        get => threadCount;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (Gate) threadCount = value;
        }
    }

    /// <summary>Runs <paramref name="work"/>.Execute(i) for i in [0, count), on all threads; returns when all are done.</summary>
    public static void Run(int count, IParallelWork job)
    {
        if (count <= 0) return;
        int threads = Math.Min(threadCount, count);
        if (threads == 1 || insideWork)
        {
            for (int i = 0; i < count; i++) job.Execute(i);
            return;
        }
        lock (Gate)
        {
            EnsureWorkers(threads - 1);
            work = job;
            workCount = count;
            nextIndex = 0;
            failure = null;
            Done.Reset();
            pending = threads - 1;
            Interlocked.Increment(ref generation);
            Start.Release(threads - 1);
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            Done.Wait();
            work = null;
            if (failure is not null) throw new AggregateException(failure);
        }
    }

    static void Drain()
    {
        var job = work!;
        int count = workCount;
        while (true)
        {
            int i = Interlocked.Increment(ref nextIndex) - 1;
            if (i >= count) return;
            try { job.Execute(i); }
            catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
        }
    }

    static void EnsureWorkers(int needed)
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

    static void WorkerLoop()
    {
        while (true)
        {
            Start.Wait();
            insideWork = true;
            try { Drain(); }
            finally { insideWork = false; }
            if (Interlocked.Decrement(ref pending) == 0) Done.Set();
        }
    }

    /// <summary>
    /// Splits <paramref name="items"/> (rows, elements) that cost about <paramref name="itemCost"/>
    /// element-operations each into blocks big enough to be worth a thread hand-off.
    /// Returns the block count; block b covers [b·itemsPerBlock, min(items, (b+1)·itemsPerBlock)).
    /// The split does not depend on <see cref="ThreadCount"/>, and blocks of more than 16 items hold
    /// a multiple of 16 (whole vectors), so results are the same bit for bit with any thread count.
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
