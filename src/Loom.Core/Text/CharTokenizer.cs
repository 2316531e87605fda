using System.Text;

namespace Loom.Text;

/// <summary>
/// Character-level tokenizer, as nanoGPT's shakespeare_char: the vocabulary is the sorted distinct
/// Unicode scalar values of the corpus (ids in code-point order), with no special tokens. Invalid
/// UTF-16 (a lone surrogate) counts as U+FFFD. Encoding a character outside the vocabulary throws.
/// Saved as a Hugging Face BPE model with no merges, no pre-tokenizer and a Fuse decoder.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    private readonly string[] idToToken;
    private readonly Dictionary<int, int> runeToId = [];

    /// <summary>Builds the tokenizer from its characters; they are sorted and deduplicated.</summary>
    public CharTokenizer(IEnumerable<Rune> characters)
    {
        var sorted = characters.Select(rune => rune.Value).Distinct().Order().ToArray();
        idToToken = new string[sorted.Length];
        for (var id = 0; id < sorted.Length; id++)
        {
            runeToId[sorted[id]] = id;
            idToToken[id] = char.ConvertFromUtf32(sorted[id]);
        }
    }

    /// <summary>The distinct characters of texts (streamed; only the set is kept).</summary>
    public static CharTokenizer Train(IEnumerable<string> texts)
    {
        var set = new HashSet<Rune>();
        foreach (var text in texts)
        {
            AddCharacters(text, set);
        }
        return new CharTokenizer(set);
    }

    /// <summary>Adds the characters of a stretch of text to a set.</summary>
    public static void AddCharacters(ReadOnlySpan<char> text, HashSet<Rune> set)
    {
        foreach (var rune in text.EnumerateRunes())
        {
            set.Add(rune);
        }
    }

    public int VocabSize => idToToken.Length;

    public int? BosId => null;

    public int? EosId => null;

    public int? PadId => null;

    public int[] Encode(string text, bool allowSpecialTokens = false)
    {
        var ids = new List<int>(text.Length);
        Encode(text, ids, allowSpecialTokens);
        return [.. ids];
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false)
    {
        foreach (var rune in text.EnumerateRunes())
        {
            if (!runeToId.TryGetValue(rune.Value, out var id))
            {
                throw new ArgumentException($"character U+{rune.Value:X4} is not in the character tokenizer's vocabulary of {VocabSize}", nameof(text));
            }
            ids.Add(id);
        }
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var output = new StringBuilder(ids.Length);
        foreach (var id in ids)
        {
            output.Append((uint)id < (uint)idToToken.Length ? idToToken[id] : "\uFFFD");
        }
        return output.ToString();
    }

    public int? TokenToId(string token) =>
        Rune.TryGetRuneAt(token, 0, out var rune) && rune.Utf16SequenceLength == token.Length && runeToId.TryGetValue(rune.Value, out var id) ? id : null;

    public string? IdToToken(int id) => (uint)id < (uint)idToToken.Length ? idToToken[id] : null;

    public bool IsSpecial(int id) => false;

    public byte[] TokenBytes(int id) => (uint)id < (uint)idToToken.Length ? Encoding.UTF8.GetBytes(idToToken[id]) : [];

    public void Save(string directory) => TokenizerJson.WriteChar(this, directory);

    internal IReadOnlyList<string> Tokens => idToToken;
}
