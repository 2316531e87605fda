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
/// Usage: serve [--tokens N] [--repeats N] [--preset NAME]
/// </summary>
public static class ServeBench
{
    public static int Run(string[] args)
    {
        int tokens = 64, repeats = 3;
        string preset = "small";
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--tokens": tokens = int.Parse(args[i + 1]); break;
                case "--repeats": repeats = int.Parse(args[i + 1]); break;
                case "--preset": preset = args[i + 1]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        return RunAsync(tokens, repeats, preset).GetAwaiter().GetResult();
    }

    static async Task<int> RunAsync(int tokens, int repeats, string preset)
    {
        string text = File.ReadAllText(BenchPaths.SharedData("tinyshakespeare.txt"));
        var tokenizer = BpeTrainer.Train([text[..200_000]], 2048);
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

        var json = new JsonObject
        {
            ["preset"] = preset,
            ["parameters"] = config.ParameterCount,
            ["tokens_per_request"] = tokens,
            ["threads"] = ComputeContext.Default.ThreadCount,
            ["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject { ["streams"] = r.Streams, ["tokens_per_second"] = Math.Round(r.TokensPerSecond, 1), ["speedup"] = Math.Round(r.TokensPerSecond / single, 2) }).ToArray()),
        };
        AtomicFile.WriteAllText(Path.Combine(BenchPaths.ResultsFolder(), "serve.json"), json.ToJsonString(new() { WriteIndented = true }));
        await app.StopAsync();
        return 0;
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
