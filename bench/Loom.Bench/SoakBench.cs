using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Models;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// Soak test: starts `loom serve` as its own process on loopback (random weights, a small BPE vocabulary
/// trained on tinyshakespeare) and drives mixed traffic from concurrent clients for a bounded time:
/// valid chat and completion requests (some streamed), embeddings, /health, /metrics, /v1/models, and
/// hostile ones (malformed JSON, invalid UTF-8, lone surrogates, bodies over the limit, unknown paths,
/// wrong types, out-of-range parameters, oversized max_tokens, wrong methods and content types, slow and
/// cancelled clients). Reports requests served, p50/p99 latency of valid requests, counts per status code
/// and the server's RSS after warm-up and at the end; fails on any 5xx.
/// Usage: soak [--minutes M] [--clients N] [--seed N]
/// </summary>
public static class SoakBench
{
    const int MaxTokensLimit = 64;

    public static int Run(string[] args)
    {
        double minutes = 10;
        int clients = 8;
        int seed = 1;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--minutes": minutes = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--clients": clients = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seed": seed = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        return RunAsync(TimeSpan.FromMinutes(minutes), clients, seed).GetAwaiter().GetResult();
    }

    /// <summary>What every request did: status counts, latencies of valid requests, client-side outcomes.</summary>
    sealed class Tally
    {
        public readonly Dictionary<string, long> ByOutcome = new(StringComparer.Ordinal);
        public readonly Dictionary<string, long> ByKind = new(StringComparer.Ordinal);
        public readonly List<double> ValidMilliseconds = [];
        public readonly List<double> GenerationMilliseconds = [];
        public readonly List<string> ServerErrors = [];
        public long Requests;

        public void Add(string kind, string outcome, double? validMilliseconds)
        {
            lock (this)
            {
                Requests++;
                ByKind[kind] = ByKind.GetValueOrDefault(kind) + 1;
                ByOutcome[outcome] = ByOutcome.GetValueOrDefault(outcome) + 1;
                if (validMilliseconds is double ms)
                {
                    ValidMilliseconds.Add(ms);
                    if (kind is "chat" or "chat-stream" or "completion") GenerationMilliseconds.Add(ms);
                }
            }
        }
    }

