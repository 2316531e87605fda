using System.Collections.Concurrent;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Tests.Tensors;

/// <summary>
/// A compute context is the only thread state kernels use: two models on two contexts, run at the same time in
/// one process, each give the bits they give alone, and a context never runs work on more threads than it has.
/// </summary>
public class ComputeContextTests
{
    static readonly LlamaConfig Config = new() { VocabSize = 80, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 128, MaxSeq = 32 };

    [Fact]
    public void TwoModelsOnTwoContextsRunSideBySideWithTheBitsTheyGiveAlone()
    {
        using var one = new ComputeContext(1);
        using var two = new ComputeContext(2);
        var aloneOne = Workload(seed: 3, one);
        var aloneTwo = Workload(seed: 4, two);

        Run? concurrentOne = null, concurrentTwo = null;
        using var start = new Barrier(2);
        var threads = new[]
        {
            new Thread(() => { start.SignalAndWait(); concurrentOne = Workload(seed: 3, one); }),
            new Thread(() => { start.SignalAndWait(); concurrentTwo = Workload(seed: 4, two); }),
        };
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();

        AssertSameBits(aloneOne, concurrentOne!, "1-thread context");
        AssertSameBits(aloneTwo, concurrentTwo!, "2-thread context");
        // The two workloads differ (other seeds), so equal bits above are not an accident of equal inputs.
        Assert.NotEqual(aloneOne.Losses, aloneTwo.Losses);
    }

    [Fact]
    public void OneThreadContextRunsEveryItemOnTheCallingThread()
    {
        using var compute = new ComputeContext(1);
        var job = new RecordThreads();
        compute.Run(200, job);
        Assert.Equal(200, job.Executed);
        Assert.Equal([Environment.CurrentManagedThreadId], job.ThreadIds.Keys.ToArray());
    }

    [Fact]
    public void ContextRunsItsThreadCountOfThreadsAndNoMore()
    {
        using var compute = new ComputeContext(3);
        // The first three items wait for each other: they can only finish when three threads run them at once.
        var job = new RecordThreads { Rendezvous = new Barrier(3) };
        compute.Run(300, job);
        Assert.True(job.RendezvousMet, "items 0, 1 and 2 did not run on three threads at once");
        Assert.Equal(300, job.Executed);
        Assert.Equal(3, job.ThreadIds.Count);
        Assert.Contains(Environment.CurrentManagedThreadId, job.ThreadIds.Keys);
        job.Rendezvous.Dispose();
    }

    [Fact]
    public void WorkersAsleepAfterAPauseWakeForTheNextRun()
    {
        using var compute = new ComputeContext(2);
        // Pauses of 0 ms (the worker still spinning), 1 ms and 20 ms (the worker blocked) before each run; with
        // the rendezvous, a worker that missed its wake-up would leave item 0 or 1 waiting and the run hanging.
        foreach (int pause in new[] { 0, 1, 20, 0, 20, 1 })
        {
            Thread.Sleep(pause);
            var job = new RecordThreads { Rendezvous = new Barrier(2) };
            compute.Run(50, job);
            Assert.True(job.RendezvousMet, $"after a {pause} ms pause items 0 and 1 did not run on two threads at once");
            Assert.Equal(50, job.Executed);
        }
    }

    [Fact]
    public void WaitStatisticsCountParallelRunsOnly()
    {
        using var compute = new ComputeContext(2);
        var job = new RecordThreads();
        compute.Run(1, job);   // one item: inline, not counted
        compute.Run(40, job);
        compute.Run(40, job);
        var statistics = compute.WaitStatistics;
        Assert.Equal(2, statistics.Runs);
        Assert.True(statistics.Parallel > TimeSpan.Zero, "two parallel runs took no time");
        Assert.InRange(statistics.CallerWait, TimeSpan.Zero, statistics.Parallel);
        compute.ResetWaitStatistics();
        Assert.Equal(default, compute.WaitStatistics);
        using var one = new ComputeContext(1);
        one.Run(40, job);
        Assert.Equal(0, one.WaitStatistics.Runs);
    }

    [Fact]
    public void RunInsideAWorkItemRunsInlineOnThatThread()
    {
        using var outer = new ComputeContext(2);
        using var inner = new ComputeContext(2);
        var job = new Nested(inner);
        outer.Run(8, job);
        Assert.True(job.AllInline, "a nested Run left the thread of its work item");
        Assert.Equal(8 * 16, job.InnerExecuted);
    }

    [Fact]
    public void AFailingItemSurfacesAsAnAggregateException()
    {
        using var compute = new ComputeContext(2);
        var error = Assert.Throws<AggregateException>(() => compute.Run(50, new Failing(17)));
        Assert.Contains("item 17", error.InnerException!.Message);
        var job = new RecordThreads();
        compute.Run(10, job); // the context still works afterwards
        Assert.Equal(10, job.Executed);
    }

