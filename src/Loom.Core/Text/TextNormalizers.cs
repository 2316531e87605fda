using System.Text;

namespace Loom.Text;

/// <summary>
/// A <c>tokenizer.json</c> normalizer: rewrites each stretch of text between added tokens before
/// pre-tokenization (Hugging Face normalizes each stretch on its own, so Llama 2's
/// <c>Prepend("▁")</c> applies again after every special token).
/// </summary>
internal abstract class TextNormalizer
{
    public abstract string Normalize(string text);

    /// <summary>Steps applied in order.</summary>
    public sealed class Sequence(IReadOnlyList<TextNormalizer> steps) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            foreach (var step in steps)
            {
                text = step.Normalize(text);
            }
            return text;
        }
    }

    /// <summary>NFC, NFD, NFKC or NFKD.</summary>
    public sealed class Unicode(NormalizationForm form) : TextNormalizer
    {
        public override string Normalize(string text) => UnicodeNormalizer.Normalize(text, form);
    }

    /// <summary>Puts a string in front of non-empty text (Llama 2's <c>▁</c>).</summary>
    public sealed class Prepend(string prefix) : TextNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    /// <summary>Replaces every occurrence of a literal string, left to right, without overlaps.</summary>
    public sealed class ReplaceString(string pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text) => pattern.Length == 0 ? text : text.Replace(pattern, content, StringComparison.Ordinal);
    }

    /// <summary>Replaces every match of a regex.</summary>
    public sealed class ReplaceRegex(CodePointRegex pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            var matches = new List<(int Start, int End)>();
            pattern.Matches(text, matches);
            if (matches.Count == 0)
            {
                return text;
            }
            var output = new StringBuilder(text.Length);
            var previous = 0;
            foreach (var (start, end) in matches)
            {
                output.Append(text, previous, start - previous).Append(content);
                previous = end;
            }
            return output.Append(text, previous, text.Length - previous).ToString();
        }
    }
}
