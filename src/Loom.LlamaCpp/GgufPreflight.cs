using System.Globalization;
using System.Text.RegularExpressions;
using Loom.Models.Gguf;

namespace Loom.LlamaCpp;

/// <summary>
/// Reads a GGUF's header with Loom's own reader before llama.cpp sees the file, and refuses what llama.cpp would abort
/// the process on (a NaN epsilon fails an assertion on the first request), divide by zero with, or allocate without bound
/// for (a trained context of four billion tokens): each architecture field in range, head counts that divide, finite
/// positive epsilons and RoPE base, a vocabulary whose token arrays agree, tensor shapes that match the header numbers,
/// and tensor data inside the file. Every refusal is a <see cref="GgufException"/> of one line naming the file and the key.
/// </summary>
public static partial class GgufPreflight
{
    /// <summary>Most transformer blocks a header may declare.</summary>
    public const int MaxBlocks = 4096;
    /// <summary>Longest trained context a header may declare, in tokens.</summary>
    public const int MaxContextLength = 1 << 20;
    /// <summary>Widest embedding (and feed-forward and head count) a header may declare.</summary>
    public const int MaxWidth = 1 << 20;

    /// <summary>Checks the file and returns its trained context length (<c>ARCH.context_length</c>).</summary>
    public static int Check(string path)
    {
        using var reader = GgufReader.Open(path);
        string arch = reader.GetString("general.architecture");
        string Key(string name) => $"{arch}.{name}";

        int blocks = (int)reader.GetInt(Key("block_count"), 1, MaxBlocks);
        int context = (int)reader.GetInt(Key("context_length"), 1, MaxContextLength);
        int embedding = (int)reader.GetInt(Key("embedding_length"), 1, MaxWidth);
        long[]? feedForward = PerLayer(reader, Key("feed_forward_length"), blocks, 0, MaxWidth);
        long[]? heads = PerLayer(reader, Key("attention.head_count"), blocks, 0, embedding);
        long[]? kvHeads = PerLayer(reader, Key("attention.head_count_kv"), blocks, 0, embedding);
        bool headSizeGiven = reader.Contains(Key("attention.key_length"));
        if (headSizeGiven) reader.GetInt(Key("attention.key_length"), 1, MaxWidth);
        if (reader.Contains(Key("attention.value_length"))) reader.GetInt(Key("attention.value_length"), 1, MaxWidth);
        // A scalar is at least 1 (PerLayer); a 0 in a per-layer array is a layer without attention (hybrid architectures).
        int layers = heads is null ? 0 : Math.Max(heads.Length, kvHeads?.Length ?? 0);
        for (int layer = 0; layer < layers; layer++)
        {
            long h = heads![Math.Min(layer, heads.Length - 1)];
            long kv = kvHeads is null ? h : kvHeads[Math.Min(layer, kvHeads.Length - 1)];
            if (h == 0 || kv == 0) continue;
            if (!headSizeGiven && embedding % h != 0)
                throw reader.Error($"metadata '{Key("attention.head_count")}' = {h} does not divide '{Key("embedding_length")}' = {embedding}");
            if (h % kv != 0)
                throw reader.Error($"metadata '{Key("attention.head_count_kv")}' = {kv} does not divide '{Key("attention.head_count")}' = {h}");
        }
        PositiveFinite(reader, Key("attention.layer_norm_rms_epsilon"));
        PositiveFinite(reader, Key("attention.layer_norm_epsilon"));
        PositiveFinite(reader, Key("rope.freq_base"));
        PositiveFinite(reader, Key("rope.scale_linear"));
        PositiveFinite(reader, Key("rope.freq_scale"));
        if (reader.Contains(Key("rope.dimension_count"))) reader.GetInt(Key("rope.dimension_count"), 0, MaxWidth);

        int? vocabulary = Vocabulary(reader, Key("vocab_size"));
        CheckTensors(reader, blocks, embedding, feedForward is { Length: 1 } ? feedForward[0] : null, vocabulary, Key);
        return context;
    }

    /// <summary>
    /// A per-layer field: one integer for every layer, or an array of one per layer; each in [min, max]. Null when absent.
    /// </summary>
    static long[]? PerLayer(GgufReader reader, string key, int blocks, long min, long max)
    {
        if (reader.Find(key) is not { } value) return null;
        if (!value.IsArray) return [reader.GetInt(key, min == 0 ? 1 : min, max)];
        if (value.Count != blocks)
            throw reader.Error($"metadata '{key}' has {value.Count} values for {blocks} blocks");
        var values = new long[value.Count];
        var elements = (Array)value.Value;
        for (int i = 0; i < values.Length; i++)
        {
            long v;
            try { v = Convert.ToInt64(elements.GetValue(i), CultureInfo.InvariantCulture); }
            catch (Exception e) when (e is InvalidCastException or OverflowException or FormatException)
            {
                throw reader.Error($"metadata '{key}' is an array of {value.ElementType}, expected integers");
            }
            if (v < min || v > max)
                throw reader.Error($"metadata '{key}'[{i}] = {v} is out of range [{min}, {max}]");
            values[i] = v;
        }
        return values;
    }

