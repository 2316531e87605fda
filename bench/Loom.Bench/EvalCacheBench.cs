using System.Diagnostics;
using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// eval-cache: a pairwise task of 500 items judged by a program (F1 against the reference) between two small Loom
/// models, each behind a <see cref="ResponseCacheChatClient"/>. The first run generates every answer (1000 generations of
/// at most 16 tokens); the second, over the same cache folder, must answer all from it: the issue asks under 5 s.
/// </summary>
static class EvalCacheBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        int items = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 500;
        string folder = Directory.CreateTempSubdirectory("loom-eval-cache-").FullName;
        try
        {
            const string alphabet = "abcdefghijklmnopqrstuvwxyz .?";
            var tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'])]); // printable ASCII: the chat template too
            var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 64, MaxSeq = 128 };
            var random = new Random(1);
            string Word() => new([.. Enumerable.Range(0, 3 + random.Next(5)).Select(_ => alphabet[random.Next(26)])]);
            var lines = Enumerable.Range(0, items).Select(i =>
                System.Text.Json.JsonSerializer.Serialize(new { prompt = $"{Word()} {Word()} {Word()}?", reference = $"{Word()} {Word()}" }));
            File.WriteAllLines(Path.Combine(folder, "items.jsonl"), lines);
            File.WriteAllText(Path.Combine(folder, "task.json"), """{"name": "pairwise", "kind": "pairwise", "data": "items.jsonl", "options": {"max_tokens": 16, "judge": "f1"}}""");
            var task = EvalTask.Load(Path.Combine(folder, "task.json"));
            string cache = Path.Combine(folder, "cache");
            double[] seconds = new double[2];
            double winRate = 0;
            for (int run = 0; run < 2; run++)
            {
                // Fresh models and clients each run: only the cache folder carries over.
                await using var a = LoomModel.Create("a", new Transformer(config, 1), tokenizer);
                await using var b = LoomModel.Create("b", new Transformer(config, 2), tokenizer);
                var versionA = new ModelVersion("a", "seed1");
                var versionB = new ModelVersion("b", "seed2");
                using var chatA = new ResponseCacheChatClient(a.AsIChatClient(), cache, versionA);
                using var chatB = new ResponseCacheChatClient(b.AsIChatClient(), cache, versionB);
                var clock = Stopwatch.StartNew();
                var result = await EvalTasks.RunAsync(task, new EvalSubjects(versionA, Chat: chatA, Opponent: chatB));
                seconds[run] = clock.Elapsed.TotalSeconds;
                winRate = result.Metrics["win_rate"].Value;
                Console.WriteLine($"run {run + 1}: {items} judged items in {seconds[run]:F2} s (cache hits {chatA.Hits + chatB.Hits}, generated {chatA.Misses + chatB.Misses}); win rate {winRate:F3}");
            }
            Console.WriteLine($"cached re-run of {items} judged items: {seconds[1]:F2} s ({(seconds[1] < 5 ? "under" : "OVER")} the 5 s target)");
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
