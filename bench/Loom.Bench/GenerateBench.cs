using System.Diagnostics;
using System.Runtime.Intrinsics;
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
/// Quantised rows (Q8_0, Q4_K) also give the fraction of the machine's read bandwidth each engine reaches
/// (weight bytes read per token × tokens/s ÷ the bandwidth measured in the same run with the same threads).
/// The preset llama3.2-1b measures resident memory (VmHWM) of a Q4_K decode instead of speed.
/// Usage: generate [--threads N[,N]] [--tokens N] [--models shakespeare-char,small,smollm2-135m,qwen2.5-0.5b,llama3.2-1b]
///   [--types f32,q8_0,q4_k]
/// </summary>
public static class GenerateBench
{
    /// <summary>Random-weight models in real open models' shapes (context cut to <see cref="ContextLength"/>).</summary>
    static readonly Dictionary<string, LlamaConfig> OpenShapes = new()
    {
        ["smollm2-135m"] = new() { VocabSize = 49152, Dim = 576, Layers = 30, Heads = 9, KvHeads = 3, HiddenDim = 1536, RopeTheta = 100000f },
        ["qwen2.5-0.5b"] = new()
        {
            ModelType = LlamaConfig.Qwen2Type, VocabSize = 151936, Dim = 896, Layers = 24, Heads = 14, KvHeads = 2, HiddenDim = 4864,
            RopeTheta = 1000000f, NormEps = 1e-6f,
        },
        ["llama3.2-1b"] = new()
        {
            VocabSize = 128256, Dim = 2048, Layers = 16, Heads = 32, KvHeads = 8, HiddenDim = 8192, RopeTheta = 500000f,
            RopeScaling = new RopeScaling(32, 1, 4, 8192),
        },
    };

    /// <summary>The preset measured for resident memory rather than speed.</summary>
    const string MemoryPreset = "llama3.2-1b";

