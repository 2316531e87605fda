using System.Buffers;
using System.Globalization;
using System.Text;

namespace Loom.Text;

/// <summary>A stretch of text on its way to the model, and whether it begins the text given to Encode.</summary>
internal readonly record struct TextPiece(string Text, bool AtStart);

/// <summary>What a split does with the matches of its pattern (Hugging Face's <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>Where Metaspace puts its replacement character in front of a piece.</summary>
internal enum PrependScheme
{
    Always,
    First,
    Never,
}

/// <summary>
/// A <c>tokenizer.json</c> pre-tokenizer: cuts a piece of text into the words the model encodes one
/// at a time. Each step follows the Hugging Face tokenizers implementation of the same name.
/// </summary>
internal abstract class PreTokenizerStep
{
    public abstract void Split(TextPiece piece, List<TextPiece> output);

    /// <summary>Steps applied in order, each to every piece the previous one made.</summary>
    public sealed class Sequence(IReadOnlyList<PreTokenizerStep> steps) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            List<TextPiece> pieces = [piece];
            foreach (var step in steps)
            {
                var next = new List<TextPiece>(pieces.Count * 2);
                foreach (var current in pieces)
                {
                    step.Split(current, next);
                }
                pieces = next;
            }
            output.AddRange(pieces);
        }
    }

    /// <summary>Splits at the matches of a regex (Llama 3 and Qwen2 put their patterns here).</summary>
    public sealed class RegexSplit(CodePointRegex pattern, SplitBehavior behavior, bool invert) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            var matches = new List<(int Start, int End)>();
            pattern.Matches(piece.Text, matches);
            SplitAt(piece, matches, behavior, invert, output);
        }
    }

    /// <summary>Splits at the occurrences of a literal string.</summary>
    public sealed class StringSplit(string pattern, SplitBehavior behavior, bool invert) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            var matches = new List<(int Start, int End)>();
            if (pattern.Length > 0)
            {
                for (var at = piece.Text.IndexOf(pattern, StringComparison.Ordinal); at >= 0; at = piece.Text.IndexOf(pattern, at + pattern.Length, StringComparison.Ordinal))
                {
                    matches.Add((at, at + pattern.Length));
                }
            }
            SplitAt(piece, matches, behavior, invert, output);
        }
    }

    /// <summary>
    /// GPT-2's byte-level step: optionally a space in front, optionally the GPT-2 regex split, then
    /// every piece spelled as its UTF-8 bytes in the byte-level alphabet.
    /// </summary>
    public sealed class ByteLevelStep(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            if (addPrefixSpace && !piece.Text.StartsWith(' '))
            {
                piece = piece with { Text = " " + piece.Text };
            }
            var pieces = new List<TextPiece>();
            if (useRegex)
            {
                var matches = new List<(int Start, int End)>();
                ByteLevelBpeTokenizer.PreTokenizer.Matches(piece.Text, matches);
                SplitAt(piece, matches, SplitBehavior.Isolated, invert: false, pieces);
            }
            else
            {
                pieces.Add(piece);
            }
            foreach (var current in pieces)
            {
                output.Add(current with { Text = ToByteAlphabet(current.Text) });
            }
        }

        public static string ToByteAlphabet(string text)
        {
            var rented = ArrayPool<byte>.Shared.Rent(ByteLevel.MaxByteCount(text.Length));
            var count = ByteLevel.EncodeText(text, rented);
            var spelled = ByteLevel.BytesToTokenString(rented.AsSpan(0, count));
            ArrayPool<byte>.Shared.Return(rented);
            return spelled;
        }
    }

    /// <summary>SentencePiece's word boundary: spaces become the replacement (▁), which may also lead the piece and split it.</summary>
    public sealed class MetaspaceStep(string replacement, PrependScheme scheme, bool split) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            var text = piece.Text.Replace(" ", replacement, StringComparison.Ordinal);
            var prepend = scheme switch
            {
                PrependScheme.Always => !text.StartsWith(replacement, StringComparison.Ordinal),
                PrependScheme.First => piece.AtStart && !text.StartsWith(replacement, StringComparison.Ordinal),
                _ => false,
            };
            if (prepend)
            {
                text = replacement + text;
            }
            piece = piece with { Text = text };
            if (!split)
            {
                output.Add(piece);
                return;
            }
            var matches = new List<(int Start, int End)>();
            for (var at = text.IndexOf(replacement, StringComparison.Ordinal); at >= 0; at = text.IndexOf(replacement, at + replacement.Length, StringComparison.Ordinal))
            {
                matches.Add((at, at + replacement.Length));
            }
            SplitAt(piece, matches, SplitBehavior.MergedWithNext, invert: false, output);
        }
    }

    /// <summary>Numbers apart from other text: each numeric character alone, or runs of them.</summary>
    public sealed class DigitsStep(bool individualDigits) : PreTokenizerStep
    {
        public override void Split(TextPiece piece, List<TextPiece> output)
        {
            var matches = new List<(int Start, int End)>();
            var text = piece.Text;
            for (var i = 0; i < text.Length;)
            {
                var length = Rune.TryGetRuneAt(text, i, out var rune) ? rune.Utf16SequenceLength : 1;
                if (length == 2 || !char.IsSurrogate(text[i]))
                {
                    var category = Rune.GetUnicodeCategory(rune);
                    if (category is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber)
                    {
                        matches.Add((i, i + length));
                    }
                }
                i += length;
            }
            SplitAt(piece, matches, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, invert: false, output);
        }
    }

    /// <summary>
    /// Cuts a piece at the given matches the way Hugging Face's <c>NormalizedString::split</c> does:
    /// the matches and the gaps between them cover the text; the behavior decides which are kept
    /// and which are joined; empty pieces are dropped.
    /// </summary>
    private static void SplitAt(TextPiece piece, List<(int Start, int End)> matches, SplitBehavior behavior, bool invert, List<TextPiece> output)
    {
        var text = piece.Text;
        var segments = new List<(int Start, int End, bool IsMatch)>(matches.Count * 2 + 1);
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            if (previous != start)
            {
                segments.Add((previous, start, invert));
            }
            segments.Add((start, end, !invert));
            previous = end;
        }
        if (previous != text.Length)
        {
            segments.Add((previous, text.Length, invert));
        }
        var kept = new List<(int Start, int End, bool Remove)>(segments.Count);
        var previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                kept.AddRange(segments.Select(segment => (segment.Start, segment.End, false)));
                break;
            case SplitBehavior.Removed:
                kept.AddRange(segments.Select(segment => (segment.Start, segment.End, segment.IsMatch)));
                break;
            case SplitBehavior.Contiguous:
                foreach (var (start, end, isMatch) in segments)
                {
                    if (isMatch == previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, end, false);
                    }
                    else
                    {
                        kept.Add((start, end, false));
                    }
                    previousMatch = isMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var (start, end, isMatch) in segments)
                {
                    if (isMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, end, false);
                    }
                    else
                    {
                        kept.Add((start, end, false));
                    }
                    previousMatch = isMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (var i = segments.Count - 1; i >= 0; i--)
                {
                    var (start, end, isMatch) = segments[i];
                    if (isMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (start, kept[^1].End, false);
                    }
                    else
                    {
                        kept.Add((start, end, false));
                    }
                    previousMatch = isMatch;
                }
                kept.Reverse();
                break;
        }
        foreach (var (start, end, remove) in kept)
        {
            if (!remove && end > start)
            {
                output.Add(new TextPiece(text[start..end], piece.AtStart && start == 0));
            }
        }
    }
}
