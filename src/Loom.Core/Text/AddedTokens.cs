using System.Globalization;
using System.Text;

namespace Loom.Text;

/// <summary>
/// A token of <c>tokenizer.json</c>'s <c>added_tokens</c>: matched in the text before the model sees it.
/// Special tokens are control tokens (skipped when decoding with skipSpecialTokens); <c>Normalized</c>
/// tokens are matched in normalized text; <c>LStrip</c>/<c>RStrip</c> take the whitespace beside them;
/// <c>SingleWord</c> tokens match only between non-word characters.
/// </summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool Normalized = false, bool LStrip = false, bool RStrip = false, bool SingleWord = false);

/// <summary>
/// Finds added tokens in text as Hugging Face's <c>AddedVocabulary::find_matches</c> does: leftmost
/// match first, longest among those starting there, never overlapping, then the single-word and
/// strip rules.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> byFirstChar;

    /// <summary>Matches each token by <paramref name="pattern"/> (its content, or its normalized content).</summary>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        byFirstChar = tokens.Where(entry => entry.Pattern.Length > 0)
            .GroupBy(entry => entry.Pattern[0])
            .ToDictionary(group => group.Key, group => group.OrderByDescending(entry => entry.Pattern.Length).ToArray());
    }

    public bool IsEmpty => byFirstChar.Count == 0;

    /// <summary>
    /// Cuts text into stretches, each either plain text (Token null) or one added token. Special
    /// tokens are matched only when <paramref name="allowSpecial"/> is true; otherwise their text
    /// stays plain (Hugging Face's <c>encode_special_tokens</c>).
    /// </summary>
    public List<(int Start, int End, AddedToken? Token)> Split(string text, bool allowSpecial)
    {
        var splits = new List<(int, int, AddedToken?)>();
        var startOffset = 0;
        var position = 0;
        while (position < text.Length)
        {
            var (matchStart, pattern, token) = FindLeftmostLongest(text, position);
            if (token is null)
            {
                break;
            }
            var start = matchStart;
            var stop = matchStart + pattern!.Length;
            position = stop;
            if (token.Special && !allowSpecial)
            {
                continue;
            }
            if (token.SingleWord)
            {
                var startSpace = start == 0 || !EndsWithWord(text.AsSpan(0, start));
                var stopSpace = stop == text.Length || !StartsWithWord(text.AsSpan(stop));
                if (!startSpace || !stopSpace)
                {
                    continue;
                }
            }
            if (token.LStrip)
            {
                var newStart = start;
                while (newStart > 0 && char.IsWhiteSpace(text[newStart - 1]))
                {
                    newStart--;
                }
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }
            if (startOffset < start)
            {
                splits.Add((startOffset, start, null));
            }
            splits.Add((start, stop, token));
            startOffset = stop;
        }
        if (startOffset < text.Length)
        {
            splits.Add((startOffset, text.Length, null));
        }
        return splits;
    }

    private (int Start, string? Pattern, AddedToken? Token) FindLeftmostLongest(string text, int from)
    {
        for (var i = from; i < text.Length; i++)
        {
            if (!byFirstChar.TryGetValue(text[i], out var candidates))
            {
                continue;
            }
            foreach (var (pattern, token) in candidates)
            {
                if (text.AsSpan(i).StartsWith(pattern, StringComparison.Ordinal))
                {
                    return (i, pattern, token);
                }
            }
        }
        return (-1, null, null);
    }

    // Rust regex's Unicode \w: letters, marks, decimal digits, letter numbers, connector punctuation.
    private static bool IsWord(Rune rune) => Rune.GetUnicodeCategory(rune) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.LetterNumber or UnicodeCategory.ConnectorPunctuation => true,
        _ => false,
    };

    private static bool EndsWithWord(ReadOnlySpan<char> text) =>
        Rune.DecodeLastFromUtf16(text, out var rune, out _) == System.Buffers.OperationStatus.Done && IsWord(rune);

    private static bool StartsWithWord(ReadOnlySpan<char> text) =>
        Rune.DecodeFromUtf16(text, out var rune, out _) == System.Buffers.OperationStatus.Done && IsWord(rune);
}