    static async Task<int> RunAsync(TimeSpan duration, int clientCount, int seed)
    {
        string folder = Directory.CreateTempSubdirectory("loom-soak-").FullName;
        try
        {
            string text = File.ReadAllText(BenchPaths.SharedData("tinyshakespeare.txt"));
            var tokenizer = BpeTrainer.Train([text[..100_000]], 512);
            var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 128, MaxSeq = 256 };
            // The served model is named after its folder: "soak", the name every request asks for.
            string checkpoint = Path.Combine(folder, "soak");
            Checkpoint.Save(checkpoint, new Transformer(config, 5), tokenizer.Save);

            using var server = await ServerProcess.StartAsync(checkpoint);
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clientCount * 2, PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
            {
                BaseAddress = server.Address,
                Timeout = TimeSpan.FromSeconds(60),
            };
            string first = await Post(http, "/v1/chat/completions", Chat(new Random(seed), stream: false));
            if (first != "200") throw new InvalidOperationException($"soak: a valid chat request got {first}, not 200; the traffic would not exercise generation");
            Console.WriteLine($"soak: loom serve pid {server.Pid} at {server.Address}, {config.ParameterCount / 1e6:F2}M parameters, {clientCount} clients, {duration.TotalMinutes:F1} min, max_tokens limit {MaxTokensLimit}");

            var tally = new Tally();
            var clock = Stopwatch.StartNew();
            var warmUp = TimeSpan.FromSeconds(Math.Clamp(duration.TotalSeconds / 10, 5, 60));
            var deadline = clock.Elapsed + duration;
            var loops = Enumerable.Range(0, clientCount).Select(c => Task.Run(() => ClientLoop(http, new Random(seed * 1000 + c), tally, clock, deadline))).ToList();

            await Task.Delay(warmUp);
            long warmRss = server.ResidentBytes();
            long peakRss = warmRss;
            Console.WriteLine($"{clock.Elapsed.TotalSeconds,6:F0} s  warm-up done: RSS {warmRss / 1e6:F1} MB, {tally.Requests} requests");
            while (clock.Elapsed < deadline)
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, Math.Max(1, (deadline - clock.Elapsed).TotalSeconds))));
                long rss = server.ResidentBytes();
                peakRss = Math.Max(peakRss, rss);
                long errors;
                lock (tally) errors = tally.ByOutcome.Where(p => p.Key.StartsWith('5')).Sum(p => p.Value);
                Console.WriteLine($"{clock.Elapsed.TotalSeconds,6:F0} s  RSS {rss / 1e6:F1} MB, {tally.Requests} requests, {errors} 5xx");
            }
            await Task.WhenAll(loops);
            long endRss = server.ResidentBytes();
            bool alive = server.IsRunning;

            var latencies = tally.ValidMilliseconds.Order().ToList();
            var generation = tally.GenerationMilliseconds.Order().ToList();
            static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
            long serverErrors = tally.ByOutcome.Where(p => p.Key.StartsWith('5')).Sum(p => p.Value);
            double growth = (endRss - warmRss) / (double)warmRss;
            var report = new StringBuilder();
            report.AppendLine($"Loom soak {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: loom serve (separate process), {config.ParameterCount / 1e6:F2}M-parameter random model, {clientCount} clients, {clock.Elapsed.TotalMinutes:F1} min, {Environment.ProcessorCount} cores");
            report.AppendLine($"requests served: {tally.Requests:N0} ({tally.Requests / clock.Elapsed.TotalSeconds:F1}/s); valid answered 2xx: {latencies.Count:N0}, p50 {Percentile(latencies, 0.50):F0} ms, p99 {Percentile(latencies, 0.99):F0} ms, max {(latencies.Count == 0 ? double.NaN : latencies[^1]):F0} ms");
            report.AppendLine($"of which chat and completions (up to 31 tokens, some streamed): {generation.Count:N0}, p50 {Percentile(generation, 0.50):F0} ms, p99 {Percentile(generation, 0.99):F0} ms");
            report.AppendLine($"status codes: {string.Join(", ", tally.ByOutcome.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}: {p.Value:N0}"))}");
            report.AppendLine($"request kinds: {string.Join(", ", tally.ByKind.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value:N0}"))}");
            report.AppendLine($"server RSS: {warmRss / 1e6:F1} MB after {warmUp.TotalSeconds:F0} s warm-up, {endRss / 1e6:F1} MB at the end ({growth:+0.0%;-0.0%}), peak sampled {peakRss / 1e6:F1} MB; server {(alive ? "still running" : "EXITED")}");
            report.AppendLine($"5xx: {serverErrors}; memory within 10% of warm-up: {(Math.Abs(growth) <= 0.10 ? "yes" : "NO")}");
            foreach (string error in tally.ServerErrors.Distinct().Take(10)) report.AppendLine($"  5xx: {error}");
            Console.WriteLine();
            Console.Write(report);
            AtomicFile.WriteAllText(Path.Combine(BenchPaths.ResultsFolder(), $"soak-{DateTime.UtcNow:yyyy-MM-dd}.txt"), report.ToString());
            return serverErrors == 0 && alive && Math.Abs(growth) <= 0.10 ? 0 : 1;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static async Task ClientLoop(HttpClient http, Random random, Tally tally, Stopwatch clock, TimeSpan deadline)
    {
        while (clock.Elapsed < deadline)
        {
            var request = Pick(random);
            var start = Stopwatch.GetTimestamp();
            string outcome;
            try
            {
                outcome = await request.Send(http, random);
            }
            catch (TaskCanceledException)
            {
                outcome = "client timeout";
            }
            catch (HttpRequestException e)
            {
                outcome = $"connection error ({e.HttpRequestError})";
            }
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            tally.Add(request.Kind, outcome, request.Valid && outcome.StartsWith('2') ? ms : null);
            if (outcome.StartsWith('5'))
                lock (tally) tally.ServerErrors.Add($"{request.Kind}: {outcome}");
        }
    }

    /// <summary>One kind of request: its name, whether it is a valid request (its latency counts), and how to send it; returns the status code or the client-side outcome.</summary>
    sealed record Traffic(string Kind, bool Valid, Func<HttpClient, Random, Task<string>> Send);

    static readonly (int Weight, Traffic Traffic)[] Mix =
    [
        (12, new("chat", true, (h, r) => Post(h, "/v1/chat/completions", Chat(r, stream: false)))),
        (8, new("chat-stream", true, (h, r) => Stream(h, "/v1/chat/completions", Chat(r, stream: true), cancelAfterFirstChunk: false))),
        (6, new("completion", true, (h, r) => Post(h, "/v1/completions", Completion(r, stream: r.Next(2) == 0)))),
        (6, new("embeddings", true, (h, r) => Post(h, "/v1/embeddings", new JsonObject { ["model"] = "soak", ["input"] = new JsonArray(Words(r, 8), Words(r, 20)) }.ToJsonString()))),
        (4, new("health", true, (h, _) => Get(h, "/health"))),
        (4, new("metrics", true, (h, _) => Get(h, "/metrics"))),
        (2, new("models", true, (h, _) => Get(h, "/v1/models"))),
        (3, new("malformed-json", false, (h, r) => Post(h, "/v1/chat/completions", "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"" + Words(r, 3)))),
        (3, new("invalid-utf8", false, (h, _) => PostBytes(h, "/v1/chat/completions", [.. "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\""u8, 0xC3, 0x28, 0xFF, .. "\"}]}"u8], "application/json"))),
        (2, new("lone-surrogate", false, (h, _) => Post(h, "/v1/completions", "{\"model\":\"soak\",\"prompt\":\"a\\ud800b\"}"))),
        (1, new("huge-body", false, (h, r) => Post(h, "/v1/chat/completions", "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', (1 << 20) + r.Next(1 << 19)) + "\"}]}"))),
        (3, new("unknown-path", false, (h, r) => Get(h, "/" + string.Concat(Enumerable.Range(0, 1 + r.Next(200)).Select(_ => (char)('a' + r.Next(26))))))),
        (3, new("wrong-types", false, (h, r) => Post(h, "/v1/chat/completions", r.Next(3) switch
        {
            0 => "{\"model\":\"soak\",\"messages\":\"hello\"}",
            1 => "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":\"ten\",\"stream\":1}",
            _ => "[1,2,3]",
        }))),
        (3, new("out-of-range", false, (h, r) => Post(h, "/v1/chat/completions", r.Next(4) switch
        {
            0 => "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":5}",
            1 => "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":-1,\"n\":1000}",
            2 => "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"frequency_penalty\":1e39}",
            _ => "{\"model\":\"soak\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-5}",
        }))),
        (2, new("oversized-max-tokens", false, (h, _) => Post(h, "/v1/completions", $"{{\"model\":\"soak\",\"prompt\":\"once\",\"max_tokens\":{MaxTokensLimit * 1000}}}"))),
        (2, new("wrong-method", false, (h, _) => Get(h, "/v1/chat/completions"))),
        (2, new("text-plain", false, (h, r) => PostBytes(h, "/v1/chat/completions", Encoding.UTF8.GetBytes(Chat(r, stream: false)), "text/plain"))),
        (1, new("slow-client", false, (h, r) => SlowPost(h, "/v1/chat/completions", Chat(r, stream: false)))),
        (2, new("cancelled-stream", false, (h, r) => Stream(h, "/v1/chat/completions", Chat(r, stream: true), cancelAfterFirstChunk: true))),
    ];

    static Traffic Pick(Random random)
    {
        int total = Mix.Sum(m => m.Weight), pick = random.Next(total);
        foreach (var (weight, traffic) in Mix)
        {
            if (pick < weight) return traffic;
            pick -= weight;
        }
        throw new InvalidOperationException("unreachable");
    }

    static readonly string[] Vocabulary = ["the", "king", "queen", "speak", "night", "love", "sword", "crown", "why", "what", "tell", "me", "of", "thy", "lord"];

    static string Words(Random random, int count) => string.Join(' ', Enumerable.Range(0, count).Select(_ => Vocabulary[random.Next(Vocabulary.Length)]));

    static string Chat(Random random, bool stream) => new JsonObject
    {
        ["model"] = "soak",
        ["stream"] = stream,
        ["max_tokens"] = 4 + random.Next(28),
        ["temperature"] = random.Next(2) == 0 ? 0 : 0.8,
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "Answer briefly." },
            new JsonObject { ["role"] = "user", ["content"] = Words(random, 5 + random.Next(40)) }),
    }.ToJsonString();

    static string Completion(Random random, bool stream) => new JsonObject
    {
        ["model"] = "soak",
        ["stream"] = stream,
        ["max_tokens"] = 4 + random.Next(28),
        ["prompt"] = Words(random, 3 + random.Next(30)),
        ["stop"] = new JsonArray("\n\n"),
    }.ToJsonString();

    static async Task<string> Get(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        await response.Content.ReadAsByteArrayAsync();
        return Status(response);
    }

    static Task<string> Post(HttpClient http, string path, string json) => PostBytes(http, path, Encoding.UTF8.GetBytes(json), "application/json");

    static async Task<string> PostBytes(HttpClient http, string path, byte[] body, string contentType)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await http.PostAsync(path, content);
        await response.Content.ReadAsByteArrayAsync();
        return Status(response);
    }

    /// <summary>A streamed request read to the end, or abandoned after its first chunk (the client goes away mid-stream).</summary>
    static async Task<string> Stream(HttpClient http, string path, string json, bool cancelAfterFirstChunk)
    {
        using var cancel = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        if (!response.IsSuccessStatusCode) return Status(response);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (cancelAfterFirstChunk && line.StartsWith("data: ", StringComparison.Ordinal))
            {
                await cancel.CancelAsync();
                return "client cancelled";
            }
        }
        return Status(response);
    }

    /// <summary>A body trickled a few bytes at a time over about two seconds.</summary>
    static async Task<string> SlowPost(HttpClient http, string path, string json)
    {
        using var content = new SlowContent(Encoding.UTF8.GetBytes(json));
        using var response = await http.PostAsync(path, content);
        await response.Content.ReadAsByteArrayAsync();
        return Status(response);
    }

    sealed class SlowContent : HttpContent
    {
        readonly byte[] body;

        public SlowContent(byte[] body)
        {
            this.body = body;
            Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            int step = Math.Max(1, body.Length / 20);
            for (int at = 0; at < body.Length; at += step)
            {
                await stream.WriteAsync(body.AsMemory(at, Math.Min(step, body.Length - at)));
                await stream.FlushAsync();
                await Task.Delay(100);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = body.Length;
            return true;
        }
    }

    static string Status(HttpResponseMessage response) => ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);

    /// <summary>`loom serve` in its own process (so its memory is its own), found through the line it prints when listening.</summary>
    sealed class ServerProcess : IDisposable
    {
        readonly Process process;

        ServerProcess(Process process, Uri address)
        {
            this.process = process;
            Address = address;
        }

        public Uri Address { get; }

        public int Pid => process.Id;

        public bool IsRunning => !process.HasExited;

        public static async Task<ServerProcess> StartAsync(string checkpoint)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string arg in new[] { typeof(Loom.Cli.Program).Assembly.Location, "serve", "--model", checkpoint, "--port", "0", "--slots", "4", "--threads", "1", "--max-tokens-limit", MaxTokensLimit.ToString(CultureInfo.InvariantCulture) })
                start.ArgumentList.Add(arg);
            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
            var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            process.OutputDataReceived += (_, e) =>
            {
                int at = e.Data?.IndexOf("listening on ", StringComparison.Ordinal) ?? -1;
                if (at >= 0) listening.TrySetResult(e.Data![(at + "listening on ".Length)..].Split(',')[0].Trim());
            };
            process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine($"  server: {e.Data}"); };
            process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("loom serve exited before listening"));
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                return new ServerProcess(process, new Uri(await listening.Task.WaitAsync(TimeSpan.FromSeconds(120))));
            }
            catch
            {
                Stop(process);
                throw;
            }
        }

        /// <summary>VmRSS of the server process, from /proc.</summary>
        public long ResidentBytes()
        {
            if (process.HasExited) return 0;
            process.Refresh();
            return process.WorkingSet64;
        }

        public void Dispose() => Stop(process);

        static void Stop(Process process)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
            process.Dispose();
        }
    }
}
