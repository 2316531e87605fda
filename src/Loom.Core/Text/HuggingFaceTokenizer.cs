using Loom.IO;
using System.Text;

namespace Loom.Text;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model, run the way the Hugging Face tokenizers
/// library runs it, so ids equal the model's own: added tokens are cut out first, each stretch between
/// them is normalized (NFC, Prepend, Replace), pre-tokenized (Split by the Llama 3 or Qwen2 regex,
/// ByteLevel, Metaspace, Digits) and encoded word by word (byte-level alphabet or byte fallback,
/// ignore_merges, unknown token); decoding runs the file's decoder steps. Covers Llama 3, Qwen2,
/// SmolLM2 (byte-level) and Llama 2, Mistral (SentencePiece-style BPE with byte fallback).
/// <see cref="ITokenizer.Encode(string, bool)"/> never adds the template's BOS; <see cref="AddsBos"/> says
/// whether the model expects one. <see cref="Save"/> writes back the file it was read from.
/// </summary>
public sealed class HuggingFaceTokenizer : ITokenizer
{
    private readonly BpeModel model;
    private readonly string?[] idToToken; // model tokens and added tokens; null in gaps
    private readonly AddedToken?[] addedById;
    private readonly byte[][] idToBytes;
    private readonly Dictionary<string, int> addedByContent;
    private readonly AddedTokenMatcher rawMatcher;
    private readonly AddedTokenMatcher normalizedMatcher;
    private readonly TextNormalizer? normalizer;
    private readonly PreTokenizerStep? preTokenizer;
    private readonly DecoderStep? decoder;
    private readonly byte[] json;

