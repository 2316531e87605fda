using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Loom.Text;

/// <summary>
/// Runs a .NET regex with the code-point semantics of Oniguruma, the engine Hugging Face tokenizers
/// run pre-tokenizer patterns with. .NET matches UTF-16 code units, so a character outside the Basic
/// Multilingual Plane is two surrogates, neither of which is <c>\p{L}</c>: in <c>"😀abc"</c> the Llama 3
/// branch <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> takes the emoji as its optional lead in Oniguruma but
/// cannot in .NET. Text with surrogate pairs is therefore matched in a copy where each pair is one
/// BMP stand-in of the same Unicode general category (so <c>\p{..}</c>, <c>\s</c>, <c>\w</c> and <c>\d</c> classify
/// it alike), and match bounds are mapped back. Literal non-ASCII characters or ranges in a pattern
/// would not see through the stand-ins; the patterns of the model families use none.
/// </summary>
internal sealed class CodePointRegex(Regex regex)
{
    public Regex Regex { get; } = regex;

    /// <summary>
    /// Compiles an Oniguruma pattern for .NET: possessive quantifiers (<c>X?+</c>, <c>X++</c>,
    /// <c>X*+</c>), which .NET lacks, become the atomic groups they mean (<c>(?>X+)</c>). In
    /// Oniguruma's default (Ruby) syntax <c>X{n,m}+</c> is not possessive but repeated: <c>(?:X{n,m})+</c>.
    /// Throws <see cref="ArgumentException"/> where .NET cannot parse the result.
    /// </summary>
    public static CodePointRegex FromOniguruma(string pattern) =>
        new(new Regex(RewritePossessive(pattern), RegexOptions.CultureInvariant | RegexOptions.Compiled));

    internal static string RewritePossessive(string pattern)
    {
        if (!pattern.Contains("?+") && !pattern.Contains("++") && !pattern.Contains("*+") && !pattern.Contains("}+"))
        {
            return pattern;
        }
        var output = new StringBuilder(pattern.Length + 16);
        var i = 0;
        while (i < pattern.Length)
        {
            var atomEnd = AtomEnd(pattern, i);
            var quantifierEnd = QuantifierEnd(pattern, atomEnd);
            var plusFollows = quantifierEnd < pattern.Length && pattern[quantifierEnd] == '+';
            if (plusFollows && quantifierEnd == atomEnd + 1)
            {
                output.Append("(?>").Append(pattern, i, quantifierEnd - i).Append(')');
                i = quantifierEnd + 1;
            }
            else if (plusFollows && quantifierEnd > atomEnd)
            {
                // An interval then +: repeated, which .NET spells with a group.
                output.Append("(?:").Append(pattern, i, quantifierEnd - i).Append(")+");
                i = quantifierEnd + 1;
            }
            else
            {
                output.Append(pattern, i, quantifierEnd - i);
                i = quantifierEnd;
            }
        }
        return output.ToString();
    }

    // The end of the atom starting at `start`: an escape (\p{..} whole), a character class, a group, or one character.
    private static int AtomEnd(string pattern, int start)
    {
        switch (pattern[start])
        {
            case '\\':
                if (start + 2 < pattern.Length && pattern[start + 1] is 'p' or 'P' && pattern[start + 2] == '{')
                {
                    var close = pattern.IndexOf('}', start + 3);
                    return close < 0 ? pattern.Length : close + 1;
                }
                return Math.Min(start + 2, pattern.Length);
            case '[':
                var i = start + 1;
                if (i < pattern.Length && pattern[i] == '^')
                {
                    i++;
                }
                if (i < pattern.Length && pattern[i] == ']')
                {
                    i++;
                }
                var depth = 1;
                for (; i < pattern.Length && depth > 0; i++)
                {
                    if (pattern[i] == '\\')
                    {
                        i++;
                    }
                    else if (pattern[i] == '[')
                    {
                        depth++;
                    }
                    else if (pattern[i] == ']')
                    {
                        depth--;
                    }
                }
                return i;
            case '(':
                var level = 0;
                for (var j = start; j < pattern.Length; j++)
                {
                    if (pattern[j] == '\\')
                    {
                        j++;
                    }
                    else if (pattern[j] == '[')
                    {
                        j = AtomEnd(pattern, j) - 1;
                    }
                    else if (pattern[j] == '(')
                    {
                        level++;
                    }
                    else if (pattern[j] == ')' && --level == 0)
                    {
                        return j + 1;
                    }
                }
                return pattern.Length;
            default:
                return start + 1;
        }
    }

    private static int QuantifierEnd(string pattern, int start)
    {
        if (start >= pattern.Length)
        {
            return start;
        }
        if (pattern[start] is '*' or '+' or '?')
        {
            return start + 1;
        }
        if (pattern[start] == '{')
        {
            var close = pattern.IndexOf('}', start);
            if (close > start && pattern.AsSpan(start + 1, close - start - 1).IndexOfAnyExcept("0123456789,") < 0)
            {
                return close + 1;
            }
        }
        return start;
    }

    /// <summary>Appends the [start, end) bounds (UTF-16 indices into <paramref name="text"/>) of every match, left to right.</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var match in Regex.EnumerateMatches(text))
            {
                matches.Add((match.Index, match.Index + match.Length));
            }
            return;
        }
        var mapped = new char[text.Length];
        var origin = new int[text.Length + 1]; // mapped index -> index in text
        var count = 0;
        for (var i = 0; i < text.Length; i++)
        {
            origin[count] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                mapped[count++] = StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1])));
                i++;
            }
            else
            {
                mapped[count++] = text[i];
            }
        }
        origin[count] = text.Length;
        foreach (var match in Regex.EnumerateMatches(mapped.AsSpan(0, count)))
        {
            matches.Add((origin[match.Index], origin[match.Index + match.Length]));
        }
    }

    // One non-ASCII BMP character per general category, none of which folds to an ASCII letter.
    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0100',
        UnicodeCategory.LowercaseLetter => '\u0101',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.SpaceSeparator => '\u2000',
        UnicodeCategory.LineSeparator => '\u2028',
        UnicodeCategory.ParagraphSeparator => '\u2029',
        UnicodeCategory.Control => '\u0080',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u00A6',
        _ => '\uFFFF', // unassigned (Cn)
    };
}
