using System.Text;
using Loom.Text;

namespace Loom.Models.Gguf;

/// <summary>llama.cpp's token types (<c>tokenizer.ggml.token_type</c>).</summary>
public enum GgufTokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// A tokenizer as llama.cpp reads it from GGUF metadata (<c>tokenizer.ggml.*</c>). For
/// <c>model = "gpt2"</c> (byte-level BPE) every token is spelled in GPT-2's byte-to-unicode
/// alphabet (a space is "Ġ", a newline "Ċ") and <see cref="Merges"/> are "left right" pairs in
/// rank order. llama.cpp splits text with the regex named by <see cref="Pre"/>, maps its UTF-8
/// bytes to that alphabet, applies the merges, and looks every resulting piece up in
/// <see cref="Tokens"/>.
/// </summary>
/// <param name="Model">tokenizer.ggml.model: "gpt2" for byte-level BPE.</param>
/// <param name="Pre">tokenizer.ggml.pre: the pre-tokenizer regex llama.cpp applies ("gpt-2", "default", "llama-bpe", ...).</param>
public sealed record GgufVocabulary(
    string Model,
    string Pre,
    string[] Tokens,
    int[] TokenTypes,
    string[] Merges,
    int? BosId = null,
    int? EosId = null,
    int? PadId = null,
    int? UnknownId = null,
    bool AddBos = false)
{
    public const string ModelKey = "tokenizer.ggml.model";

    /// <summary>tokenizer.ggml.model of a file without a tokenizer (llama.cpp's "no_vocab").</summary>
    public const string NoVocabulary = "no_vocab";
    public const string PreKey = "tokenizer.ggml.pre";
    public const string TokensKey = "tokenizer.ggml.tokens";
    public const string TokenTypeKey = "tokenizer.ggml.token_type";
    public const string MergesKey = "tokenizer.ggml.merges";
    public const string BosKey = "tokenizer.ggml.bos_token_id";
    public const string EosKey = "tokenizer.ggml.eos_token_id";
    public const string PadKey = "tokenizer.ggml.padding_token_id";
    public const string UnknownKey = "tokenizer.ggml.unknown_token_id";
    public const string AddBosKey = "tokenizer.ggml.add_bos_token";
    public const string AddEosKey = "tokenizer.ggml.add_eos_token";

    /// <summary>
    /// A character-level vocabulary as byte-level BPE that llama.cpp tokenizes exactly like a
    /// character tokenizer: every character of <paramref name="characters"/> (id = index) is one
    /// token spelled in the byte alphabet, and characters that take several UTF-8 bytes get the
    /// merges that join their bytes (and only those: no merge crosses a character boundary, so
    /// pre-tokenization cannot change the result). <paramref name="specialTokens"/> (id → text,
    /// e.g. "&lt;|endoftext|&gt;") become control tokens that plain text never produces.
    /// </summary>
    public static GgufVocabulary FromCharacters(IReadOnlyList<string> characters, IReadOnlyDictionary<int, string>? specialTokens = null,
        int? bosId = null, int? eosId = null, int? padId = null, int? unknownId = null)
    {
        var tokens = new string[characters.Count];
        var types = new int[characters.Count];
        var merges = new List<string>();
        var seenMerges = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < characters.Count; id++)
        {
            if (specialTokens is not null && specialTokens.TryGetValue(id, out var special))
            {
                tokens[id] = special;
                types[id] = (int)GgufTokenType.Control;
                continue;
            }
            string text = characters[id];
            var bytes = Encoding.UTF8.GetBytes(text);
            if (bytes.Length == 0)
                throw new ArgumentException($"character token {id} is empty", nameof(characters));
            tokens[id] = ByteLevel.BytesToTokenString(bytes);
            types[id] = (int)GgufTokenType.Normal;
            string left = ByteLevel.BytesToTokenString(bytes.AsSpan(0, 1));
            for (int b = 1; b < bytes.Length; b++)
            {
                string right = ByteLevel.BytesToTokenString(bytes.AsSpan(b, 1));
                string merge = $"{left} {right}";
                if (seenMerges.Add(merge))
                    merges.Add(merge);
                left += right;
            }
        }
        return new GgufVocabulary("gpt2", "gpt-2", tokens, types, merges.ToArray(), bosId, eosId, padId, unknownId);
    }

    /// <summary>
    /// Loom's tokenizer as llama.cpp reads it: a <see cref="CharTokenizer"/> through
    /// <see cref="FromCharacters"/>; a <see cref="ByteLevelBpeTokenizer"/> as "gpt2" with its
    /// vocabulary, merges and special tokens (control type) and the "gpt-2" pre-tokenizer, whose
    /// regex is the one Loom splits with.
    /// </summary>
    public static GgufVocabulary FromTokenizer(ITokenizer tokenizer)
    {
        switch (tokenizer)
        {
            case CharTokenizer chars:
                return FromCharacters(Enumerable.Range(0, chars.VocabSize).Select(id => chars.IdToToken(id)!).ToList());
            case ByteLevelBpeTokenizer bpe:
            {
                var tokens = new string[bpe.VocabSize];
                var types = new int[bpe.VocabSize];
                for (int id = 0; id < tokens.Length; id++)
                {
                    tokens[id] = bpe.IdToToken(id)!;
                    types[id] = (int)(bpe.IsSpecial(id) ? GgufTokenType.Control : GgufTokenType.Normal);
                }
                var merges = bpe.Merges.Select(m => $"{tokens[m.Left]} {tokens[m.Right]}").ToArray();
                return new GgufVocabulary("gpt2", "gpt-2", tokens, types, merges, bpe.BosId, bpe.EosId, bpe.PadId);
            }
            default:
                throw new NotSupportedException($"a {tokenizer.GetType().Name} cannot be written to GGUF (Loom writes character and byte-level BPE tokenizers)");
        }
    }

    /// <summary>
    /// The Loom tokenizer this vocabulary describes: a <see cref="CharTokenizer"/> when every token
    /// is one character and the merges only join characters' bytes (what <see cref="FromCharacters"/>
    /// writes), otherwise a <see cref="ByteLevelBpeTokenizer"/>.
    /// </summary>
    public ITokenizer ToTokenizer()
    {
        if (Model != "gpt2")
            throw new NotSupportedException($"tokenizer model '{Model}' is not supported (Loom reads 'gpt2' byte-level BPE)");
        var specialIds = SpecialIds();
        var decoded = new string?[Tokens.Length];
        bool characters = specialIds.Count == 0;
        var strict = new UTF8Encoding(false, true);
        for (int id = 0; id < Tokens.Length; id++)
        {
            if (specialIds.Contains(id))
                continue;
            var bytes = ByteLevel.TokenStringToBytes(Tokens[id])
                ?? throw new InvalidDataException($"token {id} '{Tokens[id]}' is not spelled in the byte-level alphabet".ReplaceLineEndings(" "));
            try
            {
                decoded[id] = strict.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                decoded[id] = null;
            }
            characters &= decoded[id] is { } text && text.EnumerateRunes().Count() == 1;
        }
        if (characters && FromCharacters(decoded!).Merges.ToHashSet().SetEquals(Merges))
        {
            var chars = new CharTokenizer(decoded.Select(t => System.Text.Rune.GetRuneAt(t!, 0)));
            for (int id = 0; id < Tokens.Length; id++)
                if (chars.IdToToken(id) != decoded[id])
                    throw new InvalidDataException($"character tokens are not in code-point order at id {id}");
            return chars;
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < Tokens.Length; id++)
            (specialIds.Contains(id) ? specials : vocabulary)[Tokens[id]] = id;
        var merges = new List<(string, string)>(Merges.Length);
        foreach (var merge in Merges)
        {
            int space = merge.IndexOf(' ', 1);
            if (space < 0)
                throw new InvalidDataException($"merge '{merge}' is not two tokens separated by a space");
            merges.Add((merge[..space], merge[(space + 1)..]));
        }
        return new ByteLevelBpeTokenizer(vocabulary, merges, specials);
    }

    HashSet<int> SpecialIds() => Enumerable.Range(0, Tokens.Length)
        .Where(id => TokenTypes[id] is (int)GgufTokenType.Control or (int)GgufTokenType.UserDefined or (int)GgufTokenType.Unknown)
        .ToHashSet();

    /// <summary>Writes the tokenizer.ggml.* keys.</summary>
    public void WriteTo(GgufWriter writer)
    {
        if (TokenTypes.Length != Tokens.Length)
            throw new ArgumentException($"{Tokens.Length} tokens but {TokenTypes.Length} token types");
        writer.Set(ModelKey, GgufValue.String(Model));
        writer.Set(PreKey, GgufValue.String(Pre));
        writer.Set(TokensKey, GgufValue.Array(Tokens));
        writer.Set(TokenTypeKey, GgufValue.Array(TokenTypes));
        writer.Set(MergesKey, GgufValue.Array(Merges));
        if (BosId is int bos)
            writer.Set(BosKey, GgufValue.UInt32((uint)bos));
        if (EosId is int eos)
            writer.Set(EosKey, GgufValue.UInt32((uint)eos));
        if (PadId is int pad)
            writer.Set(PadKey, GgufValue.UInt32((uint)pad));
        if (UnknownId is int unknown)
            writer.Set(UnknownKey, GgufValue.UInt32((uint)unknown));
        writer.Set(AddBosKey, GgufValue.Bool(AddBos));
        writer.Set(AddEosKey, GgufValue.Bool(false));
    }

    /// <summary>Reads the tokenizer.ggml.* keys, or null when the file has no tokenizer.</summary>
    public static GgufVocabulary? Read(GgufReader reader)
    {
        if (!reader.Contains(ModelKey))
            return null;
        string model = reader.GetString(ModelKey);
        if (model is NoVocabulary or "none")
            return null;
        string pre = reader.Contains(PreKey) ? reader.GetString(PreKey) : "default";
        var tokens = reader.GetArray<string>(TokensKey);
        var types = reader.Contains(TokenTypeKey) ? reader.GetArray<int>(TokenTypeKey) : Enumerable.Repeat((int)GgufTokenType.Normal, tokens.Length).ToArray();
        if (types.Length != tokens.Length)
            throw reader.Error($"metadata '{TokenTypeKey}' has {types.Length} entries for {tokens.Length} tokens");
        var merges = reader.Contains(MergesKey) ? reader.GetArray<string>(MergesKey) : [];
        int? Id(string key) => reader.Contains(key) ? (int)reader.GetInt(key, 0, tokens.Length - 1) : null;
        bool addBos = reader.Find(AddBosKey) is { Type: GgufValueType.Bool } v && v.AsBool();
        return new GgufVocabulary(model, pre, tokens, types, merges, Id(BosKey), Id(EosKey), Id(PadKey), Id(UnknownKey), addBos);
    }
}
