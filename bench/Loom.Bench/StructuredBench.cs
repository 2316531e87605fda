using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Loom.Models;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;
using Loom.Text.Structured;

namespace Loom.Bench;

/// <summary>
/// The cost of structured output: decode tokens/s through <see cref="GenerationEngine"/> with and without a
/// JSON Schema, same model, same prompt, runs paired and alternated (free first, then schema first), and
/// the overhead as a share of decode time. Beside the end-to-end pairs (noisy on a shared machine) it
/// replays each constrained token sequence through a <see cref="TokenMatcher"/> alone, timing the mask and
/// the advance per token, cold (first sight of each grammar state) and warm. Last, the time to compile a
/// 100-property schema and mask its first state. Random weights: speed does not depend on their values.
/// Usage: structured [--threads N] [--tokens N] [--rounds N] [--vocabularies 2048,32000]
/// </summary>
public static class StructuredBench
{
    const string Schema = """
        {"type":"array","minItems":200,"items":{"type":"object","properties":{
          "name":{"type":"string","maxLength":16},"age":{"type":"integer","minimum":0,"maximum":130},
          "email":{"type":"string","pattern":"[a-z]{1,8}@[a-z]{1,8}\\.(com|org)"},"score":{"type":"number"},
          "tags":{"type":"array","items":{"enum":["new","vip","churned"]},"maxItems":3},"active":{"type":"boolean"}},
          "required":["name","age","email","active"],"additionalProperties":false}}
        """;

