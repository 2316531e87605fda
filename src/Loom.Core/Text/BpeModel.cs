using System.Collections.Concurrent;
using System.Text;

namespace Loom.Text;

/// <summary>Settings of a <c>tokenizer.json</c> BPE model beside its vocabulary and merges; null means the default.</summary>
internal sealed record BpeModelOptions
{
    /// <summary>The token for characters the vocabulary cannot spell (<c>model.unk_token</c>); null drops them.</summary>
    public string? UnknownToken { get; init; }

    /// <summary>Consecutive unknown characters become one unknown token (<c>model.fuse_unk</c>).</summary>
    public bool FuseUnknown { get; init; }

    /// <summary>A character missing from the vocabulary is spelled by its UTF-8 bytes as <c>&lt;0xNN&gt;</c> tokens (<c>model.byte_fallback</c>).</summary>
    public bool ByteFallback { get; init; }

    /// <summary>A word that is itself in the vocabulary is one token, whatever the merges say (<c>model.ignore_merges</c>, Llama 3).</summary>
    public bool IgnoreMerges { get; init; }
}

/// <summary>
/// The BPE model of a <c>tokenizer.json</c>, as Hugging Face tokenizers runs it on one pre-tokenized
/// word: one symbol per character (by byte fallback or the unknown token where the vocabulary has
/// none), then the merges. Byte-level vocabularies reach it already spelled in the byte alphabet.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheLimit = 200_000;
    private const int CacheableLength = 64;

    private readonly Dictionary<string, int> vocabulary;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> vocabularyLookup;
    private readonly Dictionary<int, int> characterIds = []; // code point (or lone surrogate) -> id of the one-character token
    private readonly int[]? byteIds; // byte -> id of <0xNN>, -1 where missing; null without byte fallback
    private readonly int? unknownId;
    private readonly BpeModelOptions options;
    private readonly BpeMerges merges;
    private readonly ConcurrentDictionary<string, int[]> cache = new();

    public BpeModel(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges, BpeModelOptions? options = null)
    {
        this.options = options ?? new BpeModelOptions();
        this.vocabulary = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        vocabularyLookup = this.vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (var (token, id) in vocabulary)
        {
            if (id < 0)
            {
                throw new InvalidDataException($"model.vocab[{TokenizerJson.Quote(token)}]: negative id {id}");
            }
            if (token.Length > 0 && Rune.TryGetRuneAt(token, 0, out var rune) && rune.Utf16SequenceLength == token.Length)
            {
                characterIds[rune.Value] = id;
            }
        }
        if (this.options.ByteFallback)
        {
            byteIds = new int[256];
            for (var b = 0; b < 256; b++)
            {
                byteIds[b] = vocabulary.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
            }
        }
        if (this.options.UnknownToken is { } unknown)
        {
            unknownId = vocabulary.TryGetValue(unknown, out var id) ? id
                : throw new InvalidDataException($"model.unk_token {TokenizerJson.Quote(unknown)} is not in model.vocab");
        }
        var mergeIds = new (int, int, int)[merges.Count];
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocabulary.TryGetValue(left, out var leftId) || !vocabulary.TryGetValue(right, out var rightId)
                || !vocabulary.TryGetValue(left + right, out var mergedId))
            {
                throw new InvalidDataException($"model.merges[{rank}]: {TokenizerJson.Quote(left + " " + right)} uses a token that is not in model.vocab");
            }
            mergeIds[rank] = (leftId, rightId, mergedId);
        }
        this.merges = new BpeMerges(mergeIds, lastWins: true);
    }

    /// <summary>Model tokens by spelling.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => vocabulary;

    /// <summary>Appends the ids of one word.</summary>
    public void Encode(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }
        if (options.IgnoreMerges && vocabularyLookup.TryGetValue(word, out var whole))
        {
            ids.Add(whole);
            return;
        }
        if (word.Length <= CacheableLength && cache.TryGetValue(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var symbols = new List<int>(word.Length);
        (int Id, bool Pending) unknown = default;
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < word.Length;)
        {
            int key;
            int length;
            if (Rune.TryGetRuneAt(word, i, out var rune))
            {
                key = rune.Value;
                length = rune.Utf16SequenceLength;
            }
            else
            {
                key = word[i];
                length = 1;
            }
            if (characterIds.TryGetValue(key, out var id))
            {
                if (unknown.Pending)
                {
                    symbols.Add(unknown.Id);
                    unknown = default;
                }
                symbols.Add(id);
            }
            else if (!TryByteFallback(word.AsSpan(i, length), utf8, symbols) && unknownId is { } unknownToken)
            {
                if (unknown.Pending && !options.FuseUnknown)
                {
                    symbols.Add(unknown.Id);
                }
                unknown = (unknownToken, true);
            }
            i += length;
        }
        if (unknown.Pending)
        {
            symbols.Add(unknown.Id);
        }
        var start = ids.Count;
        merges.Apply(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(symbols), ids);
        if (word.Length <= CacheableLength)
        {
            if (cache.Count >= CacheLimit)
            {
                cache.Clear();
            }
            cache.TryAdd(word, ids.GetRange(start, ids.Count - start).ToArray());
        }
    }

    private bool TryByteFallback(ReadOnlySpan<char> character, Span<byte> utf8, List<int> symbols)
    {
        if (byteIds is null)
        {
            return false;
        }
        var count = ByteLevel.EncodeText(character, utf8);
        for (var b = 0; b < count; b++)
        {
            if (byteIds[utf8[b]] < 0)
            {
                return false;
            }
        }
        for (var b = 0; b < count; b++)
        {
            symbols.Add(byteIds[utf8[b]]);
        }
        return true;
    }
}
