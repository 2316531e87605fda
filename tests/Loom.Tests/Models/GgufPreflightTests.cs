using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Text;

namespace Loom.Tests.Models;

/// <summary>
/// Hostile GGUF headers (issue 18 item 3): every value llama.cpp would abort, divide by zero or allocate without bound on
/// is refused by Loom's own reader first, with one line naming the file and the key, on every path that hands a GGUF to
/// llama.cpp. The files are a valid tiny export with one field changed.
/// </summary>
public sealed class GgufPreflightTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-gguf-hostile-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static readonly CharTokenizer Tokenizer = CharTokenizer.Train(["First Citizen:\nBefore we proceed any further, hear me speak.\n"]);

    /// <summary>A valid llama GGUF: 2 layers, dim 64, 4 heads, 2 KV heads, context 64, the char tokenizer's vocabulary.</summary>
    string ValidFile()
    {
        var config = new LlamaConfig { VocabSize = Tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 64, TiedEmbeddings = false };
        string path = Path.Combine(folder, "valid.gguf");
        if (!File.Exists(path)) LlamaGguf.Export(path, new Transformer(config, seed: 3), Tokenizer, GgmlType.F32, "tiny");
        return path;
    }

    /// <summary>The valid file rewritten with <paramref name="key"/> set to <paramref name="value"/>, everything else as it was.</summary>
    string Hostile(string name, string key, GgufValue value)
    {
        string source = ValidFile();
        string path = Path.Combine(folder, name + ".gguf");
        using var reader = GgufReader.Open(source);
        var writer = new GgufWriter(reader.Alignment);
        foreach (var (k, v) in reader.Metadata) writer.Set(k, k == key ? value : v);
        writer.Set(key, value);
        foreach (var tensor in reader.Tensors) writer.AddTensorData(tensor.Name, tensor.Dimensions, tensor.TypeId, reader.ReadRaw(tensor));
        writer.Write(path);
        return path;
    }

    public static TheoryData<string, string, GgufValue> HostileFields() => new()
    {
        { "blocks-0", "llama.block_count", GgufValue.UInt32(0) },
        { "blocks-1e6", "llama.block_count", GgufValue.UInt32(1_000_000) },
        { "context-0", "llama.context_length", GgufValue.UInt32(0) },
        { "context-4e9", "llama.context_length", GgufValue.UInt32(4_000_000_000) },
        { "embedding-0", "llama.embedding_length", GgufValue.UInt32(0) },
        { "embedding-32", "llama.embedding_length", GgufValue.UInt32(32) },
        { "heads-0", "llama.attention.head_count", GgufValue.UInt32(0) },
        { "heads-3", "llama.attention.head_count", GgufValue.UInt32(3) },
        { "heads-128", "llama.attention.head_count", GgufValue.UInt32(128) },
        { "kv-heads-0", "llama.attention.head_count_kv", GgufValue.UInt32(0) },
        { "kv-heads-3", "llama.attention.head_count_kv", GgufValue.UInt32(3) },
        { "eps-nan", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(float.NaN) },
        { "eps-inf", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(float.PositiveInfinity) },
        { "eps-0", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(0) },
        { "eps-negative", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(-1e-5f) },
        { "eps-string", "llama.attention.layer_norm_rms_epsilon", GgufValue.String("tiny") },
        { "rope-nan", "llama.rope.freq_base", GgufValue.Float32(float.NaN) },
        { "rope-0", "llama.rope.freq_base", GgufValue.Float32(0) },
        { "vocab-more", "llama.vocab_size", GgufValue.UInt32(1000) },
        { "feed-forward-0", "llama.feed_forward_length", GgufValue.UInt32(0) },
    };

    [Theory]
    [MemberData(nameof(HostileFields))]
    public void AHostileHeaderIsRefusedBeforeLlamaCppSeesIt(string name, string key, GgufValue value)
    {
        string path = Hostile(name, key, value);
        var error = Assert.Throws<GgufException>(() => LlamaCppModel.Load(path, new LlamaCppOptions(Threads: 1)));
        AssertOneLineNaming(error.Message, path, key);
        var decoderError = Assert.Throws<GgufException>(() => LlamaCppDecoder.Load(path, 2, new LlamaCppOptions(Threads: 1)));
        Assert.Equal(error.Message, decoderError.Message);
    }

    [Fact]
    public void TensorDataPastTheEndOfTheFileIsRefused()
    {
        string path = Path.Combine(folder, "cut.gguf");
        var bytes = File.ReadAllBytes(ValidFile());
        File.WriteAllBytes(path, bytes[..^100]);
        var error = Assert.Throws<GgufException>(() => LlamaCppModel.Load(path, new LlamaCppOptions(Threads: 1)));
        AssertOneLineNaming(error.Message, path, "truncated");
    }

    [Fact]
    public void ATokenArrayShorterThanTheEmbeddingIsRefused()
    {
        string path = Hostile("short-vocab", GgufVocabulary.TokensKey, GgufValue.Array(new[] { "a", "b" }));
        var error = Assert.Throws<GgufException>(() => LlamaCppModel.Load(path, new LlamaCppOptions(Threads: 1)));
        AssertOneLineNaming(error.Message, path, GgufVocabulary.TokensKey);
    }

    [Fact]
    public void PerLayerHeadCountsAreCheckedLayerByLayer()
    {
        const string key = "llama.attention.head_count_kv";
        Assert.Equal(64, GgufPreflight.Check(ValidFile()));
        // A 0 in a per-layer array is a layer without attention, as hybrid architectures write it.
        Assert.Equal(64, GgufPreflight.Check(Hostile("kv-per-layer", key, GgufValue.Array(new uint[] { 0, 2 }))));
        AssertOneLineNaming(Assert.Throws<GgufException>(() => GgufPreflight.Check(Hostile("kv-per-layer-3", key, GgufValue.Array(new uint[] { 2, 3 })))).Message,
            Path.Combine(folder, "kv-per-layer-3.gguf"), key);
        AssertOneLineNaming(Assert.Throws<GgufException>(() => GgufPreflight.Check(Hostile("kv-three-layers", key, GgufValue.Array(new uint[] { 2, 2, 2 })))).Message,
            Path.Combine(folder, "kv-three-layers.gguf"), key);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void TheValidFileStillLoadsAndAHugeTrainedContextIsClampedWhenTheCallerGivesNone()
    {
        using (var model = LlamaCppModel.Load(ValidFile(), new LlamaCppOptions(Threads: 1)))
            Assert.All(model.NextTokenLogits([1, 2, 3]), logit => Assert.True(float.IsFinite(logit)));
        // 1,000,000 tokens of trained context is legal, but a KV cache that long is not what a caller who gave no size wants.
        string path = Hostile("context-1e6", "llama.context_length", GgufValue.UInt32(1_000_000));
        using (var model = LlamaCppModel.Load(path, new LlamaCppOptions(Threads: 1)))
            Assert.Equal(LlamaCppOptions.DefaultContextSize, model.ContextSize);
        using (var decoder = LlamaCppDecoder.Load(path, 2, new LlamaCppOptions(Threads: 1)))
            Assert.Equal(LlamaCppOptions.DefaultContextSize, decoder.ContextLength);
    }

    /// <summary>
    /// The case that killed <c>loom serve</c> with SIGABRT on its first request: an rms epsilon of NaN. Run as a user runs
    /// it, in a child process: it must exit with code 1 and one line naming the file and the key, not die of a signal.
    /// </summary>
    [Fact]
    public async Task GenerateWithANanEpsilonExitsWithOneLineInsteadOfAbort()
    {
        string path = Hostile("eps-nan-cli", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(float.NaN));
        var (code, output, error) = await LoomProcess.RunAsync(TimeSpan.FromMinutes(2), "generate", "--gguf", path, "--max-tokens", "2", "--threads", "1", "First");
        Assert.True(code == 1, $"exit code {code}; stderr: {error}; stdout: {output}");
        AssertOneLineNaming(error.Trim(), path, "llama.attention.layer_norm_rms_epsilon");
    }

    /// <summary><c>loom serve --gguf</c> takes the same path: it refuses the file before it listens.</summary>
    [Fact]
    public async Task ServeWithANanEpsilonExitsWithOneLineBeforeListening()
    {
        string path = Hostile("eps-nan-serve", "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(float.NaN));
        var (code, output, error) = await LoomProcess.RunAsync(TimeSpan.FromMinutes(2), "serve", "--gguf", path, "--port", "0", "--threads", "1");
        Assert.True(code == 1, $"exit code {code}; stderr: {error}; stdout: {output}");
        Assert.DoesNotContain("listening", output);
        AssertOneLineNaming(error.Trim(), path, "llama.attention.layer_norm_rms_epsilon");
    }

    static void AssertOneLineNaming(string message, string path, string key)
    {
        Assert.DoesNotContain('\n', message.Trim());
        Assert.Contains(path, message);
        Assert.Contains(key, message);
    }
}
