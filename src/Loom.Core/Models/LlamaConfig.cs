using Loom.IO;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Models;

/// <summary>
/// The shape of a Llama-architecture model. Saved inside every checkpoint as Hugging Face's
/// <c>config.json</c>; on resume the architecture comes from the checkpoint, not the command line.
/// </summary>
public sealed record LlamaConfig
{
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

    /// <summary>Channels per attention head.</summary>
    public int HeadDim => Dim / Heads;

    /// <summary>Width of the key and value projections: KvHeads · HeadDim.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Trainable parameters (embedding, blocks, final norm, and the LM head when untied).</summary>
    public long ParameterCount
    {
        get
        {
            long embedding = (long)VocabSize * Dim;
            long attention = 2L * Dim * Dim + 2L * Dim * KvDim;
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
        Check(Dim % Heads == 0, $"Dim ({Dim}) must be a multiple of Heads ({Heads})");
        Check(HeadDim % 2 == 0, $"Dim / Heads ({HeadDim}) must be even for RoPE");
        Check(KvHeads > 0, $"KvHeads must be positive, got {KvHeads}");
        Check(Heads % KvHeads == 0, $"Heads ({Heads}) must be a multiple of KvHeads ({KvHeads})");
        Check(HiddenDim > 0, $"HiddenDim must be positive, got {HiddenDim}");
        Check(MaxSeq > 0, $"MaxSeq must be positive, got {MaxSeq}");
        Check(float.IsFinite(RopeTheta) && RopeTheta > 0, $"RopeTheta must be positive, got {RopeTheta}");
        Check(float.IsFinite(NormEps) && NormEps > 0, $"NormEps must be positive, got {NormEps}");
        Check(BosId >= -1 && BosId < VocabSize, $"BosId {BosId} is outside the vocabulary [0, {VocabSize})");
        Check(EosId >= -1 && EosId < VocabSize, $"EosId {EosId} is outside the vocabulary [0, {VocabSize})");
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

    /// <summary>Hugging Face's LlamaConfig as JSON (config.json).</summary>
    public string ToHuggingFaceJson()
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = Dim,
            ["intermediate_size"] = HiddenDim,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["head_dim"] = HeadDim,
            ["max_position_embeddings"] = MaxSeq,
            ["rope_theta"] = (double)RopeTheta,
            ["rms_norm_eps"] = double.Parse(NormEps.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture),
            ["tie_word_embeddings"] = TiedEmbeddings,
            ["hidden_act"] = "silu",
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["initializer_range"] = 0.02,
            ["torch_dtype"] = "float32",
            ["bos_token_id"] = BosId >= 0 ? JsonValue.Create(BosId) : null,
            ["eos_token_id"] = EosId >= 0 ? JsonValue.Create(EosId) : null,
        };
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
        if (Text("model_type") is string type && type != "llama")
            throw new FormatException($"{source}: model_type is '{type.ReplaceLineEndings(" ")}', expected 'llama'");
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
        int heads = Int("num_attention_heads");
        var config = new LlamaConfig
        {
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
        // Validated before head_dim is compared: HeadDim divides by num_attention_heads, which may be 0 in a corrupt file.
        try { config.Validate(); }
        catch (ArgumentException e) { throw new FormatException($"{source}: {e.Message}"); }
        int headDim = Int("head_dim", config.HeadDim);
        if (headDim != config.HeadDim)
            throw new FormatException($"{source}: head_dim {headDim} differs from hidden_size / num_attention_heads = {config.HeadDim}");
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
