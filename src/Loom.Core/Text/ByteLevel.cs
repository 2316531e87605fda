using System.Text;
using System.Text.RegularExpressions;

namespace Loom.Text;

/// <summary>
/// The pieces of GPT-2-style byte-level tokenization: the byte-to-unicode alphabet that spells every
/// byte as a printable character in <c>tokenizer.json</c>, the pre-tokenizer regex, and a lossless
/// text-to-bytes encoding (WTF-8: UTF-8 that also encodes lone UTF-16 surrogates, so every .NET string
/// round-trips).
/// </summary>
public static partial class ByteLevel
{
    /// <summary>GPT-2's pre-tokenizer: contractions, letter runs, digit runs, punctuation runs, whitespace.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    [GeneratedRegex(Gpt2Pattern, RegexOptions.CultureInvariant)]
    public static partial Regex PreTokenizer();

    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByteTable = BuildCharToByte();

    /// <summary>The printable character that spells a byte (GPT-2's bytes_to_unicode; space is 'Ġ').</summary>
    public static char ByteToChar(byte value) => ByteToCharTable[value];

    /// <summary>Spells bytes in the byte-level alphabet.</summary>
    public static string BytesToTokenString(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (chars, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                chars[i] = ByteToCharTable[source[i]];
            }
        });
    }

    /// <summary>The bytes a byte-level token spells, or null if a character is not in the alphabet.</summary>
    public static byte[]? TokenStringToBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            if (!CharToByteTable.TryGetValue(token[i], out bytes[i]))
            {
                return null;
            }
        }
        return bytes;
    }

    /// <summary>The largest number of bytes <see cref="EncodeText"/> writes for this many chars.</summary>
    public static int MaxByteCount(int charCount) => charCount * 3;

    /// <summary>
    /// Encodes text as WTF-8: standard UTF-8 for valid text; a lone surrogate becomes its 3-byte
    /// generalized UTF-8 form (ED A0 80 to ED BF BF) instead of being replaced. Returns the byte count.
    /// </summary>
    public static int EncodeText(ReadOnlySpan<char> text, Span<byte> destination)
    {
        var count = 0;
        for (var i = 0; i < text.Length; i++)
        {
            int c = text[i];
            if (c < 0x80)
            {
                destination[count++] = (byte)c;
            }
            else if (c < 0x800)
            {
                destination[count++] = (byte)(0xC0 | (c >> 6));
                destination[count++] = (byte)(0x80 | (c & 0x3F));
            }
            else if (char.IsHighSurrogate((char)c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var codePoint = char.ConvertToUtf32((char)c, text[i + 1]);
                i++;
                destination[count++] = (byte)(0xF0 | (codePoint >> 18));
                destination[count++] = (byte)(0x80 | ((codePoint >> 12) & 0x3F));
                destination[count++] = (byte)(0x80 | ((codePoint >> 6) & 0x3F));
                destination[count++] = (byte)(0x80 | (codePoint & 0x3F));
            }
            else
            {
                destination[count++] = (byte)(0xE0 | (c >> 12));
                destination[count++] = (byte)(0x80 | ((c >> 6) & 0x3F));
                destination[count++] = (byte)(0x80 | (c & 0x3F));
            }
        }
        return count;
    }

    /// <summary>
    /// Decodes WTF-8 (and so UTF-8): inverse of <see cref="EncodeText"/>; any byte that does not start a
    /// well-formed sequence becomes U+FFFD. Never throws.
    /// </summary>
    public static void DecodeText(ReadOnlySpan<byte> bytes, StringBuilder output)
    {
        var i = 0;
        while (i < bytes.Length)
        {
            int b0 = bytes[i];
            if (b0 < 0x80)
            {
                output.Append((char)b0);
                i++;
            }
            else if (b0 is >= 0xC2 and <= 0xDF && i + 1 < bytes.Length && IsContinuation(bytes[i + 1]))
            {
                output.Append((char)(((b0 & 0x1F) << 6) | (bytes[i + 1] & 0x3F)));
                i += 2;
            }
            else if (b0 is >= 0xE0 and <= 0xEF && i + 2 < bytes.Length && IsContinuation(bytes[i + 1]) && IsContinuation(bytes[i + 2])
                && (b0 != 0xE0 || bytes[i + 1] >= 0xA0))
            {
                // ED A0..BF xx are lone surrogates in WTF-8; they decode back to the same char.
                output.Append((char)(((b0 & 0x0F) << 12) | ((bytes[i + 1] & 0x3F) << 6) | (bytes[i + 2] & 0x3F)));
                i += 3;
            }
            else if (b0 is >= 0xF0 and <= 0xF4 && i + 3 < bytes.Length && IsContinuation(bytes[i + 1]) && IsContinuation(bytes[i + 2]) && IsContinuation(bytes[i + 3])
                && (b0 != 0xF0 || bytes[i + 1] >= 0x90) && (b0 != 0xF4 || bytes[i + 1] < 0x90))
            {
                var codePoint = ((b0 & 0x07) << 18) | ((bytes[i + 1] & 0x3F) << 12) | ((bytes[i + 2] & 0x3F) << 6) | (bytes[i + 3] & 0x3F);
                output.Append(char.ConvertFromUtf32(codePoint));
                i += 4;
            }
            else
            {
                output.Append('\uFFFD');
                i++;
            }
        }
    }

    private static bool IsContinuation(byte value) => (value & 0xC0) == 0x80;

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        var assigned = new bool[256];
        for (var b = '!'; b <= '~'; b++)
        {
            table[b] = b;
            assigned[b] = true;
        }
        for (var b = '¡'; b <= '¬'; b++)
        {
            table[b] = b;
            assigned[b] = true;
        }
        for (var b = '®'; b <= 'ÿ'; b++)
        {
            table[b] = b;
            assigned[b] = true;
        }
        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            if (!assigned[b])
            {
                table[b] = (char)(256 + next++);
            }
        }
        return table;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var table = new Dictionary<char, byte>();
        for (var b = 0; b < 256; b++)
        {
            table[ByteToCharTable[b]] = (byte)b;
        }
        return table;
    }
}

/// <summary>Splits text at occurrences of special-token strings (longest match first).</summary>
internal sealed class SpecialTokenSplitter
{
    private readonly (string Text, int Id)[] tokens;

    public SpecialTokenSplitter(IEnumerable<KeyValuePair<string, int>> specialTokens)
    {
        tokens = [.. specialTokens.Select(pair => (pair.Key, pair.Value)).OrderByDescending(pair => pair.Key.Length)];
    }

    public bool IsEmpty => tokens.Length == 0;

    /// <summary>Calls <paramref name="onText"/> for each plain stretch and appends special ids in between.</summary>
    public void Split<TState>(ReadOnlySpan<char> text, List<int> ids, TState state, SpanAction<TState> onText)
    {
        var start = 0;
        var i = 0;
        while (i < text.Length)
        {
            var matched = -1;
            foreach (var (token, id) in tokens)
            {
                if (text[i..].StartsWith(token, StringComparison.Ordinal))
                {
                    if (i > start)
                    {
                        onText(text[start..i], ids, state);
                    }
                    ids.Add(id);
                    matched = token.Length;
                    break;
                }
            }
            if (matched > 0)
            {
                i += matched;
                start = i;
            }
            else
            {
                i++;
            }
        }
        if (text.Length > start)
        {
            onText(text[start..], ids, state);
        }
    }

    public delegate void SpanAction<in TState>(ReadOnlySpan<char> text, List<int> ids, TState state);
}
