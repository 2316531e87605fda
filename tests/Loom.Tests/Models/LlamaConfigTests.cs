using System.Text.Json.Nodes;
using Loom.Models;

namespace Loom.Tests.Models;

public class LlamaConfigTests
{
    [Fact]
    public void HuggingFaceJsonRoundTripsAndUsesHuggingFaceNames()
    {
        var config = new LlamaConfig { VocabSize = 100, Dim = 64, Layers = 3, Heads = 8, KvHeads = 2, HiddenDim = 160, MaxSeq = 32, RopeTheta = 500000f, NormEps = 1e-6f, TiedEmbeddings = false, BosId = 1, EosId = 2 };
        string json = config.ToHuggingFaceJson();
        var node = JsonNode.Parse(json)!;
        Assert.Equal("LlamaForCausalLM", (string)node["architectures"]![0]!);
        Assert.Equal("llama", (string)node["model_type"]!);
        Assert.Equal(100, (int)node["vocab_size"]!);
        Assert.Equal(64, (int)node["hidden_size"]!);
        Assert.Equal(160, (int)node["intermediate_size"]!);
        Assert.Equal(3, (int)node["num_hidden_layers"]!);
        Assert.Equal(8, (int)node["num_attention_heads"]!);
        Assert.Equal(2, (int)node["num_key_value_heads"]!);
        Assert.Equal(32, (int)node["max_position_embeddings"]!);
        Assert.Equal(500000.0, (double)node["rope_theta"]!);
        Assert.Equal(1e-6, (double)node["rms_norm_eps"]!);
        Assert.False((bool)node["tie_word_embeddings"]!);
        Assert.Equal("silu", (string)node["hidden_act"]!);
        Assert.Equal("float32", (string)node["torch_dtype"]!);
        Assert.Equal(1, (int)node["bos_token_id"]!);
        Assert.Equal(2, (int)node["eos_token_id"]!);
        Assert.Equal(config, LlamaConfig.FromHuggingFaceJson(json));
    }

    [Fact]
    public void ReadsAHuggingFaceConfigWithDefaultsAndEosList()
    {
        // The fields of TinyLlama-1.1B's config.json (num_key_value_heads present, eos as a list variant).
        string json = """
        {"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":[2,3],"hidden_act":"silu","hidden_size":2048,
         "initializer_range":0.02,"intermediate_size":5632,"max_position_embeddings":2048,"model_type":"llama",
         "num_attention_heads":32,"num_hidden_layers":22,"num_key_value_heads":4,"rms_norm_eps":1e-05,
         "tie_word_embeddings":false,"torch_dtype":"bfloat16","vocab_size":32000}
        """;
        var config = LlamaConfig.FromHuggingFaceJson(json);
        Assert.Equal(4, config.KvHeads);
        Assert.Equal(2, config.EosId);
        Assert.Equal(10000f, config.RopeTheta);
        // TinyLlama's published parameter count: 1,100,048,384.
        Assert.Equal(1_100_048_384L, config.ParameterCount);
    }

    [Theory]
    [InlineData("""{"vocab_size":10}""", "missing field num_attention_heads")]
    [InlineData("""{"vocab_size":10,"hidden_size":"x","intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8}""", "field hidden_size must be an integer")]
    [InlineData("""{"vocab_size":10,"hidden_size":10,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":3,"max_position_embeddings":8}""", "Dim (10) must be a multiple of Heads (3)")]
    [InlineData("""{"model_type":"gpt2"}""", "model_type is 'gpt2'")]
    [InlineData("""{"vocab_size":""", "invalid JSON")]
    public void BadConfigGivesOneLineErrorNamingTheField(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => LlamaConfig.FromHuggingFaceJson(json, "x/config.json"));
        Assert.StartsWith("x/config.json: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ValidationNamesTheField()
    {
        Assert.Contains("KvHeads", Assert.Throws<ArgumentException>(() => (new LlamaConfig { Heads = 4, KvHeads = 3 }).Validate()).Message);
        Assert.Contains("VocabSize", Assert.Throws<ArgumentException>(() => (new LlamaConfig { VocabSize = 0 }).Validate()).Message);
        Assert.Contains("EosId", Assert.Throws<ArgumentException>(() => (new LlamaConfig { EosId = 5000 }).Validate()).Message);
    }

    [Fact]
    public void ParameterCountAndFlopsFollowTheShapes()
    {
        var c = new LlamaConfig { VocabSize = 10, Dim = 8, Layers = 2, Heads = 2, KvHeads = 1, HiddenDim = 12, MaxSeq = 16, TiedEmbeddings = true };
        // embed 80; per layer q 64 + k 32 + v 32 + o 64 + mlp 288 + norms 16 = 496; final norm 8.
        Assert.Equal(80 + 2 * 496 + 8, c.ParameterCount);
        Assert.Equal(6L * c.ParameterCount + 12L * 2 * 8 * 16, c.FlopsPerToken);
        var untied = c with { TiedEmbeddings = false };
        Assert.Equal(c.ParameterCount + 80, untied.ParameterCount);
        Assert.Equal(c.FlopsPerToken, untied.FlopsPerToken);
    }

    [Fact]
    public void PresetsAreValidAndUnknownNameIsListed()
    {
        foreach (var (_, preset) in LlamaConfig.Presets) preset.Validate();
        var small = LlamaConfig.Preset("small");
        Assert.InRange(small.ParameterCount, 23_000_000, 27_000_000);
        var sc = LlamaConfig.Preset("shakespeare-char");
        Assert.Equal((4, 4, 128, 64), (sc.Layers, sc.Heads, sc.Dim, sc.MaxSeq));
        var e = Assert.Throws<ArgumentException>(() => LlamaConfig.Preset("huge"));
        Assert.Contains("unknown preset 'huge'", e.Message);
        Assert.Contains("shakespeare-char", e.Message);
    }
}
