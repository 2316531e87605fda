using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;

namespace Loom.Tests.Models;

public sealed class GgufLlamaTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-gguf-llama-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    internal static readonly LlamaConfig Tiny = new()
    {
        VocabSize = 40, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 128,
        RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false,
    };

    static GgufVocabulary Characters(int count)
    {
        var chars = Enumerable.Range(0, count).Select(i => i == 0 ? "\n" : i == 1 ? "é" : ((char)('!' + i)).ToString()).ToList();
        return GgufVocabulary.FromCharacters(chars, eosId: 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void F32ExportImportRoundTripIsExact(bool tied)
    {
        var config = Tiny with { TiedEmbeddings = tied };
        var weights = GgufReference.RandomWeights(config, seed: 5);
        string path = Path.Combine(folder, "tiny.gguf");
        var vocabulary = Characters(config.VocabSize);
        LlamaGguf.Write(path, config, weights, vocabulary, GgmlType.F32, "tiny");

        using (var reader = GgufReader.Open(path))
        {
            Assert.Equal("llama", reader.GetString("general.architecture"));
            Assert.Equal(64, reader.GetInt("llama.embedding_length"));
            Assert.Equal(2, reader.GetInt("llama.block_count"));
            Assert.Equal(96, reader.GetInt("llama.feed_forward_length"));
            Assert.Equal(4, reader.GetInt("llama.attention.head_count"));
            Assert.Equal(2, reader.GetInt("llama.attention.head_count_kv"));
            Assert.Equal(128, reader.GetInt("llama.context_length"));
            Assert.Equal(16, reader.GetInt("llama.rope.dimension_count"));
            Assert.Equal(10000.0, reader.GetFloat("llama.rope.freq_base"));
            Assert.Equal(1e-5f, (float)reader.GetFloat("llama.attention.layer_norm_rms_epsilon"));
            Assert.Equal(tied, !reader.HasTensor("output.weight"));
            Assert.Equal([40, 64], reader.Tensor("token_embd.weight").Shape);
            Assert.Equal([64L, 40L], reader.Tensor("token_embd.weight").Dimensions);
            Assert.Equal([96, 64], reader.Tensor("blk.1.ffn_gate.weight").Shape);
            Assert.Equal([64, 96], reader.Tensor("blk.1.ffn_down.weight").Shape);
            Assert.Equal([32, 64], reader.Tensor("blk.0.attn_k.weight").Shape);
            // q is stored permuted: GGUF row 1 of head 0 is Hugging Face row headDim/2 = 8.
            var q = reader.ReadFloats("blk.0.attn_q.weight");
            Assert.Equal(weights["model.layers.0.self_attn.q_proj.weight"].Span.Slice(8 * 64, 64).ToArray(), q.AsSpan(64, 64).ToArray());
            Assert.Equal("gpt2", reader.GetString("tokenizer.ggml.model"));
            Assert.Equal("Ċ", reader.GetArray<string>("tokenizer.ggml.tokens")[0]);
            Assert.Equal(["Ã ©"], reader.GetArray<string>("tokenizer.ggml.merges"));
        }

        var model = LlamaGguf.Read(path);
        Assert.Equal(config with { EosId = 0 }, model.Config);
        Assert.Equal("tiny", model.Name);
        Assert.Equal(weights.Keys.Order(), model.Tensors.Keys.Order());
        foreach (var (name, tensor) in weights)
        {
            Assert.Equal(tensor.Shape.ToArray(), model.Tensors[name].Shape.ToArray());
            Assert.True(tensor.Span.SequenceEqual(model.Tensors[name].Span), $"tensor {name} changed");
        }
        Assert.Equal(vocabulary.Tokens, model.Vocabulary!.Tokens);
        Assert.Equal(vocabulary.Merges, model.Vocabulary.Merges);
        Assert.Equal(0, model.Vocabulary.EosId);
    }

    [Fact]
    public void Q8ExportKeepsNormsInF32AndStaysWithinTheQuantisationError()
    {
        var config = Tiny with { HiddenDim = 80 }; // ffn_down rows of 80 are not whole Q8_0 blocks: F16 fallback
        var weights = GgufReference.RandomWeights(config, seed: 6);
        string path = Path.Combine(folder, "q8.gguf");
        LlamaGguf.Write(path, config, weights, null, GgmlType.Q8_0);
        using (var reader = GgufReader.Open(path))
        {
            Assert.Equal(GgmlType.Q8_0, reader.Tensor("blk.0.attn_q.weight").Type);
            Assert.Equal(GgmlType.Q8_0, reader.Tensor("token_embd.weight").Type);
            Assert.Equal(GgmlType.F32, reader.Tensor("blk.0.attn_norm.weight").Type);
            Assert.Equal(GgmlType.F16, reader.Tensor("blk.0.ffn_down.weight").Type);
            Assert.Equal(7, reader.GetInt("general.file_type"));
        }
        var model = LlamaGguf.Read(path);
        foreach (var (name, tensor) in weights)
        {
            var back = model.Tensors[name].Span;
            float max = 0;
            foreach (var v in tensor.Span)
                max = Math.Max(max, Math.Abs(v));
            for (int i = 0; i < back.Length; i++)
                Assert.True(Math.Abs(back[i] - tensor.Span[i]) <= max / 127 * 0.6f, $"{name}[{i}]: {tensor.Span[i]} -> {back[i]}");
        }
        Assert.True(weights["model.norm.weight"].Span.SequenceEqual(model.Tensors["model.norm.weight"].Span));
    }

    [Fact]
    public void PermutationTurnsRotateHalfRopeIntoInterleavedRope()
    {
        // The trap in llama export: q and k rows must be permuted so llama.cpp's interleaved RoPE
        // rotates the same pairs that Hugging Face's rotate-half RoPE rotates.
        int heads = 3, headDim = 8, columns = 5;
        var random = new Random(7);
        var weight = Enumerable.Range(0, heads * headDim * columns).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var input = Enumerable.Range(0, columns).Select(_ => random.NextDouble()).ToArray();
        var permuted = LlamaGguf.PermuteToInterleaved(weight, heads, headDim, columns);
        Assert.Equal(weight, LlamaGguf.PermuteToHalves(permuted, heads, headDim, columns));

        double[] Project(float[] w) => Enumerable.Range(0, heads * headDim)
            .Select(r => Enumerable.Range(0, columns).Sum(c => w[r * columns + c] * input[c])).ToArray();
        var hf = GgufReference.RotateHalf(Project(weight), 9, heads, headDim, 10000);
        var gguf = GgufReference.RotateInterleaved(Project(permuted), 9, heads, headDim, 10000);
        // Row r of the interleaved result is row perm(r) of the rotate-half result.
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < headDim / 2; j++)
                for (int half = 0; half < 2; half++)
                    Assert.Equal(hf[h * headDim + half * headDim / 2 + j], gguf[h * headDim + 2 * j + half], 12);
    }

    [Fact]
    public void UnknownArchitectureIsOneLineNamingTheField()
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", GgufValue.String("gpt2"));
        string path = Path.Combine(folder, "gpt2.gguf");
        writer.Write(path);
        var e = Assert.Throws<GgufException>(() => LlamaGguf.Read(path));
        Assert.Equal($"{path}: unknown architecture 'gpt2' in 'general.architecture' (Loom reads 'llama' and 'qwen2')", e.Message);
    }

    [Fact]
    public void TensorShapeNotMatchingTheConfigIsNamed()
    {
        var config = Tiny;
        var weights = GgufReference.RandomWeights(config, seed: 8);
        string good = Path.Combine(folder, "good.gguf");
        LlamaGguf.Write(good, config, weights, null);
        // Copy every key and tensor but give blk.1.attn_v a wrong shape.
        var writer = new GgufWriter();
        using (var reader = GgufReader.Open(good))
        {
            foreach (var (key, value) in reader.Metadata)
                if (key != Gguf.AlignmentKey)
                    writer.Set(key, value);
            foreach (var info in reader.Tensors)
            {
                var values = reader.ReadFloats(info);
                var shape = info.Name == "blk.1.attn_v.weight" ? new[] { 64, 32 } : info.Shape;
                writer.AddTensor(info.Name, shape, values, GgmlType.F32);
            }
        }
        string bad = Path.Combine(folder, "bad.gguf");
        writer.Write(bad);
        var e = Assert.Throws<GgufException>(() => LlamaGguf.Read(bad));
        Assert.StartsWith($"{bad}: tensor 'blk.1.attn_v.weight' has shape [64, 32], the metadata", e.Message);
        Assert.Contains("needs [32, 64]", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingTensorAndBadMetadataAreNamed()
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", GgufValue.String("llama"));
        writer.Set("llama.embedding_length", GgufValue.String("sixty-four"));
        string path = Path.Combine(folder, "meta.gguf");
        writer.Write(path);
        var e = Assert.Throws<GgufException>(() => LlamaGguf.Read(path));
        Assert.Equal($"{path}: metadata 'llama.embedding_length' is a String, expected an integer", e.Message);

        var config = Tiny;
        var weights = GgufReference.RandomWeights(config, seed: 9);
        weights.Remove("model.layers.1.mlp.up_proj.weight");
        var missing = Assert.Throws<ArgumentException>(() => LlamaGguf.Write(Path.Combine(folder, "m.gguf"), config, weights, null));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", missing.Message);
    }
}
