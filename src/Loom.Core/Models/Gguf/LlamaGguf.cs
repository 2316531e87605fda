using Loom.Tensors;
using Loom.Text;

namespace Loom.Models.Gguf;

/// <summary>A llama model read from GGUF: config, Hugging Face-named float32 tensors, and the tokenizer if the file has one.</summary>
public sealed record LlamaGgufModel(LlamaConfig Config, IReadOnlyDictionary<string, Tensor> Tensors, GgufVocabulary? Vocabulary, string? Name);

/// <summary>
/// Writes and reads Llama-family models as GGUF the way llama.cpp's Hugging Face converter does:
/// <c>general.architecture = llama</c> (Llama, SmolLM2, Mistral) or <c>qwen2</c>, <c>{arch}.*</c> hyperparameters, tensors renamed
/// (<c>model.layers.N.self_attn.q_proj.weight</c> ↔ <c>blk.N.attn_q.weight</c>, Qwen2's biases ↔ <c>blk.N.attn_q.bias</c>, ...).
/// For llama the rows of q and k are permuted per head from Hugging Face's rotate-half RoPE layout (the first half of a
/// head's rows rotates with the second half) to llama.cpp's interleaved layout (rows 2i and 2i+1 rotate together);
/// import applies the inverse permutation. qwen2 runs rotate-half RoPE in llama.cpp (NEOX), so its rows stay as they are.
/// Llama 3's rope scaling is stored as the converter stores it, the frequency divisors in <c>rope_freqs.weight</c>;
/// Loom adds its parameters under <c>loom.rope_scaling.*</c> and Mistral's window as <c>llama.attention.sliding_window</c>
/// (llama.cpp runs the llama architecture without a window).
/// </summary>
public static class LlamaGguf
{
    public const string Architecture = "llama";
    /// <summary>general.architecture of Qwen2 models.</summary>
    public const string Qwen2Architecture = "qwen2";
    /// <summary>The tensor of Llama 3's frequency divisors, [headDim/2] (llama.cpp's freq_factors).</summary>
    public const string RopeFrequenciesTensor = "rope_freqs.weight";
    const string RopeScalingPrefix = "loom.rope_scaling.";

    /// <summary>general.architecture for a config: qwen2 for Qwen2, llama for Llama, SmolLM2 and Mistral.</summary>
    public static string ArchitectureOf(LlamaConfig config) => config.ModelType == LlamaConfig.Qwen2Type ? Qwen2Architecture : Architecture;

    /// <summary>general.file_type values (llama_ftype) for the weight types Loom writes.</summary>
    static int FileType(GgmlType type) => type switch { GgmlType.F16 => 1, GgmlType.Q4_0 => 2, GgmlType.Q8_0 => 7, GgmlType.Q4_K => 15, GgmlType.BF16 => 32, _ => 0 };

    /// <summary>Hugging Face tensor name → GGUF tensor name; null for a name the llama mapping does not know.</summary>
    public static string? ToGgufName(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        const string prefix = "model.layers.";
        if (!hfName.StartsWith(prefix, StringComparison.Ordinal))
            return null;
        int dot = hfName.IndexOf('.', prefix.Length);
        if (dot < 0 || !int.TryParse(hfName.AsSpan(prefix.Length, dot - prefix.Length), out int layer) || layer < 0)
            return null;
        string part = hfName[(dot + 1)..] switch
        {
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "self_attn.q_proj.bias" => "attn_q.bias",
            "self_attn.k_proj.bias" => "attn_k.bias",
            "self_attn.v_proj.bias" => "attn_v.bias",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.down_proj.weight" => "ffn_down.weight",
            "input_layernorm.weight" => "attn_norm.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            _ => "",
        };
        return part.Length == 0 ? null : $"blk.{layer}.{part}";
    }

