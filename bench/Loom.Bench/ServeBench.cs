using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Models;
using Loom.Server;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// Continuous batching through the HTTP server: aggregate generated tokens/s with 1, 4, 8 and 16
/// concurrent streaming chat requests against one `loom serve` host (in-process, on a loopback port),
/// measured over SSE exactly as a client sees it. Random weights of the `small` preset (about 25M
/// parameters), a BPE vocabulary trained on tinyshakespeare; greedy, a fixed number of tokens per request.
/// Then chunked prefill: the inter-token latency of 4 running streams while idle and while a 2,000-token prompt
/// is prefilled, with the prompt prefilled whole, in slices of its own between decode steps, in fixed slices riding
/// along the decode steps, and in slices paced to the step budget (the engine's default; the same preset with a context
/// of 4,096 tokens; measured on the engine, in-process).
/// Then the same batched decoding against llama.cpp's own on the same weights (<see cref="ServePeerBench"/>).
/// Usage: serve [--tokens N] [--repeats N] [--preset NAME] [--scenario all|throughput|prefill|peer]
/// </summary>
public static class ServeBench
{
    public static int Run(string[] args)
    {
        int tokens = 64, repeats = 3;
        string preset = "small", scenario = "all";
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--tokens": tokens = int.Parse(args[i + 1]); break;
                case "--repeats": repeats = int.Parse(args[i + 1]); break;
                case "--preset": preset = args[i + 1]; break;
                case "--scenario": scenario = args[i + 1]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        if (scenario is not ("all" or "throughput" or "prefill" or "peer")) { Console.Error.WriteLine($"unknown scenario {scenario}: all, throughput, prefill or peer"); return 2; }
        return RunAsync(tokens, repeats, preset, scenario).GetAwaiter().GetResult();
    }

    static async Task<int> RunAsync(int tokens, int repeats, string preset, string scenario)
    {
        string text = File.ReadAllText(BenchPaths.SharedData("tinyshakespeare.txt"));
        var tokenizer = BpeTrainer.Train([text[..200_000]], 2048);
        // One scenario replaces only its own keys of the results file.
        string path = Path.Combine(BenchPaths.ResultsFolder(), "serve.json");
        var json = File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject existing ? existing : new JsonObject();
        json["preset"] = preset;
        json["threads"] = ComputeContext.Default.ThreadCount;
        if (scenario is "all" or "throughput") await Throughput(json, tokenizer, tokens, repeats, preset);
        if (scenario is "all" or "prefill") json["chunked_prefill"] = await PrefillStalls(tokenizer, text, preset);
        if (scenario is "all" or "peer") json["llama_cpp_batched"] = await ServePeerBench.Run(tokenizer, preset, tokens, repeats);
        AtomicFile.WriteAllText(path, json.ToJsonString(new() { WriteIndented = true }));
        return 0;
    }

    static async Task Throughput(JsonObject json, ITokenizer tokenizer, int tokens, int repeats, string preset)
    {
        var config = LlamaConfig.Preset(preset) with { VocabSize = tokenizer.VocabSize, MaxSeq = 512 };
        var transformer = new Transformer(config, 3);
        int[] concurrency = [1, 4, 8, 16];
        await using var model = LoomModel.Create("bench", transformer, tokenizer, new LoomModelOptions { Slots = concurrency.Max() });
        await using var app = LoomServer.Build(new ServedModel(model.Engine), new ServerOptions { Port = 0 });
        await app.StartAsync();
        var address = LoomServer.Addresses(app)[0];
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(10) };
        Console.WriteLine($"serve bench: preset {preset} ({config.ParameterCount / 1e6:F1}M parameters), {tokens} tokens per request, {ComputeContext.Default.ThreadCount} threads, median of {repeats}");

        await Measure(http, 2, tokens); // warm-up: JIT, arena, caches
        var rows = new List<(int Streams, double TokensPerSecond)>();
        foreach (int streams in concurrency)
        {
            var rates = new List<double>();
            for (int r = 0; r < repeats; r++) rates.Add(await Measure(http, streams, tokens));
            rates.Sort();
            rows.Add((streams, rates[rates.Count / 2]));
        }
        double single = rows[0].TokensPerSecond;
        Console.WriteLine($"{"streams",8} {"tokens/s",10} {"vs 1 stream",12}");
        foreach (var (streams, rate) in rows) Console.WriteLine($"{streams,8} {rate,10:F1} {rate / single,11:F2}x");

