using Loom.IO;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Models;

/// <summary>
/// Llama 3's RoPE frequency scaling (Hugging Face <c>rope_scaling</c> with rope_type "llama3"): wavelengths
/// longer than originalMaxPositionEmbeddings / lowFreqFactor are stretched by factor, shorter than
/// originalMaxPositionEmbeddings / highFreqFactor kept, and those between interpolated smoothly.
/// </summary>
/// <param name="Factor">How much longer the context is than the original one (factor).</param>
/// <param name="LowFreqFactor">low_freq_factor.</param>
/// <param name="HighFreqFactor">high_freq_factor.</param>
/// <param name="OriginalMaxPositionEmbeddings">The context the model was first trained at (original_max_position_embeddings).</param>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings)
{
    /// <summary>The rope_type value Loom reads and writes.</summary>
    public const string Llama3 = "llama3";

    /// <summary>
    /// The divisor of each rotary frequency, [headDim/2]: inverse frequency i becomes theta^(−2i/headDim) / divisor i.
    /// Computed as llama.cpp's converter writes <c>rope_freqs.weight</c> and as Hugging Face's
    /// <c>_compute_llama3_parameters</c> scales inv_freq (1 for short wavelengths, factor for long ones,
    /// 1 / ((1 − smooth) / factor + smooth) between).
    /// </summary>
    public float[] FrequencyDivisors(int headDim, float theta)
    {
        var divisors = new float[headDim / 2];
        double lowFreqWavelength = OriginalMaxPositionEmbeddings / LowFreqFactor;
        double highFreqWavelength = OriginalMaxPositionEmbeddings / HighFreqFactor;
        for (int i = 0; i < divisors.Length; i++)
        {
            double frequency = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highFreqWavelength) divisors[i] = 1f;
            else if (wavelength > lowFreqWavelength) divisors[i] = (float)Factor;
            else
            {
                double smooth = (OriginalMaxPositionEmbeddings / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                divisors[i] = (float)(1 / ((1 - smooth) / Factor + smooth));
            }
        }
        return divisors;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (!(double.IsFinite(Factor) && Factor >= 1)) throw new ArgumentException($"RopeScaling.Factor must be at least 1, got {Factor}");
        if (!(double.IsFinite(LowFreqFactor) && LowFreqFactor > 0)) throw new ArgumentException($"RopeScaling.LowFreqFactor must be positive, got {LowFreqFactor}");
        if (!(double.IsFinite(HighFreqFactor) && HighFreqFactor > LowFreqFactor))
            throw new ArgumentException($"RopeScaling.HighFreqFactor ({HighFreqFactor}) must be greater than LowFreqFactor ({LowFreqFactor})");
        if (OriginalMaxPositionEmbeddings <= 0) throw new ArgumentException($"RopeScaling.OriginalMaxPositionEmbeddings must be positive, got {OriginalMaxPositionEmbeddings}");
    }
}