    /// <summary>The Hugging Face names and row-major shapes of every tensor a config needs, in checkpoint order.</summary>
    public static IEnumerable<(string Name, int[] Shape)> ExpectedTensors(LlamaConfig config)
    {
        int headDim = config.HeadDim;
        yield return ("model.embed_tokens.weight", [config.VocabSize, config.Dim]);
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            yield return (p + "input_layernorm.weight", [config.Dim]);
            yield return (p + "self_attn.q_proj.weight", [config.Heads * headDim, config.Dim]);
            if (config.AttentionBias) yield return (p + "self_attn.q_proj.bias", [config.Heads * headDim]);
            yield return (p + "self_attn.k_proj.weight", [config.KvHeads * headDim, config.Dim]);
            if (config.AttentionBias) yield return (p + "self_attn.k_proj.bias", [config.KvHeads * headDim]);
            yield return (p + "self_attn.v_proj.weight", [config.KvHeads * headDim, config.Dim]);
            if (config.AttentionBias) yield return (p + "self_attn.v_proj.bias", [config.KvHeads * headDim]);
            yield return (p + "self_attn.o_proj.weight", [config.Dim, config.Heads * headDim]);
            yield return (p + "post_attention_layernorm.weight", [config.Dim]);
            yield return (p + "mlp.gate_proj.weight", [config.HiddenDim, config.Dim]);
            yield return (p + "mlp.up_proj.weight", [config.HiddenDim, config.Dim]);
            yield return (p + "mlp.down_proj.weight", [config.Dim, config.HiddenDim]);
        }
        yield return ("model.norm.weight", [config.Dim]);
        if (!config.TiedEmbeddings)
            yield return ("lm_head.weight", [config.VocabSize, config.Dim]);
    }

    /// <summary>
    /// Writes a llama or qwen2 GGUF. <paramref name="tensors"/> are looked up by Hugging Face name; weight
    /// matrices are stored as <paramref name="type"/>, norms (1-D) always as F32, and a quantised
    /// matrix whose rows are not a multiple of the block size falls back to Q4_0 (Q4_K with rows of whole
    /// 32-blocks, as llama.cpp's quantizer falls back to a 32-block type) or else to F16.
    /// </summary>
    public static void Write(string path, LlamaConfig config, IReadOnlyDictionary<string, Tensor> tensors, GgufVocabulary? vocabulary,
        GgmlType type = GgmlType.F32, string? name = null)
    {
        config.Validate();
        if (vocabulary is not null && vocabulary.Tokens.Length != config.VocabSize)
            throw new ArgumentException($"the tokenizer has {vocabulary.Tokens.Length} tokens, the model's vocabulary is {config.VocabSize}");
        // llama.cpp takes a missing BOS or EOS id of a "gpt2" vocabulary to be 11 and fails to load a smaller one.
        if (vocabulary is not null && vocabulary.Tokens.Length <= 11 && (vocabulary.BosId is null || vocabulary.EosId is null))
            throw new ArgumentException($"a vocabulary of {vocabulary.Tokens.Length} tokens needs explicit BOS and EOS ids for llama.cpp");
        string architecture = ArchitectureOf(config);
        if (config.RopeScaling is not null && architecture != Architecture)
            throw new ArgumentException($"RopeScaling is written for general.architecture '{Architecture}' only, this config's ModelType is '{config.ModelType}'");
        var writer = new GgufWriter();
        writer.Set("general.architecture", GgufValue.String(architecture));
        writer.Set("general.name", GgufValue.String(name ?? "loom"));
        writer.Set("general.file_type", GgufValue.UInt32((uint)FileType(type)));
        writer.Set("general.quantization_version", GgufValue.UInt32(2));
        writer.Set($"{architecture}.vocab_size", GgufValue.UInt32((uint)config.VocabSize));
        writer.Set($"{architecture}.context_length", GgufValue.UInt32((uint)config.MaxSeq));
        writer.Set($"{architecture}.embedding_length", GgufValue.UInt32((uint)config.Dim));
        writer.Set($"{architecture}.block_count", GgufValue.UInt32((uint)config.Layers));
        writer.Set($"{architecture}.feed_forward_length", GgufValue.UInt32((uint)config.HiddenDim));
        writer.Set($"{architecture}.attention.head_count", GgufValue.UInt32((uint)config.Heads));
        writer.Set($"{architecture}.attention.head_count_kv", GgufValue.UInt32((uint)config.KvHeads));
        writer.Set($"{architecture}.rope.freq_base", GgufValue.Float32(config.RopeTheta));
        writer.Set($"{architecture}.attention.layer_norm_rms_epsilon", GgufValue.Float32(config.NormEps));
        writer.Set($"{architecture}.rope.dimension_count", GgufValue.UInt32((uint)config.HeadDim));
        if (config.HeadDim * config.Heads != config.Dim)
        {
            writer.Set($"{architecture}.attention.key_length", GgufValue.UInt32((uint)config.HeadDim));
            writer.Set($"{architecture}.attention.value_length", GgufValue.UInt32((uint)config.HeadDim));
        }
        if (config.SlidingWindow is int window)
            writer.Set($"{architecture}.attention.sliding_window", GgufValue.UInt32((uint)window));
        if (config.RopeScaling is RopeScaling scaling)
        {
            writer.Set(RopeScalingPrefix + "factor", GgufValue.Float32((float)scaling.Factor));
            writer.Set(RopeScalingPrefix + "low_freq_factor", GgufValue.Float32((float)scaling.LowFreqFactor));
            writer.Set(RopeScalingPrefix + "high_freq_factor", GgufValue.Float32((float)scaling.HighFreqFactor));
            writer.Set(RopeScalingPrefix + "original_max_position_embeddings", GgufValue.UInt32((uint)scaling.OriginalMaxPositionEmbeddings));
        }
        if (vocabulary is not null)
            vocabulary.WriteTo(writer);
        else
            writer.Set(GgufVocabulary.ModelKey, GgufValue.String(GgufVocabulary.NoVocabulary)); // llama.cpp then runs on token ids alone

        foreach (var (hfName, shape) in ExpectedTensors(config))
        {
            if (!tensors.TryGetValue(hfName, out var tensor))
                throw new ArgumentException($"missing tensor '{hfName}'");
            if (!tensor.Shape.SequenceEqual(shape))
                throw new ArgumentException($"tensor '{hfName}' has shape [{string.Join(", ", tensor.Shape.ToArray())}], the config needs [{string.Join(", ", shape)}]");
            string ggufName = ToGgufName(hfName)!;
            ReadOnlySpan<float> values = tensor.Span;
            if (architecture == Architecture && hfName.EndsWith("q_proj.weight", StringComparison.Ordinal))
                values = PermuteToInterleaved(values, config.Heads, config.HeadDim, config.Dim);
            else if (architecture == Architecture && hfName.EndsWith("k_proj.weight", StringComparison.Ordinal))
                values = PermuteToInterleaved(values, config.KvHeads, config.HeadDim, config.Dim);
            // Rows that are not whole Q4_K super-blocks (SmolLM2's 576, Qwen2.5's 896) take Q4_0, as many bits a weight.
            var fallback = type == GgmlType.Q4_K && shape[^1] % GgmlTypes.BlockSize(GgmlType.Q4_0) == 0 ? GgmlType.Q4_0 : GgmlType.F16;
            var storedType = shape.Length == 1 ? GgmlType.F32
                : shape[^1] % GgmlTypes.BlockSize(type) != 0 ? fallback
                : type;
            writer.AddTensor(ggufName, shape, values, storedType);
        }
        if (config.RopeFrequencyDivisors() is float[] divisors)
            writer.AddTensor(RopeFrequenciesTensor, [divisors.Length], divisors, GgmlType.F32);
        writer.Write(path);
    }

    /// <summary>Writes a Loom model (and its tokenizer, when given) as a llama or qwen2 GGUF.</summary>
    public static void Export(string path, Transformer model, ITokenizer? tokenizer, GgmlType type = GgmlType.F32, string? name = null)
    {
        var tensors = model.Parameters.ToDictionary(p => p.Name!, StringComparer.Ordinal);
        var vocabulary = tokenizer is null ? null : GgufVocabulary.FromTokenizer(tokenizer);
        var config = model.Config;
        if (vocabulary is not null)
            vocabulary = vocabulary with { BosId = vocabulary.BosId ?? NullIfNegative(config.BosId), EosId = vocabulary.EosId ?? NullIfNegative(config.EosId) };
        Write(path, config, tensors, vocabulary, type, name);
    }

    /// <summary>Reads a llama or qwen2 GGUF as a Loom model and, when the file has one, its tokenizer.</summary>
    public static (Transformer Model, ITokenizer? Tokenizer) Import(string path)
    {
        var file = Read(path);
        ITokenizer? tokenizer = null;
        if (file.Vocabulary is not null)
        {
            try
            {
                tokenizer = file.Vocabulary.ToTokenizer();
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException or ArgumentException)
            {
                throw new GgufException($"{path}: tokenizer: {e.Message}");
            }
        }
        return (Transformer.FromTensors(file.Config, file.Tensors, path), tokenizer);
    }

    static int? NullIfNegative(int id) => id >= 0 ? id : null;

    /// <summary>Reads a llama or qwen2 GGUF back into Hugging Face-named float32 tensors (quantised weights are expanded).</summary>
    public static LlamaGgufModel Read(string path)
    {
        using var reader = GgufReader.Open(path);
        var config = ReadConfig(reader);
        string architecture = ArchitectureOf(config);
        // Nine tensors per block at least: a block count the file cannot hold is refused before the expected names are listed.
        if (config.Layers > reader.Tensors.Count / 9)
            throw reader.Error($"'{architecture}.block_count' {config.Layers} needs {9L * config.Layers} block tensors, the file has {reader.Tensors.Count} tensors in all");
        var expected = ExpectedTensors(config).ToList();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (hfName, shape) in expected)
        {
            string ggufName = ToGgufName(hfName)!;
            var info = reader.Tensor(ggufName);
            if (!info.Shape.SequenceEqual(shape))
                throw reader.Error($"tensor '{ggufName}' has shape {info.ShapeText}, the metadata (dim {config.Dim}, heads {config.Heads}, kv heads {config.KvHeads}, hidden {config.HiddenDim}, vocab {config.VocabSize}) needs [{string.Join(", ", shape)}]");
            float[] values;
            try
            {
                values = reader.ReadFloats(info);
            }
            catch (NotSupportedException e)
            {
                throw reader.Error(e.Message);
            }
            if (architecture == Architecture && hfName.EndsWith("q_proj.weight", StringComparison.Ordinal))
                values = PermuteToHalves(values, config.Heads, config.HeadDim, config.Dim);
            else if (architecture == Architecture && hfName.EndsWith("k_proj.weight", StringComparison.Ordinal))
                values = PermuteToHalves(values, config.KvHeads, config.HeadDim, config.Dim);
            var tensor = Tensor.From(values, shape);
            tensor.Name = hfName;
            tensors[hfName] = tensor;
        }
        string? name = reader.Find("general.name")?.Value as string;
        return new LlamaGgufModel(config, tensors, GgufVocabulary.Read(reader), name);
    }

    /// <summary>
    /// Reads and checks the llama or qwen2 hyperparameters; tied embeddings when the file has no output.weight; Llama 3's
    /// rope scaling from rope_freqs.weight; Mistral (model_type mistral) when a llama file has a sliding window.
    /// </summary>
    public static LlamaConfig ReadConfig(GgufReader reader)
    {
        string architecture = reader.Contains("general.architecture") ? reader.GetString("general.architecture") : "(none)";
        if (architecture is not (Architecture or Qwen2Architecture))
            throw reader.Error($"unknown architecture '{architecture}' in 'general.architecture' (Loom reads '{Architecture}' and '{Qwen2Architecture}')");
        string a = architecture;
        int Int(string key, int min = 1) => (int)reader.GetInt(key, min, int.MaxValue);
        int dim = Int($"{a}.embedding_length");
        int heads = Int($"{a}.attention.head_count");
        int kvHeads = reader.Contains($"{a}.attention.head_count_kv") ? Int($"{a}.attention.head_count_kv") : heads;
        int vocab = reader.Contains($"{a}.vocab_size") ? Int($"{a}.vocab_size")
            : reader.Contains(GgufVocabulary.TokensKey) ? reader.GetArray<string>(GgufVocabulary.TokensKey).Length
            : reader.Tensor("token_embd.weight").Shape[0];
        int TokenId(string key) => reader.Contains(key) ? (int)reader.GetInt(key, 0, vocab - 1) : -1;
        int? slidingWindow = reader.Contains($"{a}.attention.sliding_window") ? Int($"{a}.attention.sliding_window") : null;
        if (slidingWindow is not null && a != Architecture)
            throw reader.Error($"'{a}.attention.sliding_window' is not supported for architecture '{a}'");
        var config = new LlamaConfig
        {
            ModelType = a == Qwen2Architecture ? LlamaConfig.Qwen2Type : slidingWindow is null ? LlamaConfig.LlamaType : LlamaConfig.MistralType,
            SlidingWindow = slidingWindow,
            VocabSize = vocab,
            Dim = dim,
            Layers = Int($"{a}.block_count"),
            Heads = heads,
            KvHeads = kvHeads,
            HiddenDim = Int($"{a}.feed_forward_length"),
            MaxSeq = Int($"{a}.context_length"),
            RopeTheta = reader.Contains($"{a}.rope.freq_base") ? (float)reader.GetFloat($"{a}.rope.freq_base") : 10000f,
            NormEps = (float)reader.GetFloat($"{a}.attention.layer_norm_rms_epsilon"),
            TiedEmbeddings = !reader.HasTensor("output.weight"),
            BosId = TokenId(GgufVocabulary.BosKey),
            EosId = TokenId(GgufVocabulary.EosKey),
        };
        if (reader.Contains($"{a}.attention.key_length"))
        {
            int keyLength = Int($"{a}.attention.key_length");
            if (reader.Contains($"{a}.attention.value_length") && reader.GetInt($"{a}.attention.value_length") != keyLength)
                throw reader.Error($"'{a}.attention.value_length' {reader.GetInt($"{a}.attention.value_length")} differs from '{a}.attention.key_length' {keyLength}");
            if (keyLength * heads != dim) config = config with { HeadDim = keyLength };
        }
        else if (dim % heads != 0)
            throw reader.Error($"'{a}.embedding_length' {dim} is not a multiple of '{a}.attention.head_count' {heads}");
        if (heads % kvHeads != 0)
            throw reader.Error($"'{a}.attention.head_count' {heads} is not a multiple of '{a}.attention.head_count_kv' {kvHeads}");
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw reader.Error(e.Message);
        }
        if (reader.Contains($"{a}.rope.dimension_count") && reader.GetInt($"{a}.rope.dimension_count") != config.HeadDim)
            throw reader.Error($"'{a}.rope.dimension_count' {reader.GetInt($"{a}.rope.dimension_count")} differs from the head size {config.HeadDim} (partial RoPE is not supported)");
        var vocabulary = reader.Find(GgufVocabulary.TokensKey);
        if (vocabulary is not null && vocabulary.IsArray && vocabulary.Count != vocab)
            throw reader.Error($"'{GgufVocabulary.TokensKey}' has {vocabulary.Count} tokens, '{a}.vocab_size' is {vocab}");
        if (reader.HasTensor(RopeFrequenciesTensor))
            config = config with { RopeScaling = ReadRopeScaling(reader, config) };
        return config;
    }

    /// <summary>
    /// Llama 3's rope scaling of a file with rope_freqs.weight: from Loom's loom.rope_scaling.* keys, or, for a file from
    /// llama.cpp's converter (which keeps only the divisors), the parameters every Llama 3.x uses (low 1, high 4, original
    /// context 8192) with the largest divisor as the factor. Either way the divisors they give must be the file's.
    /// </summary>
    static RopeScaling ReadRopeScaling(GgufReader reader, LlamaConfig config)
    {
        if (ArchitectureOf(config) != Architecture)
            throw reader.Error($"tensor '{RopeFrequenciesTensor}' is not supported for architecture '{ArchitectureOf(config)}'");
        var info = reader.Tensor(RopeFrequenciesTensor);
        if (!info.Shape.SequenceEqual([config.HeadDim / 2]))
            throw reader.Error($"tensor '{RopeFrequenciesTensor}' has shape {info.ShapeText}, the head size {config.HeadDim} needs [{config.HeadDim / 2}]");
        float[] divisors = reader.ReadFloats(info);
        RopeScaling scaling;
        if (reader.Contains(RopeScalingPrefix + "factor"))
        {
            double Number(string key) => reader.Contains(RopeScalingPrefix + key) ? reader.GetFloat(RopeScalingPrefix + key) : throw reader.Error($"missing metadata key '{RopeScalingPrefix}{key}'");
            scaling = new RopeScaling(Number("factor"), Number("low_freq_factor"), Number("high_freq_factor"),
                (int)reader.GetInt(RopeScalingPrefix + "original_max_position_embeddings", 1, int.MaxValue));
        }
        else
        {
            scaling = new RopeScaling(divisors.Max(), 1, 4, 8192);
        }
        try { scaling.Validate(); }
        catch (ArgumentException e) { throw reader.Error(e.Message); }
        var expected = scaling.FrequencyDivisors(config.HeadDim, config.RopeTheta);
        for (int i = 0; i < divisors.Length; i++)
            if (!(Math.Abs(divisors[i] - expected[i]) <= 1e-5f * expected[i]))
                throw reader.Error($"tensor '{RopeFrequenciesTensor}' value {i} is {divisors[i]}, Llama 3's rope scaling (factor {scaling.Factor}, low_freq_factor {scaling.LowFreqFactor}, " +
                    $"high_freq_factor {scaling.HighFreqFactor}, original context {scaling.OriginalMaxPositionEmbeddings}) gives {expected[i]}");
        return scaling;
    }

    /// <summary>
    /// Rows of a q or k projection [heads * headDim, columns] from Hugging Face's layout (per head:
    /// rows i and i + headDim/2 form a rotary pair) to llama.cpp's (rows 2i and 2i+1 form the pair):
    /// new row h*headDim + 2j + half = old row h*headDim + half*headDim/2 + j.
    /// </summary>
    public static float[] PermuteToInterleaved(ReadOnlySpan<float> weight, int heads, int headDim, int columns) =>
        Permute(weight, heads, headDim, columns, toInterleaved: true);

    /// <summary>The inverse of <see cref="PermuteToInterleaved"/>.</summary>
    public static float[] PermuteToHalves(ReadOnlySpan<float> weight, int heads, int headDim, int columns) =>
        Permute(weight, heads, headDim, columns, toInterleaved: false);

    /// <summary>The row permutation of <see cref="PermuteToInterleaved"/> or its inverse over rows of any element type
    /// (float values, or the raw bytes of quantised rows: <paramref name="columns"/> elements a row).</summary>
    internal static T[] Permute<T>(ReadOnlySpan<T> weight, int heads, int headDim, int columns, bool toInterleaved)
    {
        if (weight.Length != heads * headDim * columns)
            throw new ArgumentException($"{weight.Length} values are not [{heads} * {headDim}, {columns}]", nameof(weight));
        var result = new T[weight.Length]; // [heads * headDim, columns]
        int halfDim = headDim / 2;
        for (int h = 0; h < heads; h++)
        for (int half = 0; half < 2; half++)
        for (int j = 0; j < halfDim; j++)
        {
            int halvesRow = h * headDim + half * halfDim + j;
            int interleavedRow = h * headDim + 2 * j + half;
            int from = toInterleaved ? halvesRow : interleavedRow;
            int to = toInterleaved ? interleavedRow : halvesRow;
            weight.Slice(from * columns, columns).CopyTo(result.AsSpan(to * columns, columns));
        }
        return result;
    }

}
