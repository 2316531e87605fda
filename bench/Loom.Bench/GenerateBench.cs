using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;

namespace Loom.Bench;

/// <summary>
/// Inference speed of Loom's <see cref="TransformerDecoder"/> against llama.cpp (LLamaSharp) on the same
/// weights exported to GGUF, with the same thread count, both through <see cref="IBatchDecoder"/>:
/// decode tokens/s at batch 1, prefill tokens/s, and the time per token at growing positions (flat with
/// a KV cache, apart from the attention term). Random weights: speed does not depend on their values.
/// Usage: generate [--threads N] [--tokens N] [--models shakespeare-char,small] [--types F32,Q8_0,Q4_K]
/// </summary>
public static class GenerateBench
{
    public static int Run(string[] args)
    {
        int threads = Environment.ProcessorCount, tokens = 64;
        string[] models = ["shakespeare-char", "small"];
        GgmlType[] types = [GgmlType.F32, GgmlType.Q8_0, GgmlType.Q4_K];
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[i + 1]); break;
                case "--tokens": tokens = int.Parse(args[i + 1]); break;
                case "--models": models = args[i + 1].Split(','); break;
                case "--types": types = [.. args[i + 1].Split(',').Select(t => Enum.Parse<GgmlType>(t, ignoreCase: true))]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        using var compute = new ComputeContext(threads);
        Console.WriteLine($"generate bench: {threads} threads, {tokens} decode tokens, AVX-512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}");
        Console.WriteLine($"CPU: {GemmBench.CpuModel()}; {CpuProfile.Current}; load average {LoadAverage()}");
        double bandwidth = ReadBandwidth(threads);
        Console.WriteLine($"read bandwidth: {bandwidth:F1} GB/s (streaming sum over 1 GiB on {threads} threads, best of 5)");
        string folder = Directory.CreateTempSubdirectory("loom-generate-bench-").FullName;
        try
        {
            foreach (var name in models) Model(name, compute, tokens, folder, types, bandwidth);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        return 0;
    }

    const int ContextLength = 544;
    const int PrefillTokens = 256;
    static readonly int[] Positions = [32, 128, 256, 512];

    static void Model(string preset, ComputeContext compute, int tokens, string folder, GgmlType[] types, double bandwidth)
    {
        var config = LlamaConfig.Preset(preset) with { MaxSeq = ContextLength };
        var model = new Transformer(config, seed: 1);
        Console.WriteLine();
        Console.WriteLine($"== {preset}: {config.Layers} layers, {config.Dim} dims, {config.Heads} heads, hidden {config.HiddenDim}, vocab {config.VocabSize}, {config.ParameterCount / 1e6:F2}M parameters ({config.ParameterCount * 4 / 1e6:F1} MB in F32)");

        var loom = Measure(new TransformerDecoder(model, slotCount: 1, compute: compute), config.VocabSize, tokens);
        Report("Loom F32", loom, null);
        // Decode reads every weight once per token: bytes per token over the time per token, against the machine.
        double bytes = config.ParameterCount * 4.0, reached = bytes * loom.DecodeTokensPerSecond / 1e9;
        double gemv = GemvSeconds(config, compute);
        Console.WriteLine($"{"",-16} F32 weights {bytes / 1e6:F1} MB/token: {reached:F1} GB/s, {100 * reached / bandwidth:F0}% of the read bandwidth; " +
            $"the token's GEMVs alone {1e3 * gemv:F3} ms = {100 * gemv * loom.DecodeTokensPerSecond:F0}% of its decode time (the rest: attention, norms, RoPE, sampling)");

        var vocabulary = GgufVocabulary.FromCharacters([.. Enumerable.Range(0, config.VocabSize).Select(i => ((char)(0x4E00 + i)).ToString())]);
        var weights = model.Parameters.ToDictionary(p => p.Name!);
        foreach (var type in types)
        {
            string path = Path.Combine(folder, $"{preset}-{type}.gguf");
            LlamaGguf.Write(path, config, weights, vocabulary, type, preset);
            // Quantised rows pair Loom's int8 kernels on the very same file (memory-mapped, never expanded) with llama.cpp.
            var paired = loom;
            if (type != GgmlType.F32)
            {
                paired = Measure(new TransformerDecoder(QuantizedLlamaGguf.Load(path, config), slotCount: 1, compute: compute), config.VocabSize, tokens);
                Report($"Loom {type}", paired, null);
            }
            var llama = Measure(LlamaCppDecoder.Load(path, slots: 1, new LlamaCppOptions(ContextSize: ContextLength, Threads: compute.ThreadCount)), config.VocabSize, tokens);
            Report($"llama.cpp {type}", llama, paired);
            File.Delete(path);
        }
    }

    sealed record Result(double DecodeTokensPerSecond, double PrefillTokensPerSecond, double[] MillisecondsAt);

