using System.Globalization;
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
