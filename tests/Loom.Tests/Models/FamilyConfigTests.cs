using System.Text.Json.Nodes;
using Loom.Models;

namespace Loom.Tests.Models;

/// <summary>config.json of the families Loom imports: Llama 3.2 (llama3 rope scaling), Qwen2.5 (q/k/v biases), Mistral (sliding window).</summary>
public sealed class FamilyConfigTests
{
    // The fields of Qwen2.5-0.5B's config.json.
    const string Qwen25Json = """
        {"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,"eos_token_id":151643,"hidden_act":"silu",
         "hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,"max_position_embeddings":32768,"max_window_layers":24,
         "model_type":"qwen2","num_attention_heads":14,"num_hidden_layers":24,"num_key_value_heads":2,"rms_norm_eps":1e-06,
         "rope_theta":1000000.0,"sliding_window":32768,"tie_word_embeddings":true,"torch_dtype":"bfloat16","transformers_version":"4.40.1",
         "use_cache":true,"use_sliding_window":false,"vocab_size":151936}
        """;

    // The fields of Llama-3.2-1B's config.json.
    const string Llama32Json = """
        {"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":128000,"eos_token_id":128001,
         "head_dim":64,"hidden_act":"silu","hidden_size":2048,"initializer_range":0.02,"intermediate_size":8192,"max_position_embeddings":131072,
         "mlp_bias":false,"model_type":"llama","num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"pretraining_tp":1,
         "rms_norm_eps":1e-05,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,
         "rope_type":"llama3"},"rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16","use_cache":true,"vocab_size":128256}
        """;

    // The fields of Mistral-7B-v0.1's config.json.
    const string MistralJson = """
        {"architectures":["MistralForCausalLM"],"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,
         "intermediate_size":14336,"max_position_embeddings":32768,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":32,
         "num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":10000.0,"sliding_window":4096,"tie_word_embeddings":false,
         "torch_dtype":"bfloat16","use_cache":true,"vocab_size":32000}
        """;

    [Fact]
    public void Qwen25ReadsAsQwen2WithBiasesAndItsPublishedParameterCount()
    {
        var config = LlamaConfig.FromHuggingFaceJson(Qwen25Json);
        Assert.Equal("qwen2", config.ModelType);
        Assert.True(config.AttentionBias);
        Assert.True(config.TiedEmbeddings);
        Assert.Null(config.SlidingWindow); // use_sliding_window false
        Assert.Equal(1e6f, config.RopeTheta);
        Assert.Equal(64, config.HeadDim);
        Assert.Equal(494_032_768L, config.ParameterCount); // Qwen2.5-0.5B's model card: 0.49B
        var node = JsonNode.Parse(config.ToHuggingFaceJson())!;
        Assert.Equal("Qwen2ForCausalLM", (string)node["architectures"]![0]!);
        Assert.Equal(config, LlamaConfig.FromHuggingFaceJson(config.ToHuggingFaceJson()));
    }

    [Fact]
    public void Llama32ReadsItsRopeScalingAndRoundTrips()
    {
        var config = LlamaConfig.FromHuggingFaceJson(Llama32Json);
        Assert.Equal("llama", config.ModelType);
        Assert.Equal(new RopeScaling(32, 1, 4, 8192), config.RopeScaling);
        Assert.Equal(1_235_814_400L, config.ParameterCount); // Llama 3.2 1B: 1.24B
        string json = config.ToHuggingFaceJson();
        Assert.Equal("llama3", (string)JsonNode.Parse(json)!["rope_scaling"]!["rope_type"]!);
        Assert.Equal(config, LlamaConfig.FromHuggingFaceJson(json));
    }

    [Fact]
    public void MistralReadsItsSlidingWindowAndRoundTrips()
    {
        var config = LlamaConfig.FromHuggingFaceJson(MistralJson);
        Assert.Equal("mistral", config.ModelType);
        Assert.Equal(4096, config.SlidingWindow);
        Assert.False(config.AttentionBias);
        Assert.Equal(7_241_732_096L, config.ParameterCount); // Mistral 7B v0.1
        string json = config.ToHuggingFaceJson();
        Assert.Equal("MistralForCausalLM", (string)JsonNode.Parse(json)!["architectures"]![0]!);
        Assert.Equal(config, LlamaConfig.FromHuggingFaceJson(json));
        var unwindowed = LlamaConfig.FromHuggingFaceJson(MistralJson.Replace("\"sliding_window\":4096", "\"sliding_window\":null"));
        Assert.Null(unwindowed.SlidingWindow);
    }

