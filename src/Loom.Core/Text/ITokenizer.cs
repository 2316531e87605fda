namespace Loom.Text;

/// <summary>
/// Turns text into token ids and back. Implementations are immutable after construction and
/// safe to use from several threads at once.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of ids, special tokens included; every id is in [0, VocabSize).</summary>
    int VocabSize { get; }

    /// <summary>Id of the beginning-of-sequence token, or null if the vocabulary has none.</summary>
    int? BosId { get; }

    /// <summary>Id of the end-of-text token (also the document separator in token shards), or null.</summary>
    int? EosId { get; }

    /// <summary>Id of the padding token, or null.</summary>
    int? PadId { get; }

    /// <summary>
    /// Whether the model expects <see cref="BosId"/> in front of every sequence (a Hugging Face
    /// post-processor that adds <c>&lt;s&gt;</c> or <c>&lt;|begin_of_text|&gt;</c>). <see cref="Encode(string, bool)"/>
    /// never adds it; whoever starts a sequence does.
    /// </summary>
    bool AddsBos => false;

    /// <summary>
    /// Encodes text. Special-token strings in the text (such as <c>&lt;|user|&gt;</c>) are plain text
    /// unless <paramref name="allowSpecialTokens"/> is true, so documents cannot inject control tokens.
    /// </summary>
    int[] Encode(string text, bool allowSpecialTokens = false);

    /// <summary>Encodes text, appending the ids to <paramref name="ids"/>.</summary>
    void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false);

    /// <summary>Decodes ids to text; never throws (ids outside the vocabulary decode to U+FFFD).</summary>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false);

    /// <summary>The id of a token given in the vocabulary's own spelling, or null.</summary>
    int? TokenToId(string token);

    /// <summary>The vocabulary's spelling of an id, or null if out of range.</summary>
    string? IdToToken(int id);

    /// <summary>Whether the id is a special (control) token.</summary>
    bool IsSpecial(int id);

    /// <summary>Whether generation ends at this id: the end-of-text token, or the special end-of-turn token <c>&lt;|end|&gt;</c>.</summary>
    bool IsEndOfGeneration(int id) => id == EosId || (IsSpecial(id) && IdToToken(id) == SpecialTokens.End);

    /// <summary>
    /// The bytes (UTF-8, or raw bytes for byte-level vocabularies) that the id adds to decoded text;
    /// empty for special tokens and ids out of range. Constrained decoding matches these against a grammar.
    /// </summary>
    byte[] TokenBytes(int id);

    /// <summary>Writes <c>tokenizer.json</c> (Hugging Face format) into the folder, atomically.</summary>
    void Save(string directory);
}

/// <summary>
/// The special tokens that Loom adds to every byte-level BPE vocabulary it trains, in id order after
/// the merges: <c>&lt;|bos|&gt;</c>, <c>&lt;|endoftext|&gt;</c> (end of text, document separator),
/// <c>&lt;|pad|&gt;</c>, and the chat roles <c>&lt;|system|&gt;</c>, <c>&lt;|user|&gt;</c>,
/// <c>&lt;|assistant|&gt;</c>, <c>&lt;|end|&gt;</c> (end of a chat turn).
/// </summary>
public static class SpecialTokens
{
    public const string Bos = "<|bos|>";
    public const string EndOfText = "<|endoftext|>";
    public const string Pad = "<|pad|>";
    public const string System = "<|system|>";
    public const string User = "<|user|>";
    public const string Assistant = "<|assistant|>";
    public const string End = "<|end|>";

    /// <summary>The default list, in id order.</summary>
    public static IReadOnlyList<string> Default { get; } = [Bos, EndOfText, Pad, System, User, Assistant, End];

    internal static readonly string[] BosNames = [Bos, "<s>", "<|begin_of_text|>"];
    internal static readonly string[] EosNames = [EndOfText, "</s>", "<|end_of_text|>"];
    internal static readonly string[] PadNames = [Pad, "<pad>"];
}

/// <summary>Loading tokenizers from checkpoint folders.</summary>
public static class Tokenizer
{
    /// <summary>The file name inside a checkpoint folder.</summary>
    public const string FileName = "tokenizer.json";

    /// <summary>
    /// Reads <c>tokenizer.json</c> from a folder (or the file itself). Loom's own byte-level BPE (GPT-2
    /// pre-tokenizer, special added tokens only) becomes <see cref="ByteLevelBpeTokenizer"/>; other
    /// byte-level BPE files (Llama 3, Qwen2, SmolLM2) and SentencePiece-style BPE files with byte fallback
    /// (Llama 2, Mistral) become <see cref="HuggingFaceTokenizer"/>; BPE models with no merges and no
    /// pre-tokenizer whose tokens are single characters become <see cref="CharTokenizer"/>.
    /// </summary>
    public static ITokenizer Load(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"{file}: tokenizer file not found", file);
        }
        return TokenizerJson.Read(file);
    }
}
