using System.Diagnostics;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Bench;

/// <summary>
/// `step`: one training step (forward + backward + clipping + AdamW) of the transformer stack.
/// Without options: batch 8 × 256 tokens, 256 channels, 4 layers, vocabulary 4096, on 2 threads; prints
/// ms/step, tokens/s and model-FLOPs utilisation against Loom's GEMM rate at (4096, 256, 1024) measured in
/// the same run; then the same step with subnormal values planted in the weights and the embedded inputs
/// before every step, which must run at the same speed.
/// With --model/--tokens, or --rows (the rows of issue 20's table): 1-thread against 2-thread ms/step,
/// samples alternating between the two, medians, the speed-up and the cores busy at 2 threads; 2 threads split the
/// batch by rows as pretraining does (<see cref="DataParallelLoss"/>), and beside it are timed the same step splitting
/// every op over both threads, and splitting the rows with the replicas computing each weight gradient once over all
/// their rows; each variant's mean time per phase (zero, forward+backward, collect, clip, AdamW) and the replicas' wait
/// at the shared weight gradients follow.
/// </summary>
internal static class StepBench
{
    const int Batch = 8;
    const int Tokens = 256;
    const int Threads = 2;
    const int WarmupSteps = 2;
    const int DefaultSamples = 5;
    const float Subnormal = 1e-40f;

    internal static readonly LlamaConfig Config = new() { VocabSize = 4096, Dim = 256, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 768, MaxSeq = Tokens };

    /// <summary>
    /// Models by name. gpt2-124m keeps the Llama architecture at GPT-2 small's sizes: 12 layers × 768, 12 heads,
    /// SwiGLU width 2048 (three matrices of 768 × 2048 ≈ GPT-2's two of 768 × 3072), vocabulary 50257, tied.
    /// </summary>
    static readonly Dictionary<string, LlamaConfig> Models = new()
    {
        ["default"] = Config,
        ["gpt2-124m"] = new() { VocabSize = 50257, Dim = 768, Layers = 12, Heads = 12, KvHeads = 12, HiddenDim = 2048, MaxSeq = 1024 },
        ["4x256"] = Config,
        ["shakespeare-char"] = LlamaConfig.Preset("shakespeare-char"),
    };

    /// <summary>The rows of issue 20's table: model and batch × tokens.</summary>
    static readonly (string Model, int Batch, int Tokens)[] Rows =
    [
        ("gpt2-124m", 4, 64),
        ("4x256", 4, 64),
        ("shakespeare-char", 12, 64),
        ("default", Batch, Tokens),
    ];