    /// <summary>Times one decoder (then disposes it): best of three prefills, a decode run, and per-token times at growing positions.</summary>
    static Result Measure(IBatchDecoder decoder, int vocab, int tokens)
    {
        using var _ = decoder;
        var logits = new float[vocab];
        int[] prompt = [.. Enumerable.Range(0, PrefillTokens).Select(i => i * 7 % vocab)];
        int[] slot = [0];
        int[] next = [0];

        // Warm-up: buffers, thread pools, RoPE tables, and .NET's tiered JIT (a method is recompiled
        // optimised after 30 calls, in the background), so that no measured token runs first-tier code.
        for (int run = 0; run < 2; run++)
        {
            decoder.Prefill(0, prompt, logits);
            for (int i = 0; i < 100; i++) { next[0] = i % vocab; decoder.Decode(slot, next, logits); }
            Thread.Sleep(200);
        }

        double prefill = double.MaxValue;
        for (int run = 0; run < 3; run++)
        {
            var watch = Stopwatch.StartNew();
            decoder.Prefill(0, prompt, logits);
            prefill = Math.Min(prefill, watch.Elapsed.TotalSeconds);
        }

        // Decode at batch 1 from a short prompt, so that the attention span stays small as in chat. Each
        // token is timed alone and the median kept: on a shared machine a preempted token says nothing
        // about either engine.
        decoder.Prefill(0, prompt.AsSpan(0, 16), logits);
        var times = new double[tokens];
        for (int i = 0; i < tokens; i++)
        {
            next[0] = i * 13 % vocab;
            long start = Stopwatch.GetTimestamp();
            decoder.Decode(slot, next, logits);
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        double decodeSeconds = Median(times);

        // Time per token at growing positions (median of a window): one sequence decoded up to the last position.
        const int window = 9;
        var at = new double[Positions.Length];
        var windowTimes = new double[window];
        decoder.Prefill(0, prompt.AsSpan(0, 1), logits);
        int position = 1;
        for (int p = 0; p < Positions.Length; p++)
        {
            for (; position < Positions[p]; position++) { next[0] = position % vocab; decoder.Decode(slot, next, logits); }
            for (int i = 0; i < window; i++, position++)
            {
                next[0] = position % vocab;
                long start = Stopwatch.GetTimestamp();
                decoder.Decode(slot, next, logits);
                windowTimes[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            at[p] = Median(windowTimes);
        }
        decoder.Release(0);
        return new Result(1 / decodeSeconds, PrefillTokens / prefill, at);
    }

    /// <summary>Read bandwidth: a streaming sum over 1 GiB split across <paramref name="threads"/> threads, best of 5, GB/s.</summary>
    static unsafe double ReadBandwidth(int threads)
    {
        const long Bytes = 1L << 30;
        long count = Bytes / sizeof(float);
        float* data = (float*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        try
        {
            new Span<float>(data, (int)count).Fill(1f);
            nint start = (nint)data;
            var sums = new float[threads];
            double best = 0;
            for (int run = 0; run < 5; run++)
            {
                var clock = Stopwatch.StartNew();
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    long first = count * t / threads, end = count * (t + 1) / threads;
                    sums[t] = TensorPrimitives.Sum(new ReadOnlySpan<float>((float*)start + first, (int)(end - first)));
                });
                best = Math.Max(best, Bytes / clock.Elapsed.TotalSeconds / 1e9);
            }
            return best;
        }
        finally { NativeMemory.AlignedFree(data); }
    }

    /// <summary>
    /// Median time of the GEMVs of one decoded token (per layer: q·k·v fused, o, gate·up fused, down; then the LM head),
    /// on weights of the model's sizes in separate buffers, as the decoder runs them.
    /// </summary>
    static unsafe double GemvSeconds(LlamaConfig config, ComputeContext compute)
    {
        int dim = config.Dim, kvDim = config.KvDim, hidden = config.HiddenDim;
        var shapes = new List<(int K, int N)>();
        for (int layer = 0; layer < config.Layers; layer++) shapes.AddRange([(dim, dim + 2 * kvDim), (dim, dim), (dim, 2 * hidden), (hidden, dim)]);
        shapes.Add((dim, config.VocabSize));
        var weights = shapes.Select(s => (nint)NativeMemory.AlignedAlloc((nuint)((long)s.K * s.N * sizeof(float)), 64)).ToArray();
        float* x = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(hidden, dim) * sizeof(float)), 64);
        float* y = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(config.VocabSize, 2 * hidden + dim) * sizeof(float)), 64);
        try
        {
            for (int i = 0; i < shapes.Count; i++) new Span<float>((float*)weights[i], shapes[i].K * shapes[i].N).Fill(0.01f);
            new Span<float>(x, Math.Max(hidden, dim)).Fill(1f);
            var times = new double[41];
            for (int run = -10; run < times.Length; run++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < shapes.Count; i++) Gemv.Multiply(x, 1, shapes[i].K, (float*)weights[i], shapes[i].N, y, compute);
                if (run >= 0) times[run] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            return Median(times);
        }
        finally
        {
            foreach (var w in weights) NativeMemory.AlignedFree((void*)w);
            NativeMemory.AlignedFree(x);
            NativeMemory.AlignedFree(y);
        }
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    static void Report(string name, Result result, Result? loom)
    {
        string positions = string.Join(", ", Positions.Select((p, i) => $"@{p} {result.MillisecondsAt[i]:F3}"));
        Console.WriteLine($"{name,-16} decode {result.DecodeTokensPerSecond,9:F1} tokens/s (median token)   prefill {result.PrefillTokensPerSecond,9:F1} tokens/s (best of 3, {PrefillTokens} tokens)   ms/token {positions} (x{result.MillisecondsAt[^1] / result.MillisecondsAt[0]:F2} from first to last)");
        if (loom is not null)
            Console.WriteLine($"{"",-16} Loom / {name}: decode x{loom.DecodeTokensPerSecond / result.DecodeTokensPerSecond:F2}, prefill x{loom.PrefillTokensPerSecond / result.PrefillTokensPerSecond:F2}");
    }
}