    [Fact]
    public void RejectsFewerThanOneThreadAndRunsAfterDispose()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(0));
        Assert.Contains("threadCount", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        var compute = new ComputeContext(2);
        compute.Run(4, new RecordThreads());
        compute.Dispose();
        Assert.Throws<ObjectDisposedException>(() => compute.Run(4, new RecordThreads()));
    }

    [Fact]
    public void DefaultIsOneSharedContextOfEveryProcessorThatDisposeLeavesWorking()
    {
        Assert.Same(ComputeContext.Default, ComputeContext.Default);
        Assert.Equal(Environment.ProcessorCount, ComputeContext.Default.ThreadCount);
        ComputeContext.Default.Dispose();
        var job = new RecordThreads();
        ComputeContext.Default.Run(64, job);
        Assert.Equal(64, job.Executed);
        Assert.Same(ComputeContext.Default, new Tape().Compute);
    }

    /// <summary>Step losses, final weights and decoded logits, all as bits.</summary>
    sealed record Run(int[] Losses, int[] Weights, int[] Logits);

    /// <summary>Three training steps (forward, backward, AdamW) of a fresh model, then a prefill and greedy decode of two sequences.</summary>
    static Run Workload(ulong seed, ComputeContext compute)
    {
        const int batch = 4, tokens = 32, steps = 3;
        var model = new Transformer(Config, seed);
        var optimizer = new AdamW(model.Parameters, new AdamWOptions(3e-3f) { Compute = compute });
        var tape = new Tape(compute);
        var random = new DeterministicRandom(seed + 100);
        var ids = new int[batch * tokens];     // [batch, tokens]
        var targets = new int[batch * tokens]; // [batch, tokens]
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)random.NextInt64(Config.VocabSize);
            targets[i] = (int)random.NextInt64(Config.VocabSize);
        }
        var losses = new List<int>();
        for (int step = 0; step < steps; step++)
        {
            optimizer.ZeroGrad();
            tape.Reset();
            var loss = model.Loss(tape, ids, targets, batch, tokens); // [1]
            tape.Backward(loss);
            optimizer.Step();
            losses.Add(BitConverter.SingleToInt32Bits(loss.Scalar()));
        }
        var weights = model.Parameters.SelectMany(p => p.Span.ToArray()).Select(BitConverter.SingleToInt32Bits).ToArray();

        using var decoder = new TransformerDecoder(model, slotCount: 2, compute: compute);
        var row = new float[Config.VocabSize];
        var logits = new float[2 * Config.VocabSize];
        var seen = new List<int>();
        decoder.Prefill(0, ids.AsSpan(0, 9), row);
        int[] next = [ArgMax(row), 0];
        seen.AddRange(row.Select(BitConverter.SingleToInt32Bits));
        decoder.Prefill(1, ids.AsSpan(tokens, 5), row);
        next[1] = ArgMax(row);
        seen.AddRange(row.Select(BitConverter.SingleToInt32Bits));
        for (int step = 0; step < 6; step++)
        {
            decoder.Decode([0, 1], next, logits);
            seen.AddRange(logits.Select(BitConverter.SingleToInt32Bits));
            next = [ArgMax(logits.AsSpan(0, Config.VocabSize)), ArgMax(logits.AsSpan(Config.VocabSize))];
        }
        return new Run([.. losses], weights, [.. seen]);
    }

    static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    static void AssertSameBits(Run expected, Run actual, string what)
    {
        Assert.True(expected.Losses.AsSpan().SequenceEqual(actual.Losses), $"{what}: step losses differ when run beside another model");
        Assert.True(expected.Weights.AsSpan().SequenceEqual(actual.Weights), $"{what}: trained weights differ when run beside another model");
        Assert.True(expected.Logits.AsSpan().SequenceEqual(actual.Logits), $"{what}: decoded logits differ when run beside another model");
    }

    /// <summary>Counts items and the managed threads that ran them; with a rendezvous, items 0..n−1 wait for each other.</summary>
    sealed class RecordThreads : IParallelWork
    {
        public readonly ConcurrentDictionary<int, int> ThreadIds = new();
        int executed;
        public Barrier? Rendezvous;
        public bool RendezvousMet = true;

        public int Executed => executed;

        public void Execute(int index)
        {
            ThreadIds.AddOrUpdate(Environment.CurrentManagedThreadId, 1, (_, count) => count + 1);
            if (Rendezvous is not null && index < Rendezvous.ParticipantCount && !Rendezvous.SignalAndWait(TimeSpan.FromSeconds(30)))
                RendezvousMet = false;
            Interlocked.Increment(ref executed);
        }
    }

    /// <summary>Each outer item runs 16 items on another context and checks they stay on its thread.</summary>
    sealed class Nested(ComputeContext inner) : IParallelWork
    {
        int innerExecuted;
        public bool AllInline = true;
        public int InnerExecuted => innerExecuted;

        public void Execute(int index)
        {
            int thread = Environment.CurrentManagedThreadId;
            var probe = new Probe(thread, this);
            inner.Run(16, probe);
        }

        sealed class Probe(int thread, Nested owner) : IParallelWork
        {
            public void Execute(int index)
            {
                if (Environment.CurrentManagedThreadId != thread) owner.AllInline = false;
                Interlocked.Increment(ref owner.innerExecuted);
            }
        }
    }

    sealed class Failing(int failAt) : IParallelWork
    {
        public void Execute(int index)
        {
            if (index == failAt) throw new InvalidOperationException($"item {failAt} failed");
        }
    }
}