    [Fact]
    public void AnExplicitHeadDimOtherThanDimOverHeadsIsKept()
    {
        // Mistral Nemo: 5120 channels, 32 heads of 128 (not 160).
        var config = LlamaConfig.FromHuggingFaceJson(MistralJson.Replace("\"hidden_size\":4096", "\"hidden_size\":5120,\"head_dim\":128"));
        Assert.Equal(128, config.HeadDim);
        Assert.Equal(32 * 128, config.QueryDim);
        Assert.Equal(config, LlamaConfig.FromHuggingFaceJson(config.ToHuggingFaceJson()));
    }

    /// <summary>Hugging Face's _compute_llama3_parameters, transcribed: the scaled inverse frequencies themselves.</summary>
    static double[] HuggingFaceLlama3InverseFrequencies(int headDim, double theta, double factor, double low, double high, double oldContext)
    {
        var result = new double[headDim / 2];
        for (int i = 0; i < result.Length; i++)
        {
            double invFreq = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            double wavelength = 2 * Math.PI / invFreq;
            double scaled = wavelength > oldContext / low ? invFreq / factor : invFreq;
            double smooth = (oldContext / wavelength - low) / (high - low);
            double smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
            bool medium = !(wavelength < oldContext / high) && !(wavelength > oldContext / low);
            result[i] = medium ? smoothed : scaled;
        }
        return result;
    }

    [Theory]
    [InlineData(64, 500000.0, 32.0)] // Llama 3.2
    [InlineData(128, 500000.0, 8.0)] // Llama 3.1
    public void Llama3DivisorsGiveHuggingFacesScaledFrequencies(int headDim, double theta, double factor)
    {
        var scaling = new RopeScaling(factor, 1, 4, 8192);
        var divisors = scaling.FrequencyDivisors(headDim, (float)theta);
        var expected = HuggingFaceLlama3InverseFrequencies(headDim, theta, factor, 1, 4, 8192);
        Assert.Contains(divisors, d => d == 1f); // some frequencies are kept,
        Assert.Contains(divisors, d => d == (float)factor); // some stretched by the factor,
        Assert.Contains(divisors, d => d > 1f && d < factor); // and some in between.
        for (int i = 0; i < divisors.Length; i++)
        {
            double actual = Math.Pow(theta, -2.0 * i / headDim) / divisors[i];
            Assert.True(Math.Abs(actual - expected[i]) <= 1e-6 * expected[i], $"frequency {i}: {actual} vs {expected[i]}");
        }
    }

    [Theory]
    [InlineData("\"rope_type\":\"llama3\"", "\"type\":\"yarn\"", "rope_scaling type 'yarn' is not supported")]
    [InlineData("\"attention_bias\":false", "\"attention_bias\":true", "attention_bias true")]
    [InlineData("\"mlp_bias\":false", "\"mlp_bias\":true", "mlp_bias true")]
    [InlineData("\"low_freq_factor\":1.0,", "", "missing field rope_scaling.low_freq_factor")]
    [InlineData("\"rope_type\":\"llama3\"", "\"rope_type\":\"dynamic\"", "rope_scaling type 'dynamic'")]
    public void UnsupportedLlamaSettingsGiveOneLineErrorsNamingTheField(string from, string to, string expected)
    {
        string json = Llama32Json.Replace(from, to);
        Assert.NotEqual(Llama32Json, json);
        var e = Assert.Throws<FormatException>(() => LlamaConfig.FromHuggingFaceJson(json, "m/config.json"));
        Assert.StartsWith("m/config.json: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void UnsupportedFamilySettingsNameTheField()
    {
        Assert.Contains("use_sliding_window", Assert.Throws<FormatException>(() =>
            LlamaConfig.FromHuggingFaceJson(Qwen25Json.Replace("\"use_sliding_window\":false", "\"use_sliding_window\":true"))).Message);
        Assert.Contains("model_type is 'gemma2'", Assert.Throws<FormatException>(() =>
            LlamaConfig.FromHuggingFaceJson(Qwen25Json.Replace("\"qwen2\"", "\"gemma2\""))).Message);
        Assert.Contains("SlidingWindow", Assert.Throws<ArgumentException>(() => new LlamaConfig { SlidingWindow = 8 }.Validate()).Message);
        Assert.Contains("ModelType", Assert.Throws<ArgumentException>(() => new LlamaConfig { ModelType = "gpt2" }.Validate()).Message);
        Assert.Contains("RopeScaling.HighFreqFactor", Assert.Throws<ArgumentException>(() => new LlamaConfig { RopeScaling = new(8, 4, 1, 8192) }.Validate()).Message);
    }
}
