using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Tests.Models;

/// <summary>Models whose matrices stay quantised: written by QuantizedLlamaGguf / `loom quantize`, loaded memory-mapped, decoded through the int8 kernels.</summary>
public sealed class QuantizedModelTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-quantized-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    // Rows of 256 (dim, heads · headDim) and 512 (hidden): whole Q4_K super-blocks everywhere.
    static LlamaConfig Config(bool tied = false) => new()
    {
        VocabSize = 96, Dim = 256, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 512, MaxSeq = 64,
        RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = tied,
    };

    /// <summary>Random weights spread wide enough that logits are peaked (GgufReference's scheme).</summary>
    static Transformer RandomModel(LlamaConfig config) => Transformer.FromTensors(config, GgufReference.RandomWeights(config, 17), "random weights");

    /// <summary>The greedy continuation of <paramref name="prompt"/> and the logits of each step, through the decoder (prefill, then decode steps).</summary>
    static (int[] Tokens, float[][] Logits) Greedy(Transformer model, int[] prompt, int steps)
    {
        var decoder = new TransformerDecoder(model);
        var logits = new float[model.Config.VocabSize];
        decoder.Prefill(0, prompt, logits);
        var tokens = new List<int>();
        var all = new List<float[]>();
        for (int s = 0; s < steps; s++)
        {
            all.Add((float[])logits.Clone());
            int next = Array.IndexOf(logits, logits.Max());
            tokens.Add(next);
            decoder.Decode([0], [next], logits);
        }
        return ([.. tokens], [.. all]);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.Q4_0, true)]
    [InlineData(GgmlType.Q4_K, false)]
    public void LoadedModelKeepsEveryMatrixQuantisedAndMapped(GgmlType type, bool tied)
    {
        var config = Config(tied);
        var model = RandomModel(config);
        string path = Path.Combine(folder, "model.gguf");
        QuantizedLlamaGguf.Write(path, model, null, type);
        var loaded = QuantizedLlamaGguf.Load(path);
        foreach (var p in loaded.Parameters)
        {
            if (p.Rank == 1) Assert.Null(p.Quantized);
            else
            {
                Assert.Equal(type, p.Quantized!.Type);
                Assert.Throws<InvalidOperationException>(() => p.Span.Length); // no float32 copy
            }
        }
        // q and k come back in Hugging Face's row order: the quantised rows equal quantising the original rows.
        var q = model.Blocks[1].Attention.Parameters.First(p => p.Name!.EndsWith("q_proj.weight", StringComparison.Ordinal));
        var loadedQ = loaded.Blocks[1].Attention.Parameters.First(p => p.Name!.EndsWith("q_proj.weight", StringComparison.Ordinal));
        var expected = QuantizedMatrix.Quantize(q.Span, q.Dim(0), q.Dim(1), type);
        for (int r = 0; r < q.Dim(0); r++) Assert.True(expected.Row(r).SequenceEqual(loadedQ.Quantized!.Row(r)), $"row {r} of q differs");
    }

    [Fact]
    public void Q8_0DecodesTheSameGreedyContinuationAsF32()
    {
        var config = Config();
        var model = RandomModel(config);
        string path = Path.Combine(folder, "q8.gguf");
        QuantizedLlamaGguf.Write(path, model, null, GgmlType.Q8_0);
        var quantized = QuantizedLlamaGguf.Load(path);
        int[] prompt = [5, 17, 42, 8, 90, 3];
        var (reference, referenceLogits) = Greedy(model, prompt, 24);
        var (actual, actualLogits) = Greedy(quantized, prompt, 24);
        Assert.Equal(reference, actual);
        for (int s = 0; s < referenceLogits.Length; s++)
            Assert.True(Correlation(referenceLogits[s], actualLogits[s]) > 0.999, $"step {s}: logits correlate {Correlation(referenceLogits[s], actualLogits[s])}");
    }

    [Fact]
    public void Q4_KLogitsFollowF32()
    {
        var config = Config();
        var model = RandomModel(config);
        string path = Path.Combine(folder, "q4k.gguf");
        QuantizedLlamaGguf.Write(path, model, null, GgmlType.Q4_K);
        var quantized = QuantizedLlamaGguf.Load(path);
        int[] prompt = [5, 17, 42, 8, 90, 3];
        var (_, referenceLogits) = Greedy(model, prompt, 1);
        var (_, actualLogits) = Greedy(quantized, prompt, 1);
        Assert.True(Correlation(referenceLogits[0], actualLogits[0]) > 0.98, $"logits correlate {Correlation(referenceLogits[0], actualLogits[0])}");
    }

    [Fact]
    public void BatchedDecodeOfAQuantisedModelEqualsDecodingAlone()
    {
        var config = Config();
        string path = Path.Combine(folder, "q4k.gguf");
        QuantizedLlamaGguf.Write(path, RandomModel(config), null, GgmlType.Q4_K);
        var model = QuantizedLlamaGguf.Load(path);
        int[][] prompts = [[1, 2, 3], [50, 60, 70, 80, 90], [7]];
        var alone = prompts.Select(p => Greedy(model, p, 6).Logits).ToArray();
        var decoder = new TransformerDecoder(model, slotCount: 3);
        var logits = new float[3 * config.VocabSize];
        var next = new int[3];
        for (int i = 0; i < 3; i++)
        {
            var row = logits.AsSpan(i * config.VocabSize, config.VocabSize);
            decoder.Prefill(i, prompts[i], row);
            Assert.Equal(alone[i][0], row.ToArray());
            next[i] = Array.IndexOf(alone[i][0], alone[i][0].Max());
        }
        for (int s = 1; s < 6; s++)
        {
            decoder.Decode([0, 1, 2], next, logits);
            for (int i = 0; i < 3; i++)
            {
                var row = logits.AsSpan(i * config.VocabSize, config.VocabSize).ToArray();
                Assert.Equal(alone[i][s], row);
                next[i] = Array.IndexOf(row, row.Max());
            }
        }
    }

    [Fact]
    public void QuantizedCheckpointFolderLoadsThroughCheckpointLoad()
    {
        var config = Config();
        var model = RandomModel(config);
        var tokenizer = CharTokenizer.Train([string.Concat(Enumerable.Range(0, 93).Select(i => (char)(' ' + i)))]);
        Assert.True(tokenizer.VocabSize <= config.VocabSize);
        string source = Path.Combine(folder, "f32");
        Checkpoint.Save(source, Transformer.FromTensors(config with { VocabSize = tokenizer.VocabSize }, Resize(model, tokenizer.VocabSize), "resized"), tokenizer.Save);
        string output = Path.Combine(folder, "q8");
        QuantizedLlamaGguf.QuantizeCheckpoint(source, output, GgmlType.Q8_0);
        Assert.True(File.Exists(Path.Combine(output, QuantizedLlamaGguf.FileName)));
        Assert.False(File.Exists(Path.Combine(output, SafeTensors.ModelFileName)));
        var loaded = Checkpoint.Load(output);
        Assert.All(loaded.Parameters.Where(p => p.Rank == 2), p => Assert.Equal(GgmlType.Q8_0, p.Quantized!.Type));
        Assert.Equal(tokenizer.VocabSize, Tokenizer.Load(output).VocabSize);
        var error = Assert.Throws<ArgumentException>(() => QuantizedLlamaGguf.QuantizeCheckpoint(output, Path.Combine(folder, "again"), GgmlType.Q4_K));
        Assert.Contains("quantised already", error.Message);
    }

    /// <summary>The model's tensors with the vocabulary cut to <paramref name="vocab"/> rows.</summary>
    static Dictionary<string, Tensor> Resize(Transformer model, int vocab)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var p in model.Parameters)
        {
            bool perToken = p.Name is "model.embed_tokens.weight" or "lm_head.weight";
            var t = perToken ? Tensor.From(p.Span[..(vocab * p.Dim(1))], vocab, p.Dim(1)) : Tensor.From(p.Span, p.Shape);
            t.Name = p.Name;
            tensors[p.Name!] = t;
        }
        return tensors;
    }

    static double Correlation(float[] a, float[] b)
    {
        double ma = a.Average(), mb = b.Average(), ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            ab += (a[i] - ma) * (b[i] - mb);
            aa += (a[i] - ma) * (a[i] - ma);
            bb += (b[i] - mb) * (b[i] - mb);
        }
        return ab / Math.Sqrt(aa * bb);
    }
}
