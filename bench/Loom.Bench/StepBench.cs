using System.Diagnostics;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Bench;

/// <summary>
/// `step`: one training step (forward + backward + clipping + AdamW) of the transformer stack at
/// batch 8 × 256 tokens, 256 channels, 4 layers, vocabulary 4096, on 2 threads. Prints ms/step,
/// tokens/s and model-FLOPs utilisation against Loom's GEMM rate at (4096, 256, 1024) measured in
/// the same run; then the same step with subnormal values planted in the weights and the embedded
/// inputs before every step, which must run at the same speed.
/// </summary>
internal static class StepBench
{
    const int Batch = 8;
    const int Tokens = 256;
    const int Threads = 2;
    const int WarmupSteps = 2;
    const int DefaultSamples = 5;
    const float Subnormal = 1e-40f;

    static readonly LlamaConfig Config = new() { VocabSize = 4096, Dim = 256, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 768, MaxSeq = Tokens };

    /// <summary>Options: --samples N (timed steps per variant, median reported).</summary>
    public static int Run(string[] args)
    {
        int samples = DefaultSamples;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--samples" && i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n >= 1) { samples = n; i++; }
            else
            {
                Console.Error.WriteLine($"step: unknown or invalid option '{args[i]}' (options: --samples N)");
                return 2;
            }
        }
        using var compute = new ComputeContext(Threads);
        double peak = PeakFlops.Measure(4096, 256, 1024, TimeSpan.FromSeconds(1), compute);

        var model = new Transformer(Config, seed: 1);
        var optimizer = new AdamW(model.Parameters, new AdamWOptions(3e-4f) { Compute = compute });
        var tape = new Tape(compute);
        var random = new DeterministicRandom(2);
        var ids = new int[Batch * Tokens];     // [batch, tokens]
        var targets = new int[Batch * Tokens]; // [batch, tokens]
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)random.NextInt64(Config.VocabSize);
            targets[i] = (int)random.NextInt64(Config.VocabSize);
        }

        double Step()
        {
            long start = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad();
            tape.Reset();
            var loss = model.Loss(tape, ids, targets, Batch, Tokens); // [1]
            tape.Backward(loss);
            GradientClipping.ClipGradientNorm(model.Parameters, 1f);
            optimizer.Step(3e-4f);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        // A quarter of every weight (and so of the embedded inputs) becomes subnormal; AdamW flushes
        // them after each step, so they are planted again before every timed step.
        void PlantSubnormals()
        {
            foreach (var p in model.Parameters)
            {
                if (p.Rank < 2) continue;
                var span = p.Span;
                for (int i = 0; i < span.Length; i += 4) span[i] = (i & 8) == 0 ? Subnormal : -Subnormal;
            }
        }

        for (int i = 0; i < WarmupSteps; i++) Step();
        var normal = new List<double>();
        var subnormal = new List<double>();
        int plantedCount = 0;
        for (int i = 0; i < samples; i++) // alternate, so drift in the shared CPUs hits both alike
        {
            normal.Add(Step());
            PlantSubnormals();
            plantedCount = model.Parameters.Sum(p => Subnormals.Count(p.Span));
            subnormal.Add(Step());
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
