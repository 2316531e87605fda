using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Tests.Tensors;
using Xunit.Abstractions;

namespace Loom.Tests.Models;

/// <summary>
/// Each family in its real head, kv-head and width ratios (fewer layers, a 512-token vocabulary), random weights, exported
/// to GGUF F32 by Loom and run by llama.cpp (LLamaSharp): Loom's logits must equal llama.cpp's within 1e-3 at every position
/// of several prompts. llama.cpp runs the llama architecture without a sliding window, so Mistral's window is checked against
/// llama.cpp on prompts that fit in it and against Loom's float64 reference on longer ones.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class FamilyLlamaCppTests(ITestOutputHelper output) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-families-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    const int Vocab = 512;
    const double Tolerance = 1e-3;
    static readonly int[] PromptLengths = [1, 9, 40, 128];

    public static TheoryData<string> Families => ["SmolLM2-135M", "Qwen2.5-0.5B", "Llama-3.2-1B"];

    static LlamaConfig Config(string family) => family switch
    {
        // HuggingFaceTB/SmolLM2-135M: 576 channels, 9 heads of 64, 3 kv heads, SwiGLU 1536, rope_theta 100000, tied.
        "SmolLM2-135M" => new() { VocabSize = Vocab, Dim = 576, Layers = 2, Heads = 9, KvHeads = 3, HiddenDim = 1536, MaxSeq = 256, RopeTheta = 100000f, NormEps = 1e-5f, TiedEmbeddings = true },
        // Qwen/Qwen2.5-0.5B: 896 channels, 14 heads of 64, 2 kv heads, SwiGLU 4864, q/k/v biases, rope_theta 1e6, tied.
        "Qwen2.5-0.5B" => new() { ModelType = LlamaConfig.Qwen2Type, VocabSize = Vocab, Dim = 896, Layers = 2, Heads = 14, KvHeads = 2, HiddenDim = 4864, MaxSeq = 256, RopeTheta = 1e6f, NormEps = 1e-6f, TiedEmbeddings = true },
        // meta-llama/Llama-3.2-1B: 2048 channels, 32 heads of 64, 8 kv heads, SwiGLU 8192, rope_theta 500000 with llama3 scaling (factor 32), tied.
        "Llama-3.2-1B" => new() { VocabSize = Vocab, Dim = 2048, Layers = 1, Heads = 32, KvHeads = 8, HiddenDim = 8192, MaxSeq = 256, RopeTheta = 500000f, NormEps = 1e-5f, TiedEmbeddings = true, RopeScaling = new RopeScaling(32, 1, 4, 8192) },
        // Mistral 7B's ratios at a quarter of the width: heads of 128, 4 query heads per kv head, SwiGLU 3.5 × width, a window of 16.
        "Mistral" => new() { ModelType = LlamaConfig.MistralType, VocabSize = Vocab, Dim = 1024, Layers = 2, Heads = 8, KvHeads = 2, HiddenDim = 3584, MaxSeq = 256, RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false, SlidingWindow = 16 },
        _ => throw new ArgumentException(family),
    };

    // One thread: on a shared 2-core machine llama.cpp's spinning worker threads cost far more than they give.
    static LlamaCppOptions Exact(LlamaConfig config) => new(ContextSize: config.MaxSeq, Threads: 1, Float32Cache: true);

    static float[] LoomLogits(Transformer model, int[] ids) =>
        model.Forward(new Tape { Recording = false }, ids, 1, ids.Length).Span.ToArray(); // [tokens, vocab]

    static int[] Prompt(Random random, int length) => [.. Enumerable.Range(0, length).Select(_ => random.Next(Vocab))];

    static double MaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void F32ExportGivesLlamaCppLoomsLogitsAtEveryPosition(string family)
    {
        var config = Config(family);
        var model = Transformer.FromTensors(config, GgufReference.RandomWeights(config, seed: 21), "random weights");
        string path = Path.Combine(folder, "model.gguf");
        LlamaGguf.Export(path, model, tokenizer: null, GgmlType.F32, family);
        using (var peer = LlamaCppModel.Load(path, Exact(config)))
        {
            var random = new Random(22);
            double worst = 0;
            foreach (int length in PromptLengths)
            {
                var prompt = Prompt(random, length);
                double difference = MaxDifference(LoomLogits(model, prompt), peer.AllLogits(prompt));
                output.WriteLine($"{family}, {length} tokens: max |llama.cpp − Loom| {difference:E2}");
                worst = Math.Max(worst, difference);
            }
            Assert.True(worst < Tolerance, $"{family}: max logit difference {worst}");
        }

        // The family's feature matters at these positions: without it Loom's logits move by more than the tolerance.
        if (config.AttentionBias || config.RopeScaling is not null)
        {
            var plain = config with { ModelType = LlamaConfig.LlamaType, RopeScaling = null };
            var tensors = model.Parameters.Where(p => !p.Name!.EndsWith(".bias", StringComparison.Ordinal)).ToDictionary(p => p.Name!);
            var prompt = Prompt(new Random(23), 128);
            double change = MaxDifference(LoomLogits(model, prompt), LoomLogits(Transformer.FromTensors(plain, tensors, "plain"), prompt));
            output.WriteLine($"{family}: the feature moves the logits by up to {change:E2}");
            Assert.True(change > 10 * Tolerance, $"{family}: the feature changes the logits by only {change}");
        }

        // Loom reads its export back to the same model.
        var back = LlamaGguf.Import(path).Model;
        Assert.Equal(config, back.Config);
        foreach (var (p, q) in model.Parameters.Zip(back.Parameters))
            Assert.True(p.Span.SequenceEqual(q.Span), $"{family}: {p.Name} changed in the round trip");
    }

    [Fact]
    public void MistralsSlidingWindowMatchesLlamaCppWithinTheWindowAndTheReferenceBeyondIt()
    {
        var config = Config("Mistral");
        int window = config.SlidingWindow!.Value;
        var weights = GgufReference.RandomWeights(config, seed: 31);
        var model = Transformer.FromTensors(config, weights, "random weights");
        var unwindowed = Transformer.FromTensors(config with { ModelType = LlamaConfig.LlamaType, SlidingWindow = null }, weights, "random weights");
        string path = Path.Combine(folder, "mistral.gguf");
        LlamaGguf.Export(path, model, tokenizer: null, GgmlType.F32, "mistral");
        var random = new Random(32);
        using (var peer = LlamaCppModel.Load(path, Exact(config)))
        {
            foreach (int length in new[] { 1, 7, window })
            {
                var prompt = Prompt(random, length);
                double difference = MaxDifference(LoomLogits(model, prompt), peer.AllLogits(prompt));
                output.WriteLine($"Mistral, {length} tokens (within the window): max |llama.cpp − Loom| {difference:E2}");
                Assert.True(difference < Tolerance, $"{length} tokens: max logit difference {difference}");
            }
            // Past the window llama.cpp attends to the whole past: it equals Loom without the window, and the window matters.
            var longPrompt = Prompt(random, 100);
            double full = MaxDifference(LoomLogits(unwindowed, longPrompt), peer.AllLogits(longPrompt));
            double windowEffect = MaxDifference(LoomLogits(model, longPrompt), LoomLogits(unwindowed, longPrompt));
            output.WriteLine($"Mistral, 100 tokens: llama.cpp vs Loom without the window {full:E2}; the window moves Loom's logits by {windowEffect:E2}");
            Assert.True(full < Tolerance, $"100 tokens without the window: max logit difference {full}");
            Assert.True(windowEffect > 10 * Tolerance, $"the window changes the logits by only {windowEffect}");
        }

        // Beyond the window: Loom against its float64 reference (position p attends to p − 15 .. p).
        var reference = LlamaReference.For(config, weights.ToDictionary(pair => pair.Key, pair => pair.Value.Span.ToArray().Select(v => (double)v).ToArray()));
        var ids = Prompt(random, 48);
        var expected = reference.Logits(ids, 1, ids.Length);
        var actual = LoomLogits(model, ids);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        output.WriteLine($"Mistral, 48 tokens: max |reference − Loom| {worst:E2}");
        Assert.True(worst < Tolerance, $"max difference from the float64 reference {worst}");

        var back = LlamaGguf.Import(path).Model;
        Assert.Equal(config, back.Config);
    }
}
