using System.Text;

namespace Loom.Text.Structured;

/// <summary>A set of Unicode scalar values as sorted, disjoint, inclusive ranges (surrogates never included).</summary>
internal sealed class CharSet
{
    const int MaxScalar = 0x10FFFF;

    readonly List<(int Lo, int Hi)> ranges;

    CharSet(List<(int Lo, int Hi)> ranges) => this.ranges = ranges;

    public IReadOnlyList<(int Lo, int Hi)> Ranges => ranges;

    public bool IsEmpty => ranges.Count == 0;

    public static CharSet Of(IEnumerable<(int Lo, int Hi)> items)
    {
        var sorted = items.Where(r => r.Lo <= r.Hi).OrderBy(r => r.Lo).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in sorted)
        {
            if (merged.Count > 0 && lo <= merged[^1].Hi + 1) merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
            else merged.Add((lo, hi));
        }
        return new CharSet(Subtract(merged, 0xD800, 0xDFFF));
    }

    public static CharSet Single(int value) => Of([(value, value)]);

    public static CharSet All { get; } = Of([(0, MaxScalar)]);

    public static CharSet Digits { get; } = Of([('0', '9')]);
    public static CharSet Word { get; } = Of([('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]);
    public static CharSet Space { get; } = Of([('\t', '\r'), (' ', ' ')]);
    public static CharSet Ascii { get; } = Of([(0, 0x7F)]);
    /// <summary>The Basic Multilingual Plane: the characters that are one UTF-16 unit, as .NET and ECMAScript regexes count them.</summary>
    public static CharSet Bmp { get; } = Of([(0, 0xFFFF)]);

    public bool Contains(int value)
    {
        foreach (var (lo, hi) in ranges) if (value >= lo && value <= hi) return true;
        return false;
    }

    public CharSet Union(CharSet other) => Of([.. ranges, .. other.ranges]);

    /// <summary>Everything in <paramref name="universe"/> that is not in this set.</summary>
    public CharSet Complement(CharSet universe)
    {
        var result = new List<(int Lo, int Hi)>(universe.ranges);
        foreach (var (lo, hi) in ranges) result = Subtract(result, lo, hi);
        return new CharSet(result);
    }

    public CharSet Without(int lo, int hi) => new(Subtract(ranges, lo, hi));

    static List<(int Lo, int Hi)> Subtract(List<(int Lo, int Hi)> from, int lo, int hi)
    {
        var result = new List<(int Lo, int Hi)>(from.Count + 1);
        foreach (var (a, b) in from)
        {
            if (b < lo || a > hi) { result.Add((a, b)); continue; }
            if (a < lo) result.Add((a, lo - 1));
            if (b > hi) result.Add((hi + 1, b));
        }
        return result;
    }

    /// <summary>Adds one character of this set to the automaton as UTF-8 bytes.</summary>
    public Fragment ToUtf8(ByteAutomaton automaton)
    {
        var sequences = new List<(byte Lo, byte Hi)[]>();
        foreach (var (lo, hi) in ranges) Utf8Sequences(lo, hi, sequences);
        var single = sequences.Where(s => s.Length == 1).Select(s => s[0]).ToList();
        var alternatives = new List<Fragment>();
        if (single.Count > 0) alternatives.Add(automaton.Ranges(single));
        foreach (var sequence in sequences.Where(s => s.Length > 1))
            alternatives.Add(automaton.Sequence([.. sequence.Select(r => automaton.Range(r.Lo, r.Hi))]));
        return alternatives.Count == 1 ? alternatives[0] : automaton.Choice(alternatives);
    }

    /// <summary>
    /// Adds one character of this set as it appears inside a JSON string: printable characters as
    /// UTF-8, quote, backslash and the five named control characters as their short escapes; other
    /// control characters are left out (Loom never writes \u escapes).
    /// </summary>
    public Fragment ToJsonStringUtf8(ByteAutomaton automaton)
    {
        var raw = Without(0, 0x1F).Without('"', '"').Without('\\', '\\');
        var alternatives = new List<Fragment>();
        if (!raw.IsEmpty) alternatives.Add(raw.ToUtf8(automaton));
        foreach (var (value, escape) in JsonEscapes)
            if (Contains(value)) alternatives.Add(automaton.Literal(escape));
        return alternatives.Count == 1 ? alternatives[0] : automaton.Choice(alternatives);
    }

    static readonly (int Value, string Escape)[] JsonEscapes =
        [('"', "\\\""), ('\\', "\\\\"), ('\n', "\\n"), ('\r', "\\r"), ('\t', "\\t"), ('\b', "\\b"), ('\f', "\\f")];

    // Splits [lo, hi] into ranges whose UTF-8 encodings are byte-wise ranges (the utf8-ranges algorithm of RE2 and Rust's regex).
    static void Utf8Sequences(int lo, int hi, List<(byte Lo, byte Hi)[]> output)
    {
        if (lo > hi) return;
        foreach (int max in (ReadOnlySpan<int>)[0x7F, 0x7FF, 0xFFFF])
        {
            if (lo <= max && max < hi)
            {
                Utf8Sequences(lo, max, output);
                Utf8Sequences(max + 1, hi, output);
                return;
            }
        }
        if (hi <= 0x7F)
        {
            output.Add([((byte)lo, (byte)hi)]);
            return;
        }
        for (int i = 1; i < 4; i++)
        {
            int mask = (1 << (6 * i)) - 1;
            if ((lo & ~mask) != (hi & ~mask))
            {
                if ((lo & mask) != 0)
                {
                    Utf8Sequences(lo, lo | mask, output);
                    Utf8Sequences((lo | mask) + 1, hi, output);
                    return;
                }
                if ((hi & mask) != mask)
                {
                    Utf8Sequences(lo, (hi & ~mask) - 1, output);
                    Utf8Sequences(hi & ~mask, hi, output);
                    return;
                }
            }
        }
        Span<byte> a = stackalloc byte[4], b = stackalloc byte[4];
        int length = new Rune(lo).EncodeToUtf8(a);
        new Rune(hi).EncodeToUtf8(b);
        var sequence = new (byte, byte)[length];
        for (int i = 0; i < length; i++) sequence[i] = (a[i], b[i]);
        output.Add(sequence);
    }
}
