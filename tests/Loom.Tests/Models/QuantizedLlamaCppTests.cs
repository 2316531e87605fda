using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Text;
using Xunit.Abstractions;

namespace Loom.Tests.Models;

/// <summary>
/// llama.cpp on the very GGUF file that Loom runs quantised: both keep the Q4_K / Q8_0 weights as stored and
/// round activations to 8 bits (llama.cpp per 256 for Q4_K, Loom per 32), so the logits agree closely and the
/// greedy continuation is the same.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class QuantizedLlamaCppTests(ITestOutputHelper output) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-quantized-llamacpp-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_K)]
    public void LoomAndLlamaCppDecodeTheSameGreedyContinuation(GgmlType type)
    {
        var tokenizer = CharTokenizer.Train([File.ReadAllText(GgufReference.Shakespeare())[..200_000]]);
        var config = new LlamaConfig
        {
            VocabSize = tokenizer.VocabSize, Dim = 256, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 512, MaxSeq = 128,
            RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false,
        };
        var model = Transformer.FromTensors(config, GgufReference.RandomWeights(config, 21), "random weights");
        string path = Path.Combine(folder, $"{type}.gguf");
        QuantizedLlamaGguf.Write(path, model, tokenizer, type);
        var loom = QuantizedLlamaGguf.Load(path);
        using var peer = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: config.MaxSeq, Threads: 1, Float32Cache: true));

        var start = tokenizer.Encode("ROMEO:\n");
        var decoder = new TransformerDecoder(loom);
        var logits = new float[config.VocabSize];
        decoder.Prefill(0, start, logits);
        var expected = peer.NextTokenLogits(start);
        double largest = expected.Max(Math.Abs), difference = 0;
        for (int v = 0; v < config.VocabSize; v++) difference = Math.Max(difference, Math.Abs(expected[v] - logits[v]));
        var sequence = new List<int>();
        for (int i = 0; i < 24; i++)
        {
            sequence.Add(LlamaCppModel.ArgMax(logits));
            decoder.Decode([0], [sequence[^1]], logits);
        }
        var greedy = peer.GenerateGreedy(start, 24);
        output.WriteLine($"{type}: max |llama.cpp - Loom| first-step logit difference {difference:E3} on logits up to {largest:F2}; greedy {tokenizer.Decode(greedy).ReplaceLineEndings("|")}");
        // llama.cpp rounds a Q4_K product's activations per 256 values (Q8_K), Loom per 32: about 2% of the largest logit apart.
        Assert.True(difference < 0.03 * largest, $"logits differ by {difference} (largest {largest})");
        Assert.Equal(greedy, sequence);
    }
}
