using System.Diagnostics;
using System.Text.Json.Nodes;
using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Bench;

/// <summary>
/// Batched decoding against llama.cpp's own: the same random weights served once by Loom's decoder and once by
/// llama.cpp (the GGUF F32 export, every running sequence in one llama_decode batch per step, its default F16 KV cache),
/// both behind the same <see cref="GenerationEngine"/> with 1, 4, 8 and 16 concurrent greedy requests of a fixed length
/// (end tokens banned, so every request runs its whole length). Aggregate generated tokens/s, median of the repeats,
/// the two engines alternating so drift on a shared machine hits both.
/// </summary>
static class ServePeerBench
{
    static readonly int[] Concurrency = [1, 4, 8, 16];

    public static async Task<JsonArray> Run(ITokenizer tokenizer, string preset, int tokens, int repeats)
    {
        var config = LlamaConfig.Preset(preset) with { VocabSize = tokenizer.VocabSize, MaxSeq = 512 };
        var transformer = new Transformer(config, 3);
        string folder = Directory.CreateTempSubdirectory("loom-serve-peer-").FullName;
        try
        {
            string gguf = Path.Combine(folder, $"{preset}-F32.gguf");
            LlamaGguf.Write(gguf, config, transformer.Parameters.ToDictionary(p => p.Name!), GgufVocabulary.FromTokenizer(tokenizer), GgmlType.F32, preset);
            int threads = ComputeContext.Default.ThreadCount;
            using var decoder = new TransformerDecoder(transformer, slotCount: Concurrency.Max());
            using var llama = LlamaCppDecoder.Load(gguf, Concurrency.Max(), new LlamaCppOptions(ContextSize: config.MaxSeq, Threads: threads));
            await using var loomEngine = new GenerationEngine("loom", decoder, tokenizer);
            await using var llamaEngine = new GenerationEngine("llama.cpp", llama, tokenizer);
            var banned = Enumerable.Range(0, tokenizer.VocabSize).Where(tokenizer.IsEndOfGeneration).ToDictionary(id => id, _ => -100f);
            var sampling = SamplingOptions.Greedy with { LogitBias = banned };
            int[] prompt = tokenizer.Encode("Tell me about the king, and the queen.");

            Console.WriteLine($"batched decoding vs llama.cpp: preset {preset} ({config.ParameterCount / 1e6:F1}M parameters, F32 weights), {tokens} tokens per request, {threads} threads, median of {repeats}");
            await Measure(loomEngine, 2, tokens, prompt, sampling); // warm-up: JIT, arena, caches
            await Measure(llamaEngine, 2, tokens, prompt, sampling);
            Console.WriteLine($"{"streams",8} {"Loom tok/s",11} {"llama.cpp tok/s",16} {"Loom/llama.cpp",15}");
            var rows = new JsonArray();
            foreach (int streams in Concurrency)
            {
                var loomRates = new List<double>();
                var llamaRates = new List<double>();
                for (int r = 0; r < repeats; r++)
                {
                    loomRates.Add(await Measure(loomEngine, streams, tokens, prompt, sampling));
                    llamaRates.Add(await Measure(llamaEngine, streams, tokens, prompt, sampling));
                }
                double loom = Median(loomRates), peer = Median(llamaRates);
                Console.WriteLine($"{streams,8} {loom,11:F1} {peer,16:F1} {loom / peer,14:F2}x");
                rows.Add(new JsonObject
                {
                    ["streams"] = streams,
                    ["loom_tokens_per_second"] = Math.Round(loom, 1),
                    ["llama_cpp_tokens_per_second"] = Math.Round(peer, 1),
                    ["ratio"] = Math.Round(loom / peer, 3),
                });
            }
            return rows;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Runs <paramref name="streams"/> requests at once; returns generated tokens per second of wall time.</summary>
    static async Task<double> Measure(GenerationEngine engine, int streams, int tokens, int[] prompt, SamplingOptions sampling)
    {
        var clock = Stopwatch.StartNew();
        var counts = await Task.WhenAll(Enumerable.Range(0, streams).Select(async _ =>
        {
            int generated = 0;
            await foreach (var update in engine.GenerateAsync(new GenerationRequest { PromptTokens = prompt, MaxTokens = tokens, Sampling = sampling }))
                generated = update.CompletionTokens;
            return generated;
        }));
        return counts.Sum() / clock.Elapsed.TotalSeconds;
    }

    static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