    public static int Run(string[] args)
    {
        int[] threadCounts = [Environment.ProcessorCount];
        int tokens = 64;
        string[] models = ["shakespeare-char", "small"];
        GgmlType[]? types = null;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--threads": threadCounts = [.. args[i + 1].Split(',').Select(int.Parse)]; break;
                case "--tokens": tokens = int.Parse(args[i + 1]); break;
                case "--models": models = args[i + 1].Split(','); break;
                case "--types": types = [.. args[i + 1].Split(',').Select(t => GgmlTypes.Parse(t) ?? throw new ArgumentException($"unknown type {t}"))]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        Console.WriteLine($"generate bench: threads {string.Join(",", threadCounts)}, {tokens} decode tokens, AVX-512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, quantised kernel {QuantizedGemv.Best}, load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"CPU: {GemmBench.CpuModel()}; {CpuProfile.Current}");
        string folder = Directory.CreateTempSubdirectory("loom-generate-bench-").FullName;
        var summary = new List<string>();
        try
        {
            foreach (var name in models)
            {
                if (name == MemoryPreset) ResidentMemory(folder);
                else Model(name, threadCounts, types, tokens, folder, summary);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        if (summary.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("| model | type | threads | Loom decode tok/s | llama.cpp decode tok/s | decode ratio | Loom prefill tok/s | llama.cpp prefill tok/s | prefill ratio | read GB/s | Loom BW | llama.cpp BW |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var line in summary) Console.WriteLine(line);
        }
        return 0;
    }

    const int ContextLength = 544;
    const int PrefillTokens = 256;
    static readonly int[] Positions = [32, 128, 256, 512];

    static LlamaConfig ConfigOf(string preset) =>
        (OpenShapes.TryGetValue(preset, out var shape) ? shape : LlamaConfig.Preset(preset)) with { MaxSeq = ContextLength };

    static void Model(string preset, int[] threadCounts, GgmlType[]? types, int tokens, string folder, List<string> summary)
    {
        var config = ConfigOf(preset);
        // The open shapes are quantised only by default: their F32 rows take minutes and gigabytes.
        types ??= OpenShapes.ContainsKey(preset) ? [GgmlType.Q8_0, GgmlType.Q4_K] : [GgmlType.F32, GgmlType.Q8_0, GgmlType.Q4_K];
        Console.WriteLine();
        Console.WriteLine($"== {preset}: {config.Layers} layers, {config.Dim} dims, {config.Heads} heads ({config.KvHeads} kv), hidden {config.HiddenDim}, vocab {config.VocabSize}, {config.ModelType}, {config.ParameterCount / 1e6:F2}M parameters ({config.ParameterCount * 4 / 1e6:F1} MB in F32)");

        // Every file is written from one F32 model, which is then dropped before anything is timed (unless F32 is measured).
        var model = new Transformer(config, seed: 1);
        // The open shapes' vocabularies outgrow one BMP character a token: their files have none, and llama.cpp runs on ids.
        var vocabulary = OpenShapes.ContainsKey(preset) ? null
            : GgufVocabulary.FromCharacters([.. Enumerable.Range(0, config.VocabSize).Select(i => ((char)(0x4E00 + i)).ToString())]);
        var weights = model.Parameters.ToDictionary(p => p.Name!);
        var paths = new Dictionary<GgmlType, string>();
        foreach (var type in types)
        {
            paths[type] = Path.Combine(folder, $"{preset}-{type}.gguf");
            LlamaGguf.Write(paths[type], config, weights, vocabulary, type, preset);
        }
        weights.Clear();
        if (!types.Contains(GgmlType.F32)) model = null;
        GC.Collect();

        foreach (int threads in threadCounts)
        {
            using var compute = new ComputeContext(threads);
            double bandwidth = ReadBandwidth(compute);
            Console.WriteLine($"-- {threads} thread(s): read bandwidth {bandwidth / 1e9:F1} GB/s, load {File.ReadAllText("/proc/loadavg").Trim()}");
            Result? loomF32 = null;
            foreach (var type in types)
            {
                Result loom;
                long bytesPerToken;
                if (type == GgmlType.F32)
                {
                    loom = loomF32 ??= Measure(new TransformerDecoder(model!, slotCount: 1, compute: compute), config.VocabSize, tokens);
                    bytesPerToken = WeightBytesPerToken(model!);
                    Report("Loom F32", loom, null, null);
                }
                else
                {
                    // Loom's int8 kernels on the very same file as llama.cpp (memory-mapped, never expanded).
                    var quantized = QuantizedLlamaGguf.Load(paths[type], config);
                    bytesPerToken = WeightBytesPerToken(quantized);
                    loom = Measure(new TransformerDecoder(quantized, slotCount: 1, compute: compute), config.VocabSize, tokens);
                    Report($"Loom {type}", loom, null, (bytesPerToken, bandwidth));
                }
                var llama = Measure(LlamaCppDecoder.Load(paths[type], slots: 1, new LlamaCppOptions(ContextSize: ContextLength, Threads: threads)), config.VocabSize, tokens);
                Report($"llama.cpp {type}", llama, loom, (bytesPerToken, bandwidth));
                summary.Add($"| {preset} | {type} | {threads} | {loom.DecodeTokensPerSecond:F1} | {llama.DecodeTokensPerSecond:F1} | {loom.DecodeTokensPerSecond / llama.DecodeTokensPerSecond:F2} | "
                    + $"{loom.PrefillTokensPerSecond:F1} | {llama.PrefillTokensPerSecond:F1} | {loom.PrefillTokensPerSecond / llama.PrefillTokensPerSecond:F2} | {bandwidth / 1e9:F1} | "
                    + $"{bytesPerToken * loom.DecodeTokensPerSecond / bandwidth:P0} | {bytesPerToken * llama.DecodeTokensPerSecond / bandwidth:P0} |");
            }
        }
        foreach (var path in paths.Values) File.Delete(path);
    }

    /// <summary>
    /// Bytes of weights a decode step reads: every matrix and norm once, the LM head included (a tied embedding
    /// counts once, as the head; an untied embedding only looks up one row and is left out).
    /// </summary>
    static long WeightBytesPerToken(Transformer model) => model.Parameters
        .Where(p => model.Config.TiedEmbeddings || !ReferenceEquals(p, model.TokenEmbedding))
        .Sum(p => p.Quantized?.ByteCount ?? 4L * p.Length);

    /// <summary>
    /// Bytes per second that <paramref name="compute"/>'s threads read from memory: a 512 MiB buffer (far beyond
    /// the caches) summed with 512-bit loads, split in equal parts over the threads; best of 5 passes.
    /// </summary>
    static double ReadBandwidth(ComputeContext compute)
    {
        const int Parts = 64;
        var buffer = GC.AllocateUninitializedArray<float>(128 << 20, pinned: true); // [128 Mi] 512 MiB
        buffer.AsSpan().Fill(1f);
        var work = new SumWork(buffer, Parts);
        double best = double.MaxValue;
        for (int pass = 0; pass < 5; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            compute.Run(Parts, work);
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return 4.0 * buffer.Length / best;
    }

    sealed class SumWork(float[] buffer, int parts) : IParallelWork
    {
        public float Total;

        public unsafe void Execute(int index)
        {
            int length = buffer.Length / parts;
            fixed (float* start = &buffer[index * length])
            {
                var a = Vector512<float>.Zero;
                var b = Vector512<float>.Zero;
                var c = Vector512<float>.Zero;
                var d = Vector512<float>.Zero;
                for (int i = 0; i < length; i += 64)
                {
                    a += Vector512.Load(start + i);
                    b += Vector512.Load(start + i + 16);
                    c += Vector512.Load(start + i + 32);
                    d += Vector512.Load(start + i + 48);
                }
                Total += Vector512.Sum(a + b + c + d); // kept so the loads are not dropped
            }
        }
    }

    /// <summary>
    /// Resident memory of a 1B-shape model decoding in Q4_K: the F32 model is built, written as Q4_K and dropped
    /// before the peak is reset (clear_refs), then the file is loaded (memory-mapped) and decodes a few tokens.
    /// </summary>
    static void ResidentMemory(string folder)
    {
        var config = ConfigOf(MemoryPreset);
        Console.WriteLine();
        Console.WriteLine($"== {MemoryPreset}: {config.Layers} layers, {config.Dim} dims, {config.Heads} heads ({config.KvHeads} kv), hidden {config.HiddenDim}, vocab {config.VocabSize}, {config.ParameterCount / 1e9:F2}B parameters; Q4_K resident memory");
        string path = Path.Combine(folder, $"{MemoryPreset}-Q4_K.gguf");
        WriteRandom(path, config);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current resident set
        Console.WriteLine($"after writing {new FileInfo(path).Length / 1e6:F0} MB of Q4_K and dropping the F32 model: {MemoryLine()}");
        using var compute = new ComputeContext(Environment.ProcessorCount);
        using (var decoder = new TransformerDecoder(QuantizedLlamaGguf.Load(path, config), slotCount: 1, compute: compute))
        {
            var logits = new float[config.VocabSize];
            decoder.Prefill(0, [1, 2, 3, 4, 5, 6, 7, 8], logits);
            int[] slot = [0], next = [0];
            for (int i = 0; i < 8; i++) { next[0] = i * 13 % config.VocabSize; decoder.Decode(slot, next, logits); }
            Console.WriteLine($"Q4_K after an 8-token prefill and 8 decode steps: {MemoryLine()}");
        }
        File.Delete(path);
    }

    static void WriteRandom(string path, LlamaConfig config)
    {
        var model = new Transformer(config, seed: 1);
        LlamaGguf.Write(path, config, model.Parameters.ToDictionary(p => p.Name!), null, GgmlType.Q4_K, MemoryPreset);
    }

    static string MemoryLine()
    {
        var status = File.ReadAllLines("/proc/self/status");
        string Field(string name) => status.First(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();
        return $"VmHWM {Field("VmHWM")}, VmRSS {Field("VmRSS")} (file-backed {Field("RssFile")}, anonymous {Field("RssAnon")})";
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

    static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    static void Report(string name, Result result, Result? loom, (long BytesPerToken, double Bandwidth)? memory)
    {
        string positions = string.Join(", ", Positions.Select((p, i) => $"@{p} {result.MillisecondsAt[i]:F3}"));
        string fraction = memory is var (bytes, bandwidth)
            ? $"   {bytes / 1e6:F0} MB/token = {bytes * result.DecodeTokensPerSecond / 1e9:F1} GB/s, {bytes * result.DecodeTokensPerSecond / bandwidth:P0} of read bandwidth"
            : "";
        Console.WriteLine($"{name,-16} decode {result.DecodeTokensPerSecond,9:F1} tokens/s (median token)   prefill {result.PrefillTokensPerSecond,9:F1} tokens/s (best of 3, {PrefillTokens} tokens)   ms/token {positions} (x{result.MillisecondsAt[^1] / result.MillisecondsAt[0]:F2} from first to last){fraction}");
        if (loom is not null)
            Console.WriteLine($"{"",-16} Loom / {name}: decode x{loom.DecodeTokensPerSecond / result.DecodeTokensPerSecond:F2}, prefill x{loom.PrefillTokensPerSecond / result.PrefillTokensPerSecond:F2}");
    }
}
