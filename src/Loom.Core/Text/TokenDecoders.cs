using System.Text;

namespace Loom.Text;

/// <summary>
/// A <c>tokenizer.json</c> decoder: turns the spellings of a sequence of tokens into text, one step
/// at a time over the list of strings (Hugging Face's <c>decode_chain</c>); the strings left at the
/// end are joined.
/// </summary>
internal abstract class DecoderStep
{
    public abstract List<string> Decode(List<string> tokens);

    /// <summary>Steps applied in order.</summary>
    public sealed class Sequence(IReadOnlyList<DecoderStep> steps) : DecoderStep
    {
        public override List<string> Decode(List<string> tokens)
        {
            foreach (var step in steps)
            {
                tokens = step.Decode(tokens);
            }
            return tokens;
        }
    }

    /// <summary>
    /// Byte-level spellings back to bytes, then to text (WTF-8, so Loom's lone surrogates round-trip).
    /// A token with a character outside the byte alphabet (an added token such as "a b") adds its own UTF-8.
    /// </summary>
    public sealed class ByteLevelStep : DecoderStep
    {
        public override List<string> Decode(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (var token in tokens)
            {
                if (ByteLevel.TokenStringToBytes(token) is { } spelled)
                {
                    bytes.AddRange(spelled);
                }
                else
                {
                    bytes.AddRange(Encoding.UTF8.GetBytes(token));
                }
            }
            var text = new StringBuilder(bytes.Count);
            ByteLevel.DecodeText(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes), text);
            return [text.ToString()];
        }
    }

    /// <summary>Replaces a literal string in every token (Llama 2: ▁ becomes a space).</summary>
    public sealed class Replace(string pattern, string content) : DecoderStep
    {
        public override List<string> Decode(List<string> tokens) =>
            [.. tokens.Select(token => pattern.Length == 0 ? token : token.Replace(pattern, content, StringComparison.Ordinal))];
    }

    /// <summary>
    /// Runs of <c>&lt;0xNN&gt;</c> tokens become the text their bytes spell, or one U+FFFD per byte
    /// where the bytes are not valid UTF-8.
    /// </summary>
    public sealed class ByteFallback : DecoderStep
    {
        public override List<string> Decode(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            var bytes = new List<byte>();
            foreach (var token in tokens)
            {
                if (TryParseByte(token, out var value))
                {
                    bytes.Add(value);
                    continue;
                }
                Flush();
                output.Add(token);
            }
            Flush();
            return output;

            void Flush()
            {
                if (bytes.Count == 0)
                {
                    return;
                }
                var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
                if (System.Text.Unicode.Utf8.IsValid(span))
                {
                    output.Add(Encoding.UTF8.GetString(span));
                }
                else
                {
                    output.AddRange(Enumerable.Repeat("\uFFFD", bytes.Count));
                }
                bytes.Clear();
            }
        }

        /// <summary>Whether a token is spelled <c>&lt;0xNN&gt;</c> (two hex digits), and its byte.</summary>
        public static bool TryParseByte(string token, out byte value)
        {
            value = 0;
            return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
        }
    }

    /// <summary>All tokens joined into one.</summary>
    public sealed class Fuse : DecoderStep
    {
        public override List<string> Decode(List<string> tokens) => [string.Concat(tokens)];
    }

    /// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from every token.</summary>
    public sealed class Strip(char content, int start, int stop) : DecoderStep
    {
        public override List<string> Decode(List<string> tokens) => [.. tokens.Select(StripOne)];

        private string StripOne(string token)
        {
            var from = 0;
            while (from < start && from < token.Length && token[from] == content)
            {
                from++;
            }
            var to = token.Length;
            while (token.Length - to < stop && to > from && token[to - 1] == content)
            {
                to--;
            }
            return token[from..to];
        }
    }

    /// <summary>The replacement (▁) becomes a space, except in the first token, where it is dropped unless the scheme never prepends.</summary>
    public sealed class Metaspace(string replacement, PrependScheme scheme) : DecoderStep
    {
        public override List<string> Decode(List<string> tokens) =>
            [.. tokens.Select((token, index) => token.Replace(replacement, index == 0 && scheme != PrependScheme.Never ? "" : " ", StringComparison.Ordinal))];
    }
}