    /// <summary>Options: --samples N (timed steps per variant, median reported); --model NAME, --tokens BxT, --rows.</summary>
    public static int Run(string[] args)
    {
        int samples = DefaultSamples;
        string? model = null;
        (int Batch, int Tokens)? shape = null;
        bool rows = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--samples" && i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n >= 1) { samples = n; i++; }
            else if (args[i] == "--model" && i + 1 < args.Length && Models.ContainsKey(args[i + 1])) { model = args[++i]; }
            else if (args[i] == "--tokens" && i + 1 < args.Length && ParseShape(args[i + 1]) is { } parsed) { shape = parsed; i++; }
            else if (args[i] == "--rows") rows = true;
            else
            {
                Console.Error.WriteLine($"step: unknown or invalid option '{args[i]}' (options: --samples N, --model {string.Join('|', Models.Keys)}, --tokens BxT, --rows)");
                return 2;
            }
        }
        if (rows)
        {
            Console.WriteLine($"CPU: {BenchPaths.CpuModel()}, {Environment.ProcessorCount} logical processors; {samples} samples per thread count, alternating 1 and 2 threads");
            foreach (var row in Rows) CompareThreads(row.Model, row.Batch, row.Tokens, samples);
            return 0;
        }
        if (model is not null || shape is not null)
        {
            Console.WriteLine($"CPU: {BenchPaths.CpuModel()}, {Environment.ProcessorCount} logical processors; {samples} samples per thread count, alternating 1 and 2 threads");
            CompareThreads(model ?? "default", shape?.Batch ?? Batch, shape?.Tokens ?? Tokens, samples);
            return 0;
        }
        return RunDefault(samples);
    }

    static (int, int)? ParseShape(string text)
    {
        var parts = text.Split('x', 'X', '×');
        return parts.Length == 2 && int.TryParse(parts[0], out int b) && int.TryParse(parts[1], out int t) && b >= 1 && t >= 1 ? (b, t) : null;
    }


    /// <summary>One model, optimizer and tape on one context: the step that a sample times.</summary>
    internal sealed class Trainer : IDisposable
    {
        readonly ComputeContext compute;
        readonly Transformer model;
        readonly AdamW optimizer;
        readonly Tape tape;
        readonly int[] ids, targets; // [batch, tokens]
        readonly int batch, tokens;

        readonly DataParallelLoss? rows;

        /// <param name="splitRows">Whether 2 threads split the batch by rows (<see cref="DataParallelLoss"/>, what
        /// pretraining does) rather than every op of one forward and backward over the whole batch.</param>
        /// <param name="shareWeightGradients">With rows split: whether the replicas compute each weight gradient once over
        /// all their rows (false, what pretraining does: each its own over its rows, summed afterwards).</param>
        public Trainer(LlamaConfig config, int batch, int tokens, int threads, bool splitRows = true, bool shareWeightGradients = false)
        {
            compute = new ComputeContext(threads);
            model = new Transformer(config, seed: 1);
            optimizer = new AdamW(model.Parameters, new AdamWOptions(3e-4f) { Compute = compute });
            tape = new Tape(compute);
            if (splitRows && DataParallelLoss.Applies(compute, batch)) rows = new DataParallelLoss(model, compute, shareWeightGradients);
            this.batch = batch;
            this.tokens = tokens;
            var random = new DeterministicRandom(2);
            ids = new int[batch * tokens];
            targets = new int[batch * tokens];
            for (int i = 0; i < ids.Length; i++)
            {
                ids[i] = (int)random.NextInt64(config.VocabSize);
                targets[i] = (int)random.NextInt64(config.VocabSize);
            }
        }

        public ComputeContext Compute => compute;

        public IReadOnlyList<Tensor> Parameters => model.Parameters;

        /// <summary>Wall seconds of each phase over the steps since <see cref="ResetPhases"/>: zeroing, forward and backward, collecting replica gradients, clipping, AdamW.</summary>
        public double[] Phases { get; } = new double[5];

        /// <summary>Seconds the replicas spent, all together, waiting for each other at the weight gradients since <see cref="ResetPhases"/>.</summary>
        public double ReplicaWait => rows?.Wait.TotalSeconds ?? 0;

        public void ResetPhases()
        {
            Array.Clear(Phases);
            rows?.ResetWait();
        }

        /// <summary>One step; returns its wall seconds.</summary>
        public double Step()
        {
            long start = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad();
            long zeroed = Stopwatch.GetTimestamp();
            long passed;
            if (rows is not null)
            {
                rows.ForwardBackward(ids, targets, batch, tokens);
                passed = Stopwatch.GetTimestamp();
                rows.CollectGradients();
            }
            else
            {
                tape.Reset();
                var loss = model.Loss(tape, ids, targets, batch, tokens); // [1]
                tape.Backward(loss);
                passed = Stopwatch.GetTimestamp();
            }
            long collected = Stopwatch.GetTimestamp();
            GradientClipping.ClipGradientNorm(model.Parameters, 1f, compute);
            long clipped = Stopwatch.GetTimestamp();
            optimizer.Step(3e-4f);
            long end = Stopwatch.GetTimestamp();
            Phases[0] += Stopwatch.GetElapsedTime(start, zeroed).TotalSeconds;
            Phases[1] += Stopwatch.GetElapsedTime(zeroed, passed).TotalSeconds;
            Phases[2] += Stopwatch.GetElapsedTime(passed, collected).TotalSeconds;
            Phases[3] += Stopwatch.GetElapsedTime(collected, clipped).TotalSeconds;
            Phases[4] += Stopwatch.GetElapsedTime(clipped, end).TotalSeconds;
            return Stopwatch.GetElapsedTime(start, end).TotalSeconds;
        }

        /// <summary>The mean phases per step over <paramref name="steps"/> steps, in ms.</summary>
        public string PhaseText(int steps) =>
            $"zero {Phases[0] * 1e3 / steps:F1}, forward+backward {Phases[1] * 1e3 / steps:F1}, collect {Phases[2] * 1e3 / steps:F1}, clip {Phases[3] * 1e3 / steps:F1}, AdamW {Phases[4] * 1e3 / steps:F1}" +
            (rows is null ? "" : $" (replicas waited {ReplicaWait * 1e3 / steps:F1} at the weight gradients)");

        public void Dispose()
        {
            rows?.Dispose();
            compute.Dispose();
        }
    }

    static void CompareThreads(string name, int batch, int tokens, int samples)
    {
        var config = Models[name] with { MaxSeq = Math.Max(Models[name].MaxSeq, tokens) };
        using var one = new Trainer(config, batch, tokens, 1);
        using var two = new Trainer(config, batch, tokens, 2);
        using var ops = new Trainer(config, batch, tokens, 2, splitRows: false);
        using var shared = new Trainer(config, batch, tokens, 2, shareWeightGradients: true);
        for (int i = 0; i < WarmupSteps; i++) { one.Step(); two.Step(); ops.Step(); shared.Step(); }
        var wall1 = new List<double>();
        var wall2 = new List<double>();
        var wallOps = new List<double>();
        var wallShared = new List<double>();
        var busy2 = new List<double>();
        var process = Process.GetCurrentProcess();
        two.Compute.ResetWaitStatistics();
        one.ResetPhases();
        two.ResetPhases();
        ops.ResetPhases();
        shared.ResetPhases();
        for (int i = 0; i < samples; i++)
        {
            wall1.Add(one.Step());
            process.Refresh();
            var cpuBefore = process.TotalProcessorTime;
            double seconds = two.Step();
            process.Refresh();
            wall2.Add(seconds);
            busy2.Add((process.TotalProcessorTime - cpuBefore).TotalSeconds / seconds);
            wallOps.Add(ops.Step());
            wallShared.Add(shared.Step());
        }
        var waits = two.Compute.WaitStatistics;
        double t1 = Median(wall1), t2 = Median(wall2), tOps = Median(wallOps);
        double flopsPerStep = (double)config.FlopsPerTokenAt(tokens) * batch * tokens;
        Console.WriteLine($"{name} ({config.Layers} layers x {config.Dim}, {config.Heads} heads, hidden {config.HiddenDim}, vocab {config.VocabSize}), {batch}x{tokens} tokens: " +
            $"1 thread {t1 * 1e3:F1} ms ({flopsPerStep / t1 / 1e9:F1} GFLOP/s), 2 threads {t2 * 1e3:F1} ms, speed-up {t1 / t2:F2}x, cores busy at 2: {Median(busy2):F2}; 2 threads splitting every op instead of the rows: {tOps * 1e3:F1} ms ({t1 / tOps:F2}x); " +
            $"per 2-thread step {waits.Runs / (double)samples:F0} parallel runs taking {waits.Parallel.TotalMilliseconds / samples:F1} ms (the rest on one thread), caller waited {waits.CallerWait.TotalMilliseconds / samples:F1} ms at their ends");
        Console.WriteLine($"  2 threads splitting the rows, the replicas computing each weight gradient once over all their rows: {Median(wallShared) * 1e3:F1} ms ({t1 / Median(wallShared):F2}x)");
        Console.WriteLine($"  mean ms per step: 1 thread: {one.PhaseText(samples)}; 2 threads, rows: {two.PhaseText(samples)}; 2 threads, ops: {ops.PhaseText(samples)}; 2 threads, rows, shared weight gradients: {shared.PhaseText(samples)}");
    }

    static int RunDefault(int samples)
    {
        using var trainer = new Trainer(Config, Batch, Tokens, Threads);
        double peak = PeakFlops.Measure(4096, 256, 1024, TimeSpan.FromSeconds(1), trainer.Compute);
        // A quarter of every weight (and so of the embedded inputs) becomes subnormal; AdamW flushes
        // them after each step, so they are planted again before every timed step.
        void PlantSubnormals()
        {
            foreach (var p in trainer.Parameters)
            {
                if (p.Rank < 2) continue;
                var span = p.Span;
                for (int i = 0; i < span.Length; i += 4) span[i] = (i & 8) == 0 ? Subnormal : -Subnormal;
            }
        }

        for (int i = 0; i < WarmupSteps; i++) trainer.Step();
        var normal = new List<double>();
        var subnormal = new List<double>();
        int plantedCount = 0;
        for (int i = 0; i < samples; i++) // alternate, so drift in the shared CPUs hits both alike
        {
            normal.Add(trainer.Step());
            PlantSubnormals();
            plantedCount = trainer.Parameters.Sum(p => Subnormals.Count(p.Span));
            subnormal.Add(trainer.Step());
        }

        double flopsPerStep = (double)Config.FlopsPerTokenAt(Tokens) * Batch * Tokens;
        Console.WriteLine($"model: {Config.ParameterCount:N0} parameters ({Config.Layers} layers, dim {Config.Dim}, {Config.Heads} heads, hidden {Config.HiddenDim}, vocab {Config.VocabSize}, tied); " +
            $"batch {Batch} x {Tokens} tokens; {Threads} threads; {flopsPerStep / 1e9:F1} GFLOP/step (6N + 12·L·d·T)");
        Console.WriteLine($"GEMM peak (Loom Gemm 4096x256x1024, {Threads} threads): {peak / 1e9:F1} GFLOP/s");
        Report("step", Median(normal), flopsPerStep, peak);
        Report($"step, {plantedCount:N0} subnormal weights", Median(subnormal), flopsPerStep, peak);
        Console.WriteLine($"subnormal / normal time: {Median(subnormal) / Median(normal):F2}x");
        return 0;
    }

    static void Report(string label, double seconds, double flopsPerStep, double peak) =>
        Console.WriteLine($"{label}: {seconds * 1e3:F0} ms/step, {Batch * Tokens / seconds:N0} tokens/s, " +
            $"{flopsPerStep / seconds / 1e9:F1} GFLOP/s, MFU {flopsPerStep / seconds / peak:P1}");

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