/// <summary>
/// The shape of a Llama-architecture model, and of the families that share it: Llama 2/3 and SmolLM2 (model_type
/// llama), Qwen2 (qwen2: biases on q, k and v) and Mistral (mistral: sliding-window attention). Saved inside every
/// checkpoint as Hugging Face's <c>config.json</c>; on resume the architecture comes from the checkpoint, not the command line.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>The model_type of Llama, SmolLM2 and other LlamaForCausalLM models.</summary>
    public const string LlamaType = "llama";
    /// <summary>The model_type of Qwen2 and Qwen2.5 (Qwen2ForCausalLM).</summary>
    public const string Qwen2Type = "qwen2";
    /// <summary>The model_type of Mistral (MistralForCausalLM).</summary>
    public const string MistralType = "mistral";

    readonly int? headDim;

    /// <summary>The family (Hugging Face model_type): "llama", "qwen2" or "mistral".</summary>
    public string ModelType { get; init; } = LlamaType;
    /// <summary>Tokens in the vocabulary (rows of the embedding and of the LM head).</summary>
    public int VocabSize { get; init; } = 4096;
    /// <summary>Width of the residual stream (hidden_size).</summary>
    public int Dim { get; init; } = 256;
    /// <summary>Transformer blocks (num_hidden_layers).</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Query heads; headDim = Dim / Heads.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Key/value heads (grouped-query attention); equal to Heads for plain multi-head attention.</summary>
    public int KvHeads { get; init; } = 4;
    /// <summary>Width of the SwiGLU MLP (intermediate_size).</summary>
    public int HiddenDim { get; init; } = 768;
    /// <summary>Longest context the model is trained and served with (max_position_embeddings).</summary>
    public int MaxSeq { get; init; } = 256;
    /// <summary>RoPE base frequency.</summary>
    public float RopeTheta { get; init; } = 10000f;
    /// <summary>Epsilon inside every RMSNorm.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>Whether the LM head shares the token embedding's weights.</summary>
    public bool TiedEmbeddings { get; init; } = true;
    /// <summary>Beginning-of-sequence token id, or -1 for none.</summary>
    public int BosId { get; init; } = -1;
    /// <summary>End-of-sequence token id, or -1 for none.</summary>
    public int EosId { get; init; } = -1;

    /// <summary>Llama 3's RoPE frequency scaling (rope_scaling), or null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Mistral's sliding window (sliding_window): position p attends to p − window + 1 .. p; null = the whole past.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Channels per attention head (head_dim); Dim / Heads unless set.</summary>
    public int HeadDim { get => headDim ?? (Heads == 0 ? 0 : Dim / Heads); init => headDim = value; }

    /// <summary>Width of the key and value projections: KvHeads · HeadDim.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Width of the query projection and of o_proj's input: Heads · HeadDim.</summary>
    public int QueryDim => Heads * HeadDim;

    /// <summary>Whether q_proj, k_proj and v_proj carry biases (Qwen2; o_proj has none).</summary>
    public bool AttentionBias => ModelType == Qwen2Type;

    /// <summary>The divisor of each rotary frequency [HeadDim/2] under <see cref="RopeScaling"/>, or null for plain RoPE.</summary>
    public float[]? RopeFrequencyDivisors() => RopeScaling?.FrequencyDivisors(HeadDim, RopeTheta);

    /// <summary>Trainable parameters (embedding, blocks, final norm, and the LM head when untied).</summary>
    public long ParameterCount
    {
        get
        {
            long embedding = (long)VocabSize * Dim;
            long attention = 2L * Dim * QueryDim + 2L * Dim * KvDim + (AttentionBias ? QueryDim + 2L * KvDim : 0);
            long mlp = 3L * Dim * HiddenDim;
            long norms = 2L * Dim;
            return embedding + Layers * (attention + mlp + norms) + Dim + (TiedEmbeddings ? 0 : embedding);
        }
    }

    /// <summary>
    /// Training FLOPs per token at context <see cref="MaxSeq"/> (forward + backward), as nanoGPT's
    /// estimate_mfu: 6·N + 12·layers·dim·tokens, where N counts the weights in matrix products
    /// (the input embedding is a lookup, so an untied table is left out; a tied one counts once, as the head).
    /// </summary>
    public long FlopsPerToken => FlopsPerTokenAt(MaxSeq);

    /// <inheritdoc cref="FlopsPerToken"/>
    public long FlopsPerTokenAt(int contextLength)
    {
        long matmulWeights = ParameterCount - (TiedEmbeddings ? 0 : (long)VocabSize * Dim);
        return 6 * matmulWeights + 12L * Layers * Dim * contextLength;
    }

    /// <summary>Throws <see cref="ArgumentException"/> with a one-line message naming the first bad field.</summary>
    public LlamaConfig Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(VocabSize > 0, $"VocabSize must be positive, got {VocabSize}");
        Check(Dim > 0, $"Dim must be positive, got {Dim}");
        Check(Layers > 0, $"Layers must be positive, got {Layers}");
        Check(Heads > 0, $"Heads must be positive, got {Heads}");
        Check(ModelType is LlamaType or Qwen2Type or MistralType, $"ModelType '{ModelType}' is not supported (Loom runs '{LlamaType}', '{Qwen2Type}' and '{MistralType}')");
        Check(headDim is not null || Dim % Heads == 0, $"Dim ({Dim}) must be a multiple of Heads ({Heads})");
        Check(HeadDim > 0, $"HeadDim must be positive, got {HeadDim}");
        Check(HeadDim % 2 == 0, $"HeadDim ({HeadDim}) must be even for RoPE");
        Check(KvHeads > 0, $"KvHeads must be positive, got {KvHeads}");
        Check(Heads % KvHeads == 0, $"Heads ({Heads}) must be a multiple of KvHeads ({KvHeads})");
        Check(HiddenDim > 0, $"HiddenDim must be positive, got {HiddenDim}");
        Check(MaxSeq > 0, $"MaxSeq must be positive, got {MaxSeq}");
        Check(float.IsFinite(RopeTheta) && RopeTheta > 0, $"RopeTheta must be positive, got {RopeTheta}");
        Check(float.IsFinite(NormEps) && NormEps > 0, $"NormEps must be positive, got {NormEps}");
        Check(BosId >= -1 && BosId < VocabSize, $"BosId {BosId} is outside the vocabulary [0, {VocabSize})");
        Check(EosId >= -1 && EosId < VocabSize, $"EosId {EosId} is outside the vocabulary [0, {VocabSize})");
        Check(SlidingWindow is null || SlidingWindow > 0, $"SlidingWindow must be positive or null, got {SlidingWindow}");
        Check(SlidingWindow is null || ModelType == MistralType, $"SlidingWindow is a ModelType '{MistralType}' setting, this config's ModelType is '{ModelType}'");
        RopeScaling?.Validate();
        return this;
    }

    /// <summary>Named configurations; the vocabulary size is replaced by the tokenizer's when training.</summary>
    public static IReadOnlyDictionary<string, LlamaConfig> Presets { get; } = new Dictionary<string, LlamaConfig>
    {
        // nanoGPT's shakespeare_char config as run on a CPU: 4 layers, 4 heads, 128 channels, block 64,
        // character vocabulary (65 for tinyshakespeare). The SwiGLU width 384 (3·dim) keeps the MLP
        // near the size of GPT's 4·dim GELU MLP (3 matrices instead of 2).
        ["shakespeare-char"] = new() { VocabSize = 65, Dim = 128, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 384, MaxSeq = 64 },
        // For tests and smoke runs: about 0.1M parameters with a 256-token vocabulary, grouped-query attention.
        ["tiny"] = new() { VocabSize = 256, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 192, MaxSeq = 128 },
        // About 25M parameters with an 8192-token BPE vocabulary: 6 layers of 512 channels, 8 heads, context 512.
        ["small"] = new() { VocabSize = 8192, Dim = 512, Layers = 6, Heads = 8, KvHeads = 8, HiddenDim = 1536, MaxSeq = 512 },
    };

    /// <summary>The preset called <paramref name="name"/>; a one-line error lists the known names.</summary>
    public static LlamaConfig Preset(string name) =>
        Presets.TryGetValue(name, out var config)
            ? config
            : throw new ArgumentException($"unknown preset '{name}' (known: {string.Join(", ", Presets.Keys)})");

    /// <summary>The Hugging Face class that runs this family (config.json's architectures).</summary>
    public string Architecture => ModelType switch
    {
        Qwen2Type => "Qwen2ForCausalLM",
        MistralType => "MistralForCausalLM",
        _ => "LlamaForCausalLM",
    };

    /// <summary>Hugging Face's config.json for this family (LlamaConfig, Qwen2Config or MistralConfig).</summary>
    public string ToHuggingFaceJson()
    {
        static double Exact(float value) =>
            double.Parse(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = ModelType,
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = Dim,
            ["intermediate_size"] = HiddenDim,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["head_dim"] = HeadDim,
            ["max_position_embeddings"] = MaxSeq,
            ["rope_theta"] = (double)RopeTheta,
            ["rope_scaling"] = RopeScaling is null ? null : new JsonObject
            {
                ["rope_type"] = RopeScaling.Llama3,
                ["factor"] = RopeScaling.Factor,
                ["low_freq_factor"] = RopeScaling.LowFreqFactor,
                ["high_freq_factor"] = RopeScaling.HighFreqFactor,
                ["original_max_position_embeddings"] = RopeScaling.OriginalMaxPositionEmbeddings,
            },
            ["rms_norm_eps"] = Exact(NormEps),
            ["tie_word_embeddings"] = TiedEmbeddings,
            ["hidden_act"] = "silu",
            ["initializer_range"] = 0.02,
            ["torch_dtype"] = "float32",
            ["bos_token_id"] = BosId >= 0 ? JsonValue.Create(BosId) : null,
            ["eos_token_id"] = EosId >= 0 ? JsonValue.Create(EosId) : null,
        };
        // Qwen2's biases are implied by its class; Llama's attention_bias would also put one on o_proj.
        if (ModelType == LlamaType)
        {
            json["attention_bias"] = false;
            json["mlp_bias"] = false;
        }
        if (ModelType == MistralType) json["sliding_window"] = SlidingWindow is int window ? JsonValue.Create(window) : null;
        if (ModelType == Qwen2Type) json["use_sliding_window"] = false;
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads Hugging Face's config.json text; <paramref name="source"/> names the file in errors.</summary>
    public static LlamaConfig FromHuggingFaceJson(string json, string source = "config.json")
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw new FormatException($"{source}: expected a JSON object");
            // Field names are decoded when first looked up: an escaped lone surrogate (\ud800) in one surfaces here, not in the lookups below.
            _ = root.Count;
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: invalid JSON ({e.Message.ReplaceLineEndings(" ")})");
        }
        catch (InvalidOperationException)
        {
            throw new FormatException($"{source}: a field name is not valid text (an unpaired UTF-16 surrogate escape)");
        }
        string? Text(string field)
        {
            if (root[field] is not JsonNode node || node.GetValueKind() != JsonValueKind.String) return null;
            // Strings are decoded lazily: an escaped lone surrogate (\ud800) surfaces here.
            try { return node.GetValue<string>(); }
            catch (InvalidOperationException) { throw new FormatException($"{source}: field {field} is not valid text (an unpaired UTF-16 surrogate escape)"); }
        }
        string modelType = Text("model_type") ?? LlamaType;
        if (modelType is not (LlamaType or Qwen2Type or MistralType))
            throw new FormatException($"{source}: model_type is '{modelType.ReplaceLineEndings(" ")}', expected '{LlamaType}', '{Qwen2Type}' or '{MistralType}'");
        if (Text("hidden_act") is string act && act != "silu")
            throw new FormatException($"{source}: hidden_act is '{act.ReplaceLineEndings(" ")}', only 'silu' is supported");

        // A value quoted in an error: serializing a string with an escaped lone surrogate would itself throw.
        static string Shown(JsonNode node)
        {
            try { return node.ToJsonString(); }
            catch (InvalidOperationException) { return "a string that is not valid text"; }
        }
        int Int(string field, int? fallback = null) => IntOf(root[field], field, fallback);
        int IntOf(JsonNode? node, string field, int? fallback)
        {
            if (node is null || node.GetValueKind() == JsonValueKind.Null)
                return fallback ?? throw new FormatException($"{source}: missing field {field}");
            try { return node.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new FormatException($"{source}: field {field} must be an integer, got {Shown(node)}");
            }
        }
        float Float(string field, float fallback)
        {
            var node = root[field];
            if (node is null || node.GetValueKind() == JsonValueKind.Null) return fallback;
            if (node.GetValueKind() != JsonValueKind.Number) throw new FormatException($"{source}: field {field} must be a number, got {Shown(node)}");
            return (float)node.GetValue<double>();
        }
        bool Bool(string field, bool fallback)
        {
            var node = root[field];
            if (node is null || node.GetValueKind() == JsonValueKind.Null) return fallback;
            return node.GetValueKind() switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new FormatException($"{source}: field {field} must be true or false, got {Shown(node)}"),
            };
        }
        // Hugging Face allows a list of end tokens; the first is the one Loom emits.
        int TokenId(string field) =>
            root[field] is JsonArray list ? (list.Count == 0 ? -1 : IntOf(list[0], $"{field}[0]", -1)) : Int(field, -1);
        if (modelType != Qwen2Type && Bool("attention_bias", false))
            throw new FormatException($"{source}: attention_bias true (a bias on o_proj as well) is not supported for model_type '{modelType}'");
        if (Bool("mlp_bias", false))
            throw new FormatException($"{source}: mlp_bias true is not supported");
        if (modelType == Qwen2Type && Bool("use_sliding_window", false))
            throw new FormatException($"{source}: use_sliding_window true is not supported for model_type '{Qwen2Type}'");
        int? slidingWindow = modelType == MistralType && root["sliding_window"] is JsonNode window && window.GetValueKind() != JsonValueKind.Null
            ? IntOf(window, "sliding_window", null)
            : null;
        RopeScaling? ropeScaling = null;
        if (root["rope_scaling"] is JsonNode scalingNode && scalingNode.GetValueKind() != JsonValueKind.Null)
        {
            if (scalingNode is not JsonObject scaling) throw new FormatException($"{source}: field rope_scaling must be an object, got {Shown(scalingNode)}");
            var typeNode = scaling["rope_type"] ?? scaling["type"];
            string scalingType = typeNode is not null && typeNode.GetValueKind() == JsonValueKind.String ? Shown(typeNode).Trim('"') : "(none)";
            if (scalingType != "default")
            {
                if (scalingType != RopeScaling.Llama3)
                    throw new FormatException($"{source}: rope_scaling type '{scalingType}' is not supported (Loom reads '{RopeScaling.Llama3}')");
                double Number(string field)
                {
                    var node = scaling[field] ?? throw new FormatException($"{source}: missing field rope_scaling.{field}");
                    if (node.GetValueKind() != JsonValueKind.Number) throw new FormatException($"{source}: field rope_scaling.{field} must be a number, got {Shown(node)}");
                    return node.GetValue<double>();
                }
                ropeScaling = new RopeScaling(Number("factor"), Number("low_freq_factor"), Number("high_freq_factor"),
                    IntOf(scaling["original_max_position_embeddings"], "rope_scaling.original_max_position_embeddings", null));
            }
        }
        int heads = Int("num_attention_heads");
        var config = new LlamaConfig
        {
            ModelType = modelType,
            RopeScaling = ropeScaling,
            SlidingWindow = slidingWindow,
            VocabSize = Int("vocab_size"),
            Dim = Int("hidden_size"),
            HiddenDim = Int("intermediate_size"),
            Layers = Int("num_hidden_layers"),
            Heads = heads,
            KvHeads = Int("num_key_value_heads", heads),
            MaxSeq = Int("max_position_embeddings"),
            RopeTheta = Float("rope_theta", 10000f),
            NormEps = Float("rms_norm_eps", 1e-6f),
            TiedEmbeddings = Bool("tie_word_embeddings", false),
            BosId = TokenId("bos_token_id"),
            EosId = TokenId("eos_token_id"),
        };
        // head_dim is kept only where it differs from hidden_size / num_attention_heads (Mistral Nemo's 128 at 5120 / 32),
        // so a config read back equals the one written.
        if (root["head_dim"] is JsonNode headDimNode && headDimNode.GetValueKind() != JsonValueKind.Null)
        {
            int headDim = IntOf(headDimNode, "head_dim", null);
            if (heads <= 0 || config.Dim % heads != 0 || headDim != config.Dim / heads) config = config with { HeadDim = headDim };
        }
        try { config.Validate(); }
        catch (ArgumentException e) { throw new FormatException($"{source}: {e.Message}"); }
        return config;
    }

    /// <summary>The largest config.json read (1 MiB; real ones are a few KB).</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>Reads a config.json file.</summary>
    public static LlamaConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes) throw new InvalidDataException($"{path}: {length:N0} bytes; a config.json is at most {MaxFileBytes >> 20} MiB");
        return FromHuggingFaceJson(File.ReadAllText(path), path);
    }

    /// <summary>Writes config.json atomically (temp file, then rename).</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToHuggingFaceJson());
}