    public static int Run(string[] args)
    {
        int threads = Math.Min(Environment.ProcessorCount, 2), tokens = 128, rounds = 10;
        int[] vocabularies = [2048, 32000];
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[i + 1]); break;
                case "--tokens": tokens = int.Parse(args[i + 1]); break;
                case "--rounds": rounds = int.Parse(args[i + 1]); break;
                case "--vocabularies": vocabularies = [.. args[i + 1].Split(',').Select(int.Parse)]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        using var compute = new ComputeContext(threads);
        Console.WriteLine($"structured bench: {threads} threads, {tokens} decode tokens per run, {rounds} paired rounds, {DateTime.UtcNow:yyyy-MM-dd}");
        // Shakespeare and the Loghub samples: enough distinct text for a vocabulary of about 32k.
        string text = File.ReadAllText(BenchPaths.SharedData("tinyshakespeare.txt"))
            + string.Concat(Directory.GetFiles(BenchPaths.SharedData("loghub"), "*_2k.log", SearchOption.AllDirectories).Order().Select(File.ReadAllText));
        foreach (int vocabulary in vocabularies)
            Model(vocabulary, text, compute, tokens, rounds).GetAwaiter().GetResult();
        return 0;
    }

    static async Task Model(int vocabulary, string text, ComputeContext compute, int tokens, int rounds)
    {
        var watch = Stopwatch.StartNew();
        // JSON-like text beside Shakespeare so the vocabulary has the pieces structured output uses.
        var json = new StringBuilder();
        var random = new Random(1);
        for (int i = 0; i < 2000; i++)
            json.Append($$"""{"name":"{{text.Substring(random.Next(text.Length - 10), 6).Trim()}}","age":{{random.Next(99)}},"email":"ab@cd.org","active":true},""");
        var tokenizer = BpeTrainer.Train([text, json.ToString()], vocabulary);
        Console.WriteLine();
        Console.WriteLine($"== BPE vocabulary {tokenizer.VocabSize} (trained in {watch.Elapsed.TotalSeconds:F1} s), model dim 256, 4 layers, 4 heads, hidden 768");
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 256, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 768, MaxSeq = 512 };
        await using var model = LoomModel.Create("bench", new Transformer(config, seed: 1), tokenizer, new LoomModelOptions { Compute = compute });
        var schema = JsonDocument.Parse(Schema).RootElement;

        watch.Restart();
        var grammar = TokenGrammar.ForJsonSchema(schema, tokenizer);
        double compileMs = watch.Elapsed.TotalMilliseconds;
        grammar.Start().ApplyMask(new float[tokenizer.VocabSize]);
        Console.WriteLine($"bench schema: compile {compileMs:F1} ms (vocabulary trie included), first mask {watch.Elapsed.TotalMilliseconds - compileMs:F1} ms");

        var free = new List<double>();
        var constrained = new List<double>();
        var sequences = new List<int[]>();
        await Run(model.Engine, null, tokens, 0); // warm-up of both paths
        await Run(model.Engine, schema, tokens, 0);
        for (int round = 0; round < rounds; round++)
        {
            bool freeFirst = round % 2 == 0;
            if (freeFirst) free.Add((await Run(model.Engine, null, tokens, round + 1)).SecondsPerToken);
            var (seconds, output) = await Run(model.Engine, schema, tokens, round + 1);
            constrained.Add(seconds);
            // Any split of an accepted byte string is accepted token by token: the tokenizer's own split serves the replay.
            sequences.Add(tokenizer.Encode(output));
            if (!freeFirst) free.Add((await Run(model.Engine, null, tokens, round + 1)).SecondsPerToken);
        }
        double freeMedian = Median(free), constrainedMedian = Median(constrained);
        Console.WriteLine($"decode, free:        {1 / freeMedian,8:F1} tokens/s  ({freeMedian * 1e3:F3} ms/token, median of {rounds})");
        Console.WriteLine($"decode, with schema: {1 / constrainedMedian,8:F1} tokens/s  ({constrainedMedian * 1e3:F3} ms/token)");
        var pairs = free.Zip(constrained, (f, c) => (c - f) / f * 100).Order().ToList();
        Console.WriteLine($"end-to-end overhead: {(constrainedMedian - freeMedian) / freeMedian * 100:F1}% of decode time (paired: min {pairs[0]:F1}%, median {Median(pairs):F1}%, max {pairs[^1]:F1}%)");

        // The constraint's own cost per token, replayed: mask + advance, first on a fresh grammar (cold), then again (warm).
        var fresh = TokenGrammar.ForJsonSchema(JsonDocument.Parse(Schema + " ").RootElement, tokenizer);
        double cold = Replay(fresh, sequences, tokenizer.VocabSize), warm = Replay(fresh, sequences, tokenizer.VocabSize);
        double decodeMs = freeMedian * 1e3;
        Console.WriteLine($"mask + advance per token over {sequences.Sum(s => s.Length)} replayed tokens: cold {cold * 1e3:F3} ms ({cold * 1e3 / decodeMs * 100:F1}% of a decode step), warm {warm * 1e3:F4} ms ({warm * 1e3 / decodeMs * 100:F2}%)");

        watch.Restart();
        var wide = TokenGrammar.ForJsonSchema(WideSchema(100), tokenizer);
        compileMs = watch.Elapsed.TotalMilliseconds;
        var matcher = wide.Start();
        matcher.ApplyMask(new float[tokenizer.VocabSize]);
        Console.WriteLine($"100-property schema: compile {compileMs:F1} ms, first mask {watch.Elapsed.TotalMilliseconds - compileMs:F1} ms");
    }

    static async Task<(double SecondsPerToken, string Text)> Run(GenerationEngine engine, JsonElement? schema, int tokens, int seed)
    {
        var request = new GenerationRequest
        {
            Prompt = "Customers as JSON:",
            MaxTokens = tokens,
            Format = schema is JsonElement s ? new OutputFormat { JsonSchema = s } : null,
            // End tokens pushed out of reach (as logit_bias -100 would), so free runs decode all their tokens; under the
            // schema an end token is still taken where it is the only one the format allows.
            Sampling = new SamplingOptions { Seed = seed, LogitBias = EndBias(engine.Tokenizer) },
        };
        var text = new StringBuilder();
        var watch = Stopwatch.StartNew();
        int generated = 0, firstCount = 0;
        double firstSeconds = 0;
        await foreach (var update in engine.GenerateAsync(request))
        {
            text.Append(update.Text);
            generated = update.CompletionTokens;
            if (firstCount == 0) (firstCount, firstSeconds) = (generated, watch.Elapsed.TotalSeconds);
        }
        double seconds = watch.Elapsed.TotalSeconds;
        // Decode steps only: the clock starts at the first streamed token, so the prompt's prefill (the same for both
        // runs) is not spread over however many tokens a run happens to generate.
        if (generated - firstCount < tokens / 4) throw new InvalidOperationException($"a run stopped after {generated} of {tokens} tokens");
        return ((seconds - firstSeconds) / (generated - firstCount), text.ToString());
    }

    static Dictionary<int, float> EndBias(ITokenizer tokenizer) =>
        Enumerable.Range(0, tokenizer.VocabSize).Where(tokenizer.IsEndOfGeneration).ToDictionary(id => id, _ => -100f);

    static double Replay(TokenGrammar grammar, List<int[]> sequences, int vocab)
    {
        var logits = new float[vocab];
        long ticks = 0;
        int count = 0;
        foreach (var ids in sequences)
        {
            var matcher = grammar.Start();
            foreach (int id in ids)
            {
                var start = Stopwatch.GetTimestamp();
                matcher.ApplyMask(logits);
                if (!matcher.IsAllowed(id)) break;
                matcher.Accept(id);
                ticks += Stopwatch.GetTimestamp() - start;
                count++;
            }
        }
        return ticks / (double)Stopwatch.Frequency / Math.Max(count, 1);
    }

    static JsonElement WideSchema(int properties)
    {
        var json = new StringBuilder("{\"type\":\"object\",\"properties\":{");
        for (int i = 0; i < properties; i++)
        {
            if (i > 0) json.Append(',');
            json.Append((i % 4) switch
            {
                0 => $"\"field{i}\":{{\"type\":\"string\",\"maxLength\":32}}",
                1 => $"\"field{i}\":{{\"type\":\"integer\",\"minimum\":{-i},\"maximum\":{i * 100}}}",
                2 => $"\"field{i}\":{{\"enum\":[\"a{i}\",\"b{i}\",null]}}",
                _ => $"\"field{i}\":{{\"type\":\"array\",\"items\":{{\"type\":\"number\"}},\"maxItems\":4}}",
            });
        }
        json.Append("},\"required\":[\"field0\",\"field50\",\"field99\"],\"additionalProperties\":false}");
        return JsonDocument.Parse(json.ToString()).RootElement;
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
