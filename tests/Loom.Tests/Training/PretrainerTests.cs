using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Tests.Training;

[Collection(SerialTrainingCollection.Name)]
public sealed class PretrainerTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-pretrain-").FullName;
    readonly ComputeContext oneThread = new(1);

    public void Dispose()
    {
        oneThread.Dispose();
        Directory.Delete(root, recursive: true);
    }

    static readonly LlamaConfig Model = new() { Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 64, MaxSeq = 16 };

    PretrainOptions Options(string data, string output, int steps = 20) => new()
    {
        DataFolder = data,
        OutputFolder = output,
        Model = Model,
        Batch = 4,
        GradientAccumulation = 2,
        Steps = steps,
        LearningRate = 3e-3f,
        MinLearningRate = 3e-4f,
        WarmupSteps = 4,
        EvalEvery = 5,
        EvalBatches = 2,
        SaveEvery = 0,
        Seed = 42,
        PeakFlops = 1e9,
        Compute = oneThread,
    };

    /// <summary>Runs and returns the bits of every step loss and validation loss, in order.</summary>
    static (List<int> StepLosses, List<int> ValidationLosses, PretrainResult Result) Collect(PretrainOptions options, int? cancelAfter = null)
    {
        var steps = new List<int>();
        var validation = new List<int>();
        using var cancellation = new CancellationTokenSource();
        var result = Pretrainer.Run(options, e =>
        {
            if (e is StepEvent s)
            {
                steps.Add(BitConverter.SingleToInt32Bits(s.Loss));
                if (s.Step == cancelAfter) cancellation.Cancel();
            }
            if (e is EvalEvent v) validation.Add(BitConverter.SingleToInt32Bits(v.ValidationLoss));
        }, cancellation.Token);
        return (steps, validation, result);
    }

    [Fact]
    public void ResumeContinuesWithBitIdenticalLosses()
    {
        string data = TrainingData.Prepare(root);
        var whole = Collect(Options(data, Path.Combine(root, "whole")));
        Assert.Equal(20, whole.StepLosses.Count);
        Assert.Equal(4, whole.ValidationLosses.Count);

        // Ctrl-C after step 10 saves a checkpoint; --resume continues from it.
        string split = Path.Combine(root, "split");
        var first = Collect(Options(data, split), cancelAfter: 10);
        Assert.True(first.Result.Interrupted);
        Assert.Equal(10, first.Result.StepsDone);
        Assert.True(File.Exists(Path.Combine(split, "checkpoint", "training_state", "state.json")));
        var second = Collect(Options(data, split) with { Resume = true });
        Assert.False(second.Result.Interrupted);
        Assert.Equal(whole.StepLosses, [.. first.StepLosses, .. second.StepLosses]);
        Assert.Equal(whole.ValidationLosses, [.. first.ValidationLosses, .. second.ValidationLosses]);

        // The final weights agree bit for bit too.
        var a = Checkpoint.Load(Path.Combine(root, "whole"));
        var b = Checkpoint.Load(split);
        for (int i = 0; i < a.Parameters.Count; i++) Assert.Equal(a.Parameters[i].Span.ToArray(), b.Parameters[i].Span.ToArray());

        // metrics.jsonl: one line per step and one per evaluation, the interrupted run's lines kept once.
        var lines = File.ReadAllLines(Path.Combine(split, Pretrainer.MetricsFileName));
        Assert.Equal(20 + 4, lines.Length);
        Assert.Equal(File.ReadAllLines(Path.Combine(root, "whole", Pretrainer.MetricsFileName)).Select(StripTimes), lines.Select(StripTimes));
    }

    /// <summary>A metrics line without its timing fields, which differ between runs.</summary>
    static string StripTimes(string line) =>
        System.Text.RegularExpressions.Regex.Replace(line, ",\"(tokens_per_second|mfu|elapsed_s)\":[^,}]*", "");

    [Fact]
    public void SameSeedGivesIdenticalRunsAndTheLossFalls()
    {
        string data = TrainingData.Prepare(root);
        var a = Collect(Options(data, Path.Combine(root, "a"), steps: 30));
        var b = Collect(Options(data, Path.Combine(root, "b"), steps: 30));
        Assert.Equal(a.StepLosses, b.StepLosses);
        Assert.Equal(a.ValidationLosses, b.ValidationLosses);
        var c = Collect(Options(data, Path.Combine(root, "c"), steps: 30) with { Seed = 43 });
        Assert.NotEqual(a.StepLosses, c.StepLosses);
        // The corpus has ~20 characters; uniform guessing costs ln(20) ≈ 3.0 nats. Learning must show.
        float firstLoss = BitConverter.Int32BitsToSingle(a.StepLosses[0]);
        float lastValidation = BitConverter.Int32BitsToSingle(a.ValidationLosses[^1]);
        Assert.InRange(firstLoss, 2.5f, 3.5f);
        Assert.True(lastValidation < firstLoss - 0.5f, $"validation loss {lastValidation} did not fall from {firstLoss}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // each thread takes rows of the batch through its own replica, as the pretrainer does at 2 threads
    public void SteadyStateStepAllocatesNothing(bool splitRows)
    {
        using var compute = new ComputeContext(2);
        var config = Model with { VocabSize = 40 };
        var model = new Transformer(config, 3);
        var optimizer = new AdamW(model.Parameters, new AdamWOptions(1e-3f) { Compute = compute });
        var tape = new Tape(compute);
        using var rows = splitRows ? new DataParallelLoss(model, compute) : null;
        int batch = 4, tokens = config.MaxSeq;
        var random = new DeterministicRandom(5);
        var ids = new int[batch * tokens];
        var targets = new int[batch * tokens];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)random.NextInt64(config.VocabSize);
            targets[i] = (int)random.NextInt64(config.VocabSize);
        }
        void Step()
        {
            optimizer.ZeroGrad();
            if (rows is not null)
            {
                rows.ForwardBackward(ids, targets, batch, tokens);
                rows.CollectGradients();
            }
            else
            {
                tape.Reset();
                tape.Backward(model.Loss(tape, ids, targets, batch, tokens));
            }
            GradientClipping.ClipGradientNorm(model.Parameters, 1f);
            optimizer.Step(1e-3f);
        }
        // Steps 0-2 warm up (arena, gradients, moments, per-thread scratch). After that a step must
        // allocate nothing. An allocation made by the step itself shows in every step; what shows once
        // is lazy per-thread state that a later step happens to need first (with two threads, which
        // thread runs which block of a kernel varies, so a thread may meet a kernel's scratch late),
        // and, over all threads of the process, the test host and the JIT's background tier-up. So on
        // the calling thread (which runs all the model and optimizer code and its share of the kernels)
        // nearly every step must allocate exactly zero, and over all threads many steps must.
        for (int i = 0; i < 3; i++) Step();
        var allocated = new long[24];
        var callerAllocated = new long[24];
        for (int i = 0; i < allocated.Length; i++)
        {
            long callerBefore = GC.GetAllocatedBytesForCurrentThread();
            long before = GC.GetTotalAllocatedBytes(precise: true);
            Step();
            allocated[i] = GC.GetTotalAllocatedBytes(precise: true) - before;
            callerAllocated[i] = GC.GetAllocatedBytesForCurrentThread() - callerBefore;
        }
        int callerClean = callerAllocated.Count(bytes => bytes == 0);
        Assert.True(callerClean >= allocated.Length - 2, $"the calling thread allocated in {allocated.Length - callerClean} of {allocated.Length} steps: {string.Join(", ", callerAllocated)}");
        int clean = allocated.Count(bytes => bytes == 0);
        Assert.True(clean >= allocated.Length / 4, $"only {clean} of {allocated.Length} steps allocated nothing over all threads: {string.Join(", ", allocated)}");
    }
}
