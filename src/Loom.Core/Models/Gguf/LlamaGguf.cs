using Loom.Tensors;
using Loom.Text;

namespace Loom.Models.Gguf;

/// <summary>A llama model read from GGUF: config, Hugging Face-named float32 tensors, and the tokenizer if the file has one.</summary>
public sealed record LlamaGgufModel(LlamaConfig Config, IReadOnlyDictionary<string, Tensor> Tensors, GgufVocabulary? Vocabulary, string? Name);

/// <summary>
/// Writes and reads Llama models as GGUF the way llama.cpp's Hugging Face converter does:
/// <c>general.architecture = llama</c>, <c>llama.*</c> hyperparameters, tensors renamed
/// (<c>model.layers.N.self_attn.q_proj.weight</c> ↔ <c>blk.N.attn_q.weight</c>, ...), and the rows of
/// q and k permuted per head from Hugging Face's rotate-half RoPE layout (the first half of a
/// head's rows rotates with the second half) to llama.cpp's interleaved layout (rows 2i and
/// 2i+1 rotate together). Import applies the inverse permutation.
/// </summary>
public static class LlamaGguf
{
    public const string Architecture = "llama";

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
            "self_attn.q_proj.weight" => "attn_q",
            "self_attn.k_proj.weight" => "attn_k",
            "self_attn.v_proj.weight" => "attn_v",
            "self_attn.o_proj.weight" => "attn_output",
            "mlp.gate_proj.weight" => "ffn_gate",
            "mlp.up_proj.weight" => "ffn_up",
            "mlp.down_proj.weight" => "ffn_down",
            "input_layernorm.weight" => "attn_norm",
            "post_attention_layernorm.weight" => "ffn_norm",
            _ => "",
        };
        return part.Length == 0 ? null : $"blk.{layer}.{part}.weight";
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
            yield return (p + "self_attn.k_proj.weight", [config.KvHeads * headDim, config.Dim]);
            yield return (p + "self_attn.v_proj.weight", [config.KvHeads * headDim, config.Dim]);
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
    /// Writes a llama GGUF. <paramref name="tensors"/> are looked up by Hugging Face name; weight
    /// matrices are stored as <paramref name="type"/>, norms (1-D) always as F32, and a quantised
    /// matrix whose rows are not a multiple of the block size falls back to F16 (as llama.cpp's converter does).
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
        var writer = new GgufWriter();
        writer.Set("general.architecture", GgufValue.String(Architecture));
        writer.Set("general.name", GgufValue.String(name ?? "loom"));
        writer.Set("general.file_type", GgufValue.UInt32((uint)FileType(type)));
        writer.Set("general.quantization_version", GgufValue.UInt32(2));
        writer.Set("llama.vocab_size", GgufValue.UInt32((uint)config.VocabSize));
        writer.Set("llama.context_length", GgufValue.UInt32((uint)config.MaxSeq));
        writer.Set("llama.embedding_length", GgufValue.UInt32((uint)config.Dim));
        writer.Set("llama.block_count", GgufValue.UInt32((uint)config.Layers));
        writer.Set("llama.feed_forward_length", GgufValue.UInt32((uint)config.HiddenDim));
        writer.Set("llama.attention.head_count", GgufValue.UInt32((uint)config.Heads));
        writer.Set("llama.attention.head_count_kv", GgufValue.UInt32((uint)config.KvHeads));
        writer.Set("llama.rope.freq_base", GgufValue.Float32(config.RopeTheta));
        writer.Set("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(config.NormEps));
        writer.Set("llama.rope.dimension_count", GgufValue.UInt32((uint)config.HeadDim));
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
            if (hfName.EndsWith("q_proj.weight", StringComparison.Ordinal))
                values = PermuteToInterleaved(values, config.Heads, config.HeadDim, config.Dim);
            else if (hfName.EndsWith("k_proj.weight", StringComparison.Ordinal))
                values = PermuteToInterleaved(values, config.KvHeads, config.HeadDim, config.Dim);
            var storedType = shape.Length == 1 ? GgmlType.F32
                : shape[^1] % GgmlTypes.BlockSize(type) != 0 ? GgmlType.F16
                : type;
            writer.AddTensor(ggufName, shape, values, storedType);
        }
        writer.Write(path);
    }

    /// <summary>Writes a Loom model (and its tokenizer, when given) as a llama GGUF.</summary>
    public static void Export(string path, Transformer model, ITokenizer? tokenizer, GgmlType type = GgmlType.F32, string? name = null)
    {
        var tensors = model.Parameters.ToDictionary(p => p.Name!, StringComparer.Ordinal);
        var vocabulary = tokenizer is null ? null : GgufVocabulary.FromTokenizer(tokenizer);
        var config = model.Config;
        if (vocabulary is not null)
            vocabulary = vocabulary with { BosId = vocabulary.BosId ?? NullIfNegative(config.BosId), EosId = vocabulary.EosId ?? NullIfNegative(config.EosId) };
        Write(path, config, tensors, vocabulary, type, name);
    }

    /// <summary>Reads a llama GGUF as a Loom model and, when the file has one, its tokenizer.</summary>
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

    /// <summary>Reads a llama GGUF back into Hugging Face-named float32 tensors (quantised weights are expanded).</summary>
    public static LlamaGgufModel Read(string path)
    {
        using var reader = GgufReader.Open(path);
        var config = ReadConfig(reader);
        // Nine tensors per block: a block count the file cannot hold is refused before the expected names are listed.
        if (config.Layers > reader.Tensors.Count / 9)
            throw reader.Error($"'llama.block_count' {config.Layers} needs {9L * config.Layers} block tensors, the file has {reader.Tensors.Count} tensors in all");
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
            if (hfName.EndsWith("q_proj.weight", StringComparison.Ordinal))
                values = PermuteToHalves(values, config.Heads, config.HeadDim, config.Dim);
            else if (hfName.EndsWith("k_proj.weight", StringComparison.Ordinal))
                values = PermuteToHalves(values, config.KvHeads, config.HeadDim, config.Dim);
            var tensor = Tensor.From(values, shape);
            tensor.Name = hfName;
            tensors[hfName] = tensor;
        }
        string? name = reader.Find("general.name")?.Value as string;
        return new LlamaGgufModel(config, tensors, GgufVocabulary.Read(reader), name);
    }

    /// <summary>Reads and checks the llama hyperparameters; tied embeddings when the file has no output.weight.</summary>
    public static LlamaConfig ReadConfig(GgufReader reader)
    {
        string architecture = reader.Contains("general.architecture") ? reader.GetString("general.architecture") : "(none)";
        if (architecture != Architecture)
            throw reader.Error($"unknown architecture '{architecture}' in 'general.architecture' (Loom reads '{Architecture}')");
        int Int(string key, int min = 1) => (int)reader.GetInt(key, min, int.MaxValue);
        int dim = Int("llama.embedding_length");
        int heads = Int("llama.attention.head_count");
        int kvHeads = reader.Contains("llama.attention.head_count_kv") ? Int("llama.attention.head_count_kv") : heads;
        int vocab = reader.Contains("llama.vocab_size") ? Int("llama.vocab_size")
            : reader.Contains(GgufVocabulary.TokensKey) ? reader.GetArray<string>(GgufVocabulary.TokensKey).Length
            : reader.Tensor("token_embd.weight").Shape[0];
        int TokenId(string key) => reader.Contains(key) ? (int)reader.GetInt(key, 0, vocab - 1) : -1;
        var config = new LlamaConfig
        {
            VocabSize = vocab,
            Dim = dim,
            Layers = Int("llama.block_count"),
            Heads = heads,
            KvHeads = kvHeads,
            HiddenDim = Int("llama.feed_forward_length"),
            MaxSeq = Int("llama.context_length"),
            RopeTheta = reader.Contains("llama.rope.freq_base") ? (float)reader.GetFloat("llama.rope.freq_base") : 10000f,
            NormEps = (float)reader.GetFloat("llama.attention.layer_norm_rms_epsilon"),
            TiedEmbeddings = !reader.HasTensor("output.weight"),
            BosId = TokenId(GgufVocabulary.BosKey),
            EosId = TokenId(GgufVocabulary.EosKey),
        };
        if (dim % heads != 0)
            throw reader.Error($"'llama.embedding_length' {dim} is not a multiple of 'llama.attention.head_count' {heads}");
        if (heads % kvHeads != 0)
            throw reader.Error($"'llama.attention.head_count' {heads} is not a multiple of 'llama.attention.head_count_kv' {kvHeads}");
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw reader.Error(e.Message);
        }
        if (reader.Contains("llama.rope.dimension_count") && reader.GetInt("llama.rope.dimension_count") != config.HeadDim)
            throw reader.Error($"'llama.rope.dimension_count' {reader.GetInt("llama.rope.dimension_count")} differs from the head size {config.HeadDim} (partial RoPE is not supported)");
        if (reader.Contains("llama.attention.key_length") && reader.GetInt("llama.attention.key_length") != config.HeadDim)
            throw reader.Error($"'llama.attention.key_length' {reader.GetInt("llama.attention.key_length")} differs from embedding_length / head_count = {config.HeadDim}");
        var vocabulary = reader.Find(GgufVocabulary.TokensKey);
        if (vocabulary is not null && vocabulary.IsArray && vocabulary.Count != vocab)
            throw reader.Error($"'{GgufVocabulary.TokensKey}' has {vocabulary.Count} tokens, 'llama.vocab_size' is {vocab}");
        return config;
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

    static float[] Permute(ReadOnlySpan<float> weight, int heads, int headDim, int columns, bool toInterleaved)
    {
        if (weight.Length != heads * headDim * columns)
            throw new ArgumentException($"{weight.Length} values are not [{heads} * {headDim}, {columns}]", nameof(weight));
        var result = new float[weight.Length]; // [heads * headDim, columns]
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