    static void PositiveFinite(GgufReader reader, string key)
    {
        if (!reader.Contains(key)) return;
        double value = reader.GetFloat(key);
        if (!double.IsFinite(value) || value <= 0)
            throw reader.Error($"metadata '{key}' = {value.ToString(CultureInfo.InvariantCulture)} must be a finite positive number");
    }

    /// <summary>The vocabulary size the token arrays and <paramref name="vocabKey"/> agree on, or null when the file has none.</summary>
    static int? Vocabulary(GgufReader reader, string vocabKey)
    {
        int? tokens = null;
        if (reader.Find(GgufVocabulary.TokensKey) is { } list)
        {
            if (!list.IsArray || list.ElementType != GgufValueType.String)
                throw reader.Error($"metadata '{GgufVocabulary.TokensKey}' must be an array of strings");
            if (list.Count == 0) throw reader.Error($"metadata '{GgufVocabulary.TokensKey}' is empty");
            tokens = list.Count;
            foreach (string key in new[] { "tokenizer.ggml.scores", GgufVocabulary.TokenTypeKey })
                if (reader.Find(key) is { } parallel && (!parallel.IsArray || parallel.Count != tokens))
                    throw reader.Error($"metadata '{key}' has {(parallel.IsArray ? parallel.Count : 1)} values for {tokens} tokens in '{GgufVocabulary.TokensKey}'");
        }
        int? declared = reader.Contains(vocabKey) ? (int)reader.GetInt(vocabKey, 1, int.MaxValue) : null;
        if (tokens is int t && declared is int d && t != d)
            throw reader.Error($"metadata '{vocabKey}' = {d} differs from the {t} tokens of '{GgufVocabulary.TokensKey}'");
        int? size = tokens ?? declared;
        foreach (string key in new[] { GgufVocabulary.BosKey, GgufVocabulary.EosKey, GgufVocabulary.PadKey, GgufVocabulary.UnknownKey, "tokenizer.ggml.seperator_token_id" })
            if (size is int n && reader.Contains(key))
                reader.GetInt(key, 0, n - 1);
        return size;
    }

    /// <summary>Tensors against the header: blocks numbered below the block count, and the widths of the usual tensors.</summary>
    static void CheckTensors(GgufReader reader, int blocks, int embedding, long? feedForward, int? vocabulary, Func<string, string> key)
    {
        foreach (var tensor in reader.Tensors)
        {
            var dims = tensor.Dimensions;
            double elements = dims.Aggregate(1.0, (product, d) => product * d);
            if (elements > reader.FileLength * 32.0)
                throw reader.Error($"tensor '{tensor.Name}' has {elements:G3} elements, more than the file could hold");
            var block = BlockName().Match(tensor.Name);
            string name = block.Success ? block.Groups[2].Value : tensor.Name;
            if (block.Success && int.Parse(block.Groups[1].Value, CultureInfo.InvariantCulture) >= blocks)
                throw reader.Error($"tensor '{tensor.Name}' is past '{key("block_count")}' = {blocks}");
            void Width(int dimension, long expected, string field)
            {
                if (dims.Length > dimension && dims[dimension] != expected)
                    throw reader.Error($"tensor '{tensor.Name}' has {dims[dimension]} in dimension {dimension}, but '{field}' = {expected}");
            }
            switch (name)
            {
                case "token_embd.weight" or "output.weight":
                    Width(0, embedding, key("embedding_length"));
                    if (vocabulary is int v) Width(1, v, reader.Contains(GgufVocabulary.TokensKey) ? GgufVocabulary.TokensKey : key("vocab_size"));
                    break;
                case "output_norm.weight" or "attn_norm.weight" or "ffn_norm.weight" or "attn_q.weight" or "attn_k.weight" or "attn_v.weight":
                    Width(0, embedding, key("embedding_length"));
                    break;
                case "attn_output.weight":
                    Width(1, embedding, key("embedding_length"));
                    break;
                case "ffn_up.weight" or "ffn_gate.weight":
                    Width(0, embedding, key("embedding_length"));
                    if (feedForward is long up) Width(1, up, key("feed_forward_length"));
                    break;
                case "ffn_down.weight":
                    if (feedForward is long down) Width(0, down, key("feed_forward_length"));
                    Width(1, embedding, key("embedding_length"));
                    break;
            }
        }
    }

    [GeneratedRegex(@"^blk\.(\d{1,9})\.(.+)$")]
    private static partial Regex BlockName();
}