        json["parameters"] = config.ParameterCount;
        json["tokens_per_request"] = tokens;
        json["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject { ["streams"] = r.Streams, ["tokens_per_second"] = Math.Round(r.TokensPerSecond, 1), ["speedup"] = Math.Round(r.TokensPerSecond / single, 2) }).ToArray());
        await app.StopAsync();
    }

    const int RunningStreams = 4, LongPromptTokens = 2000;

    /// <summary>
    /// Chunked prefill: for each way of slicing (whole prompt; slices of 256 or 64 tokens as steps of their own; 8, 16 or
    /// 32 tokens riding along each decode step; slices along paced to the default step budget of 1.5, at most 16 or 64
    /// tokens) one engine on the same weights; 4 greedy streams run,
    /// then a 2,000-token prompt arrives. Each stream token's latency (time since the stream's previous token) counts
    /// as idle before the prompt arrives and as during the prefill from then until the prompt's first token.
    /// </summary>
    static async Task<JsonArray> PrefillStalls(ITokenizer tokenizer, string text, string preset)
    {
        var config = LlamaConfig.Preset(preset) with { VocabSize = tokenizer.VocabSize, MaxSeq = 4096 };
        var transformer = new Transformer(config, 5);
        int[] longPrompt = tokenizer.Encode(text[300_000..330_000])[..LongPromptTokens];
        // Random weights: the end-of-text and end-of-turn tokens are banned so every stream runs until it is stopped.
        var banned = Enumerable.Range(0, tokenizer.VocabSize).Where(tokenizer.IsEndOfGeneration).ToDictionary(id => id, _ => -100f);
        var sampling = SamplingOptions.Greedy with { LogitBias = banned };
        Console.WriteLine($"chunked prefill: {RunningStreams} running streams, a {LongPromptTokens}-token prompt arrives; {config.ParameterCount / 1e6:F1}M parameters, context {config.MaxSeq}");
        Console.WriteLine($"{"slices",11} {"idle p50",10} {"idle p99",10} {"prefill p50",12} {"prefill p99",12} {"p99/idle p50",13} {"prefill s",10}");
        var rows = new JsonArray();
        // Budget 0: a fixed number of tokens along every step; null: the engine's default pacing.
        foreach (var (chunk, along, budget) in new (int, int, double?)[] { (0, 0, 0), (256, 0, 0), (64, 0, 0), (64, 32, 0), (64, 16, 0), (64, 8, 0), (256, 16, null), (256, 64, null) })
        {
            await using var model = LoomModel.Create("bench", transformer, tokenizer, new LoomModelOptions
            {
                Slots = RunningStreams + 1,
                Engine = new GenerationEngineOptions { PrefillChunkTokens = chunk, PrefillTokensPerDecodeStep = along, PrefillStepBudget = budget },
            });
            var engine = model.Engine;
            // Warm-up: JIT, arena and caches for decode steps, a long prefill and slices along the decode steps of a
            // running stream (the two arrive together: the short one is prefilled at once, the long one rides along).
            await Task.WhenAll(
                Drain(engine, new GenerationRequest { PromptTokens = longPrompt[..8], MaxTokens = 120, Sampling = sampling }),
                Drain(engine, new GenerationRequest { PromptTokens = longPrompt[..600], MaxTokens = 4, Sampling = sampling }));

            using var stop = new CancellationTokenSource();
            var times = Enumerable.Range(0, RunningStreams).Select(_ => new List<(long Time, int Tokens)>()).ToArray();
            var streams = Enumerable.Range(0, RunningStreams).Select(i => Task.Run(async () =>
            {
                try
                {
                    var request = new GenerationRequest { Prompt = $"Tell me about the king, part {i}.", MaxTokens = 3000, Sampling = sampling };
                    await foreach (var update in engine.GenerateAsync(request, stop.Token))
                        lock (times[i]) times[i].Add((Stopwatch.GetTimestamp(), update.CompletionTokens));
                }
                catch (OperationCanceledException) { }
            })).ToArray();
            await WaitForTokens(times, 80); // 40 tokens of start-up, then 40 idle ones
            long arrived = Stopwatch.GetTimestamp();
            await Drain(engine, new GenerationRequest { PromptTokens = longPrompt, MaxTokens = 1, Sampling = sampling });
            long prefilled = Stopwatch.GetTimestamp();
            int after = times.Min(t => { lock (t) return t.Count; });
            await WaitForTokens(times, after + 2);
            stop.Cancel();
            await Task.WhenAll(streams);

            var idle = new List<double>();
            var during = new List<double>();
            foreach (var stream in times)
                for (int k = 1; k < stream.Count; k++)
                {
                    var (time, tokens) = stream[k];
                    double perToken = Stopwatch.GetElapsedTime(stream[k - 1].Time, time).TotalMilliseconds / Math.Max(1, tokens - stream[k - 1].Tokens);
                    if (tokens > 40 && time <= arrived) idle.Add(perToken);
                    else if (time > arrived && stream[k - 1].Time < prefilled) during.Add(perToken);
                }
            double idle50 = Percentile(idle, 0.5), idle99 = Percentile(idle, 0.99), during50 = Percentile(during, 0.5), during99 = Percentile(during, 0.99);
            double prefillSeconds = Stopwatch.GetElapsedTime(arrived, prefilled).TotalSeconds;
            string slicing = chunk == 0 ? "whole" : along == 0 ? chunk.ToString() : budget == 0 ? $"{along} along" : $"paced ≤{along}";
            Console.WriteLine($"{slicing,11} {idle50,8:F1}ms {idle99,8:F1}ms {during50,10:F1}ms {during99,10:F1}ms {during99 / idle50,12:F2}x {prefillSeconds,10:F2}");
            rows.Add(new JsonObject
            {
                ["prefill_chunk_tokens"] = chunk,
                ["prefill_tokens_per_decode_step"] = along,
                ["prefill_step_budget"] = budget ?? 1.5,
                ["idle_p50_ms"] = Math.Round(idle50, 2), ["idle_p99_ms"] = Math.Round(idle99, 2),
                ["prefill_p50_ms"] = Math.Round(during50, 2), ["prefill_p99_ms"] = Math.Round(during99, 2),
                ["prefill_p99_over_idle_p50"] = Math.Round(during99 / idle50, 2),
                ["prefill_seconds"] = Math.Round(prefillSeconds, 3),
                ["tokens_during_prefill"] = during.Count,
            });
        }
        return rows;
    }

