using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Text;
using Loom.Training;
using Xunit.Abstractions;

namespace Loom.Tests.Models;

/// <summary>
/// llama.cpp (through LLamaSharp) as the independent implementation: a small Loom model exported
/// to GGUF must give llama.cpp the same logits, argmaxes and greedy continuation as Loom's own
/// forward, and llama.cpp must split text into the same ids as Loom's tokenizers.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class GgufLlamaCppTests(ITestOutputHelper output) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-llamacpp-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static readonly Lazy<string> ShakespeareText = new(() => File.ReadAllText(GgufReference.Shakespeare()));
    static readonly Lazy<string[]> ShakespeareLines = new(() => File.ReadLines(GgufReference.Shakespeare()).Take(1000).ToArray());
    static readonly Lazy<CharTokenizer> Characters = new(() => CharTokenizer.Train([ShakespeareText.Value]));

    static LlamaConfig Config(int vocab) => new()
    {
        VocabSize = vocab, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 128,
        RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false,
    };

    // One thread: on a shared 2-core machine llama.cpp's spinning worker threads cost far more than they give.
    static LlamaCppOptions Exact(LlamaConfig config) => new(ContextSize: config.MaxSeq, Threads: 1, Float32Cache: true);

    /// <summary>A Loom model with random weights (uniform, wider than training's init, so logits spread).</summary>
    static Transformer RandomModel(LlamaConfig config, int seed) =>
        Transformer.FromTensors(config, GgufReference.RandomWeights(config, seed), "random weights");

    /// <summary>
    /// A Loom model trained briefly on tiny Shakespeare (AdamW, batches of random 64-character
    /// windows), so its next-character distributions are peaked as a real model's are.
    /// </summary>
    static Transformer TrainedModel(LlamaConfig config, CharTokenizer tokenizer, int steps, int seed)
    {
        var model = new Transformer(config, (ulong)seed);
        var data = tokenizer.Encode(ShakespeareText.Value[..300_000]);
        var optimizer = new AdamW(model.Parameters, new AdamWOptions(LearningRate: 1e-2f, WeightDecay: 0f));
        var random = new Random(seed);
        int batch = 8, tokens = 64;
        var ids = new int[batch * tokens];
        var targets = new int[batch * tokens];
        var tape = new Tape();
        for (int step = 0; step < steps; step++)
        {
            for (int b = 0; b < batch; b++)
            {
                int start = random.Next(data.Length - tokens - 1);
                data.AsSpan(start, tokens).CopyTo(ids.AsSpan(b * tokens));
                data.AsSpan(start + 1, tokens).CopyTo(targets.AsSpan(b * tokens));
            }
            tape.Reset();
            optimizer.ZeroGrad();
            var loss = model.Loss(tape, ids, targets, batch, tokens); // [1]
            tape.Backward(loss);
            optimizer.Step();
        }
        return model;
    }

    /// <summary>Loom's forward: logits [tokens, vocab] for one sequence.</summary>
    static float[] LoomLogits(Transformer model, int[] ids)
    {
        var tape = new Tape { Recording = false };
        return model.Forward(tape, ids, 1, ids.Length).Span.ToArray(); // [1, tokens, vocab]
    }

    static int[] RandomPrompt(Random random, int vocab, int length) =>
        Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();

    [Fact]
    public void F32ExportGivesLlamaCppLoomsLogitsAndGreedyContinuation()
    {
        var tokenizer = Characters.Value;
        var config = Config(tokenizer.VocabSize);
        var model = RandomModel(config, seed: 11);
        string path = Path.Combine(folder, "f32.gguf");
        LlamaGguf.Export(path, model, tokenizer, GgmlType.F32, "tiny");
        using var peer = LlamaCppModel.Load(path, Exact(config));
        Assert.Equal(config.VocabSize, peer.VocabSize);

        var random = new Random(12);
        double maxDifference = 0;
        foreach (int length in new[] { 1, 7, 40, 128 })
        {
            var prompt = RandomPrompt(random, config.VocabSize, length);
            var expected = LoomLogits(model, prompt); // [tokens, vocab]
            var actual = peer.AllLogits(prompt); // [tokens, vocab]
            for (int i = 0; i < expected.Length; i++)
                maxDifference = Math.Max(maxDifference, Math.Abs(expected[i] - actual[i]));
            var next = peer.NextTokenLogits(prompt);
            for (int v = 0; v < config.VocabSize; v++)
                maxDifference = Math.Max(maxDifference, Math.Abs(expected[(length - 1) * config.VocabSize + v] - next[v]));
        }
        output.WriteLine($"F32: max |llama.cpp - Loom| logit difference {maxDifference:E3}");
        Assert.True(maxDifference < 1e-3, $"max logit difference {maxDifference}");

        var start = tokenizer.Encode("ROMEO:\n");
        var greedy = peer.GenerateGreedy(start, 50);
        var sequence = start.ToList();
        for (int i = 0; i < 50; i++)
        {
            var logits = LoomLogits(model, sequence.ToArray());
            sequence.Add(LlamaCppModel.ArgMax(logits.AsSpan((sequence.Count - 1) * config.VocabSize, config.VocabSize)));
        }
        output.WriteLine($"greedy: {tokenizer.Decode(greedy).ReplaceLineEndings("|")}");
        Assert.Equal(sequence.Skip(start.Length), greedy);
    }

    [Fact]
    public void Q8ExportGivesLlamaCppTheSameArgmaxOnRandomPrompts()
    {
        var config = Config(Characters.Value.VocabSize);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var model = TrainedModel(config, Characters.Value, steps: 150, seed: 13);
        output.WriteLine($"trained 150 steps in {watch.Elapsed.TotalSeconds:F1} s");
        string path = Path.Combine(folder, "q8.gguf");
        LlamaGguf.Export(path, model, Characters.Value, GgmlType.Q8_0);
        // Loom runs the weights as stored (dequantised from Q8_0); llama.cpp also rounds every matrix
        // product's input to Q8_0, which moves these logits by up to about 0.06. The float64 reference
        // that rounds activations the way llama.cpp's x86 code does must agree far more closely.
        var stored = LlamaGguf.Read(path);
        var (imported, _) = LlamaGguf.Import(path);
        using var peer = LlamaCppModel.Load(path, Exact(config));
        var random = new Random(14);
        int agreeLoom = 0, agreeReference = 0;
        double maxLoomDifference = 0, smallestMargin = double.MaxValue, largestLogit = 0;
        var referenceDifferences = new List<double>();
        for (int trial = 0; trial < 100; trial++)
        {
            int length = 1 + random.Next(32), start = random.Next(100_000);
            var prompt = Characters.Value.Encode(ShakespeareText.Value.Substring(start, length));
            var actual = peer.NextTokenLogits(prompt);
            var loom = LoomLogits(imported, prompt).AsSpan((prompt.Length - 1) * config.VocabSize, config.VocabSize).ToArray();
            var reference = GgufReference.Forward(config, stored.Tensors, prompt, quantizeActivations: true)[^1];
            double referenceDifference = 0;
            for (int v = 0; v < config.VocabSize; v++)
            {
                maxLoomDifference = Math.Max(maxLoomDifference, Math.Abs(loom[v] - actual[v]));
                largestLogit = Math.Max(largestLogit, Math.Abs(loom[v]));
                referenceDifference = Math.Max(referenceDifference, Math.Abs(reference[v] - actual[v]));
            }
            referenceDifferences.Add(referenceDifference);
            int best = LlamaCppModel.ArgMax(loom);
            smallestMargin = Math.Min(smallestMargin, loom[best] - loom.Where((_, i) => i != best).Max());
            int peerBest = LlamaCppModel.ArgMax(actual);
            agreeLoom += peerBest == best ? 1 : 0;
            agreeReference += peerBest == GgufReference.ArgMax(reference) ? 1 : 0;
        }
        double median = referenceDifferences.Order().ElementAt(50);
        output.WriteLine($"Q8_0: argmax agrees with Loom on {agreeLoom}/100 (max logit difference {maxLoomDifference:E3} on logits up to {largestLogit:F2}, smallest Loom top-2 margin {smallestMargin:E3}); " +
            $"with the activation-rounding reference on {agreeReference}/100 (difference median {median:E3}, max {referenceDifferences.Max():E3})");
        Assert.Equal(100, agreeLoom);
        Assert.Equal(100, agreeReference);
        // Most prompts agree to float rounding; in a few, one activation sits on a rounding midpoint
        // and llama.cpp's float32 value rounds the other way than the float64 reference's.
        Assert.True(median < 1e-5, $"median logit difference {median}");
        // Against Loom's float32 activations the difference is llama.cpp's activation rounding: a few percent at most.
        Assert.True(maxLoomDifference < 0.05 * largestLogit, $"max logit difference {maxLoomDifference} on logits up to {largestLogit}");
    }

    [Fact]
    public void F16ExportGivesLlamaCppLoomsLogitsWithinHalfPrecision()
    {
        var config = Config(Characters.Value.VocabSize);
        var model = RandomModel(config, seed: 20);
        string path = Path.Combine(folder, "f16.gguf");
        LlamaGguf.Export(path, model, Characters.Value, GgmlType.F16);
        using (var reader = GgufReader.Open(path))
            Assert.Equal(GgmlType.F16, reader.Tensor("blk.1.ffn_up.weight").Type);
        var (imported, _) = LlamaGguf.Import(path);
        using var peer = LlamaCppModel.Load(path, Exact(config));
        var prompt = RandomPrompt(new Random(21), config.VocabSize, 48);
        // llama.cpp rounds the activations to f16 too before an f16 matrix product; Loom keeps them in f32.
        var expected = LoomLogits(imported, prompt); // [tokens, vocab]
        var actual = peer.AllLogits(prompt); // [tokens, vocab]
        double maxDifference = 0, largestLogit = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDifference = Math.Max(maxDifference, Math.Abs(expected[i] - actual[i]));
            largestLogit = Math.Max(largestLogit, Math.Abs(expected[i]));
        }
        output.WriteLine($"F16: max logit difference {maxDifference:E3} on logits up to {largestLogit:F2}");
        Assert.True(maxDifference < 0.01 * largestLogit, $"max logit difference {maxDifference}");
    }

    [Fact]
    public void CharacterTokenizerAndLlamaCppSplitShakespeareAlike()
    {
        var tokenizer = Characters.Value;
        var config = Config(tokenizer.VocabSize) with { Layers = 1 };
        string path = Path.Combine(folder, "char.gguf");
        LlamaGguf.Export(path, RandomModel(config, seed: 15), tokenizer);
        using var peer = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: config.MaxSeq, Threads: 1));
        int tokenCount = 0;
        foreach (var line in ShakespeareLines.Value)
        {
            string text = line + "\n";
            var expected = tokenizer.Encode(text);
            Assert.Equal(expected, peer.Tokenize(text));
            Assert.Equal(text, peer.Detokenize(expected));
            tokenCount += expected.Length;
        }
        output.WriteLine($"char: 1000 lines, {tokenCount} tokens identical");
    }

    [Fact]
    public void ByteLevelBpeTokenizerAndLlamaCppSplitShakespeareAlike()
    {
        var tokenizer = BpeTrainer.Train([ShakespeareText.Value[..200_000]], 512);
        var config = Config(tokenizer.VocabSize) with { Layers = 1 };
        string path = Path.Combine(folder, "bpe.gguf");
        LlamaGguf.Export(path, RandomModel(config, seed: 16), tokenizer);
        using var peer = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: config.MaxSeq, Threads: 1));
        int tokenCount = 0;
        var lines = ShakespeareLines.Value.Concat(["  two  spaces,\ttab\r\nand 123,456 numbers; it's (you'll) — naïve café ☕  ", "<|endoftext|> stays text"]);
        foreach (var line in lines)
        {
            string text = line + "\n";
            var expected = tokenizer.Encode(text);
            Assert.Equal(expected, peer.Tokenize(text));
            tokenCount += expected.Length;
        }
        Assert.Equal(tokenizer.EosId, peer.Tokenize("<|endoftext|>", parseSpecial: true).Single());
        output.WriteLine($"bpe 512: {lines.Count()} lines, {tokenCount} tokens identical");
    }

    [Fact]
    public void MultiByteCharactersTokenizeAsOneToken()
    {
        var tokenizer = CharTokenizer.Train(["\n abcdefgé€🦙ü"]);
        var config = Config(tokenizer.VocabSize) with { Layers = 1 };
        string path = Path.Combine(folder, "utf8.gguf");
        LlamaGguf.Export(path, RandomModel(config, seed: 17), tokenizer);
        using var peer = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: config.MaxSeq, Threads: 1));
        const string text = "aé €🦙\nübü";
        Assert.Equal(tokenizer.Encode(text), peer.Tokenize(text));
        Assert.Equal(text, peer.Detokenize(tokenizer.Encode(text)));
    }

    [Fact]
    public void ImportGivesBackTheModelAndTokenizer()
    {
        var tokenizer = BpeTrainer.Train([ShakespeareText.Value[..50_000]], 300);
        var config = Config(tokenizer.VocabSize) with { TiedEmbeddings = true };
        var model = RandomModel(config, seed: 18);
        string path = Path.Combine(folder, "import.gguf");
        LlamaGguf.Export(path, model, tokenizer);
        var (back, backTokenizer) = LlamaGguf.Import(path);
        Assert.Equal(config with { BosId = tokenizer.BosId ?? -1, EosId = tokenizer.EosId ?? -1 }, back.Config);
        foreach (var (p, q) in model.Parameters.Zip(back.Parameters))
        {
            Assert.Equal(p.Name, q.Name);
            Assert.True(p.Span.SequenceEqual(q.Span), $"{p.Name} changed");
        }
        var bpe = Assert.IsType<ByteLevelBpeTokenizer>(backTokenizer);
        var text = string.Join("\n", ShakespeareLines.Value.Take(200));
        Assert.Equal(tokenizer.Encode(text), bpe.Encode(text));
        Assert.Equal(tokenizer.SpecialTokenIds.OrderBy(p => p.Value), bpe.SpecialTokenIds.OrderBy(p => p.Value));

        string charPath = Path.Combine(folder, "char-import.gguf");
        var charConfig = Config(Characters.Value.VocabSize);
        LlamaGguf.Export(charPath, RandomModel(charConfig, seed: 19), Characters.Value);
        var chars = Assert.IsType<CharTokenizer>(LlamaGguf.Import(charPath).Tokenizer);
        Assert.Equal(Characters.Value.Encode(text), chars.Encode(text));
    }

    [Fact]
    public void NativeLibraryLoadsFromTheApplicationFolder()
    {
        string description = LlamaCppModel.NativeDescription();
        output.WriteLine(description);
        Assert.Contains("AvxLevel", description);
        Assert.Contains("CPU :", description);
        if (OperatingSystem.IsLinux())
        {
            // The process maps llama.cpp from this application's runtimes/linux-x64/native/<avx level>/ folder.
            var mapped = File.ReadLines("/proc/self/maps").Where(line => line.EndsWith("/libllama.so", StringComparison.Ordinal))
                .Select(line => line[line.IndexOf('/')..]).Distinct().ToList();
            output.WriteLine(string.Join(", ", mapped));
            Assert.Single(mapped);
            Assert.StartsWith(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"), mapped[0]);
        }
    }

    [Fact]
    public void ModelWithoutTokenizerRunsOnTokenIds()
    {
        var config = Config(70) with { Layers = 1 };
        var model = RandomModel(config, seed: 22);
        string path = Path.Combine(folder, "no-vocab.gguf");
        LlamaGguf.Export(path, model, tokenizer: null);
        Assert.Null(LlamaGguf.Read(path).Vocabulary);
        using var peer = LlamaCppModel.Load(path, Exact(config));
        int[] prompt = [3, 69, 0, 12];
        var expected = LoomLogits(model, prompt)[(3 * 70)..];
        var actual = peer.NextTokenLogits(prompt);
        for (int v = 0; v < 70; v++)
            Assert.Equal(expected[v], actual[v], 1e-4f);
    }

    [Fact]
    public void BadFileIsOneLineFromLlamaCpp()
    {
        string path = Path.Combine(folder, "broken.gguf");
        File.WriteAllBytes(path, "GGUF\u0003\0\0\0"u8.ToArray());
        // Loom's own reader refuses it before llama.cpp sees it (GgufPreflight).
        var e = Assert.Throws<GgufException>(() => LlamaCppModel.Load(path));
        Assert.StartsWith(path + ": truncated", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