    internal HuggingFaceTokenizer(HuggingFacePipeline pipeline, byte[] json)
    {
        model = pipeline.Model;
        normalizer = pipeline.Normalizer;
        preTokenizer = pipeline.PreTokenizer;
        decoder = pipeline.Decoder;
        this.json = json;
        AddedTokens = pipeline.AddedTokens;
        PrefixIds = pipeline.PrefixIds;
        SuffixIds = pipeline.SuffixIds;
        var count = model.Vocabulary.Count + AddedTokens.Count;
        var largest = Math.Max(model.Vocabulary.Count == 0 ? -1L : model.Vocabulary.Values.Max(), AddedTokens.Count == 0 ? -1L : AddedTokens.Max(token => (long)token.Id));
        if (largest >= count)
        {
            throw new InvalidDataException($"vocabulary: id {largest} is beyond the {count} tokens of model.vocab and added_tokens");
        }
        var size = (int)largest + 1;
        idToToken = new string?[size];
        addedById = new AddedToken?[size];
        foreach (var (token, id) in model.Vocabulary)
        {
            idToToken[id] = token;
        }
        addedByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in AddedTokens)
        {
            if (token.Id < 0)
            {
                throw new InvalidDataException($"added_tokens: {TokenizerJson.Quote(token.Content)} has negative id {token.Id}");
            }
            idToToken[token.Id] = token.Content;
            addedById[token.Id] = token;
            addedByContent[token.Content] = token.Id;
        }
        rawMatcher = new AddedTokenMatcher(AddedTokens.Where(token => !token.Normalized).Select(token => (token.Content, token)));
        normalizedMatcher = new AddedTokenMatcher(AddedTokens.Where(token => token.Normalized)
            .Select(token => (normalizer?.Normalize(token.Content) ?? token.Content, token)));
        idToBytes = new byte[size][];
        for (var id = 0; id < size; id++)
        {
            idToBytes[id] = SpelledBytes(id, pipeline);
        }
        BosId = PrefixIds.Count > 0 ? PrefixIds[0] : FirstAdded(SpecialTokens.BosNames);
        EosId = FirstAdded(SpecialTokens.EosNames);
        PadId = FirstAdded(SpecialTokens.PadNames);
    }

    public int VocabSize => idToToken.Length;

    public int? BosId { get; }

    public int? EosId { get; }

    public int? PadId { get; }

    /// <summary>Whether the file's post-processor puts BOS in front of every sequence (Llama 2, Llama 3, Mistral; not Qwen2).</summary>
    public bool AddsBos => PrefixIds.Count > 0 && PrefixIds[0] == BosId;

    /// <summary>The ids the post-processor (TemplateProcessing) puts before a single sequence.</summary>
    public IReadOnlyList<int> PrefixIds { get; }

    /// <summary>The ids the post-processor puts after a single sequence.</summary>
    public IReadOnlyList<int> SuffixIds { get; }

    /// <summary>The file's added tokens, in file order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public int[] Encode(string text, bool allowSpecialTokens = false)
    {
        var ids = new List<int>(text.Length / 3 + 1);
        Encode(text, ids, allowSpecialTokens);
        return [.. ids];
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false)
    {
        var whole = text.ToString();
        var words = new List<TextPiece>();
        foreach (var (start, end, token) in rawMatcher.Split(whole, allowSpecialTokens))
        {
            if (token is not null)
            {
                ids.Add(token.Id);
                continue;
            }
            var normalized = whole[start..end];
            if (normalizer is not null)
            {
                normalized = normalizer.Normalize(normalized);
            }
            foreach (var (from, to, normalizedToken) in normalizedMatcher.Split(normalized, allowSpecialTokens))
            {
                if (normalizedToken is not null)
                {
                    ids.Add(normalizedToken.Id);
                    continue;
                }
                var piece = new TextPiece(normalized[from..to], start == 0 && from == 0);
                words.Clear();
                if (preTokenizer is null)
                {
                    words.Add(piece);
                }
                else
                {
                    preTokenizer.Split(piece, words);
                }
                foreach (var word in words)
                {
                    model.Encode(word.Text, ids);
                }
            }
        }
    }

    /// <summary>The ids of <paramref name="text"/> inside the post-processor's template (BOS first where the model adds one), as Hugging Face encodes with add_special_tokens.</summary>
    public int[] EncodeWithTemplate(string text, bool allowSpecialTokens = false) => [.. PrefixIds, .. Encode(text, allowSpecialTokens), .. SuffixIds];

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Length);
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)idToToken.Length || idToToken[id] is not { } token)
            {
                tokens.Add("\uFFFD");
            }
            else if (!(skipSpecialTokens && addedById[id] is { Special: true }))
            {
                tokens.Add(token);
            }
        }
        return decoder is null ? string.Join(' ', tokens) : string.Concat(decoder.Decode(tokens));
    }

    public int? TokenToId(string token) => addedByContent.TryGetValue(token, out var id) ? id
        : model.Vocabulary.TryGetValue(token, out id) ? id : null;

    public string? IdToToken(int id) => (uint)id < (uint)idToToken.Length ? idToToken[id] : null;

    public bool IsSpecial(int id) => (uint)id < (uint)addedById.Length && addedById[id] is { Special: true };

    /// <summary>Generation ends at the end-of-text token or a special end-of-turn token (<c>&lt;|eot_id|&gt;</c>, <c>&lt;|eom_id|&gt;</c>, <c>&lt;|im_end|&gt;</c>, <c>&lt;|end|&gt;</c>).</summary>
    public bool IsEndOfGeneration(int id) => id == EosId || (IsSpecial(id) && EndOfTurnNames.Contains(idToToken[id]));

    private static readonly string[] EndOfTurnNames = ["<|eot_id|>", "<|eom_id|>", "<|im_end|>", SpecialTokens.End];

    public byte[] TokenBytes(int id) => (uint)id < (uint)idToBytes.Length ? [.. idToBytes[id]] : [];

    /// <summary>Writes the <c>tokenizer.json</c> this tokenizer was read from, unchanged, atomically.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        AtomicFile.WriteAllBytes(Path.Combine(directory, Tokenizer.FileName), json);
    }

    // The bytes an id adds to decoded text, for constrained decoding: byte-level spellings are bytes;
    // <0xNN> is its byte; SentencePiece pieces are their text with the word mark as a space.
    private byte[] SpelledBytes(int id, HuggingFacePipeline pipeline)
    {
        if (addedById[id] is { } added)
        {
            return added.Special ? [] : Encoding.UTF8.GetBytes(added.Content);
        }
        if (idToToken[id] is not { } token)
        {
            return [];
        }
        if (pipeline.IsByteLevel)
        {
            return ByteLevel.TokenStringToBytes(token) ?? Encoding.UTF8.GetBytes(token);
        }
        if (pipeline.ByteFallback && DecoderStep.ByteFallback.TryParseByte(token, out var value))
        {
            return [value];
        }
        return Encoding.UTF8.GetBytes(pipeline.WordMark is { } mark ? token.Replace(mark, " ", StringComparison.Ordinal) : token);
    }

    private int? FirstAdded(string[] names)
    {
        foreach (var name in names)
        {
            if (addedByContent.TryGetValue(name, out var id))
            {
                return id;
            }
        }
        return null;
    }
}

/// <summary>The parts of a <c>tokenizer.json</c> that <see cref="HuggingFaceTokenizer"/> runs.</summary>
internal sealed record HuggingFacePipeline
{
    public required BpeModel Model { get; init; }

    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }

    public TextNormalizer? Normalizer { get; init; }

    public PreTokenizerStep? PreTokenizer { get; init; }

    public DecoderStep? Decoder { get; init; }

    public IReadOnlyList<int> PrefixIds { get; init; } = [];

    public IReadOnlyList<int> SuffixIds { get; init; } = [];

    /// <summary>Model tokens are spelled in the byte-level alphabet.</summary>
    public bool IsByteLevel { get; init; }

    /// <summary>The model has <c>&lt;0xNN&gt;</c> byte tokens.</summary>
    public bool ByteFallback { get; init; }

    /// <summary>The character that stands for a space inside SentencePiece pieces (▁), if any.</summary>
    public string? WordMark { get; init; }
}