    static async Task Drain(GenerationEngine engine, GenerationRequest request)
    {
        await foreach (var _ in engine.GenerateAsync(request)) { }
    }

    /// <summary>Waits until every stream has at least <paramref name="count"/> updates.</summary>
    static async Task WaitForTokens(List<(long Time, int Tokens)>[] times, int count)
    {
        while (times.Any(t => { lock (t) return t.Count < count; })) await Task.Delay(5);
    }

    /// <summary>The value below which a share <paramref name="p"/> of the samples fall (nearest rank); NaN when there are none.</summary>
    static double Percentile(List<double> samples, double p)
    {
        if (samples.Count == 0) return double.NaN;
        var sorted = samples.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    /// <summary>Starts <paramref name="streams"/> streaming requests at once; returns generated tokens per second of wall time.</summary>
    static async Task<double> Measure(HttpClient http, int streams, int tokens)
    {
        var clock = Stopwatch.StartNew();
        var counts = await Task.WhenAll(Enumerable.Range(0, streams).Select(i => Stream(http, $"Tell me about the king, part {i}.", tokens)));
        return counts.Sum() / clock.Elapsed.TotalSeconds;
    }

    /// <summary>One streaming chat request; returns the completion tokens the server reports in its usage chunk.</summary>
    static async Task<int> Stream(HttpClient http, string question, int tokens)
    {
        var body = new JsonObject
        {
            ["model"] = "bench",
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["max_tokens"] = tokens,
            ["temperature"] = 0,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        int completion = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            if (JsonNode.Parse(line[6..])?["usage"] is JsonObject usage) completion = (int)usage["completion_tokens"]!;
        }
        return completion;
    }
}
