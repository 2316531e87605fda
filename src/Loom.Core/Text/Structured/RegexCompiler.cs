using System.Globalization;
using System.Text;

namespace Loom.Text.Structured;

/// <summary>
/// Regular expressions, anchored at both ends, compiled to byte automata. The subset: literals,
/// escapes (\d \w \s and their negations, \n \t \r \f \v, \xHH, \uHHHH, escaped punctuation), '.',
/// classes [...] with ranges and negation, groups (...) and (?:...), alternation, the quantifiers
/// * + ? {n} {n,} {n,m} (lazy forms match the same language), '^' first and '$' last. \d, \w and \s
/// generate ASCII only (a subset of .NET's Unicode classes, so every output still matches); their
/// negations, and negated classes that contain them, are taken within ASCII for the same reason;
/// '.' and other negated classes stay inside the Basic Multilingual Plane, since .NET and ECMAScript
/// regexes match one UTF-16 unit where a character outside it takes two.
/// Anything else (lookaround, backreferences, \b, inline options) throws <see cref="SchemaNotSupportedException"/>.
/// </summary>
internal static class RegexCompiler
{
    public static Grammar Compile(string pattern, GrammarOptions? options)
    {
        var node = Parse(pattern, "pattern");
        var automaton = new ByteAutomaton();
        int root = automaton.NewRule();
        automaton.DefineRule(root, Build(node, automaton, jsonString: false));
        return new Grammar(automaton, root, options);
    }

    /// <summary>Parses a pattern; <paramref name="where"/> names it in errors (a JSON path for schema patterns).</summary>
    public static RegexNode Parse(string pattern, string where) => new Parser(pattern, where).ParseAll();

    /// <summary>Adds the language of <paramref name="node"/>, as raw UTF-8 or as the inside of a JSON string.</summary>
    public static Fragment Build(RegexNode node, ByteAutomaton automaton, bool jsonString) => node switch
    {
        RegexNode.Chars chars => jsonString ? chars.Set.ToJsonStringUtf8(automaton) : chars.Set.ToUtf8(automaton),
        RegexNode.Concat concat => automaton.Sequence([.. concat.Items.Select(i => Build(i, automaton, jsonString))]),
        RegexNode.Alternation alternation => automaton.Choice([.. alternation.Branches.Select(b => Build(b, automaton, jsonString))]),
        RegexNode.Repeat repeat => automaton.Repeat(() => Build(repeat.Inner, automaton, jsonString), repeat.Min, repeat.Max),
        _ => throw new InvalidOperationException($"unknown regex node {node.GetType().Name}"),
    };

    sealed class Parser(string pattern, string where)
    {
        const int RepeatLimit = 1000;
        int at;

        public RegexNode ParseAll()
        {
            if (Peek('^')) at++;
            var node = ParseAlternation();
            if (at < pattern.Length) throw Error($"unexpected '{pattern[at]}' at offset {at}");
            return node;
        }

        bool Peek(char c) => at < pattern.Length && pattern[at] == c;

        SchemaNotSupportedException Error(string message) => new($"unsupported regular expression at {where}: {message} in /{pattern}/");

        RegexNode ParseAlternation()
        {
            var branches = new List<RegexNode> { ParseConcat() };
            while (Peek('|'))
            {
                at++;
                branches.Add(ParseConcat());
            }
            return branches.Count == 1 ? branches[0] : new RegexNode.Alternation(branches);
        }

        RegexNode ParseConcat()
        {
            var items = new List<RegexNode>();
            while (at < pattern.Length && !Peek('|') && !Peek(')'))
            {
                if (Peek('$'))
                {
                    if (at == pattern.Length - 1) { at++; break; }
                    throw Error($"'$' is only supported at the end (offset {at})");
                }
                var atom = ParseAtom();
                items.Add(ParseQuantifier(atom));
            }
            return items.Count == 1 ? items[0] : new RegexNode.Concat(items);
        }

        RegexNode ParseQuantifier(RegexNode atom)
        {
            while (at < pattern.Length)
            {
                int min, max;
                char c = pattern[at];
                if (c == '*') { min = 0; max = -1; at++; }
                else if (c == '+') { min = 1; max = -1; at++; }
                else if (c == '?') { min = 0; max = 1; at++; }
                else if (c == '{' && TryBraces(out min, out max)) { }
                else return atom;
                if (Peek('?')) at++;
                else if (Peek('+')) throw Error("possessive quantifiers");
                atom = new RegexNode.Repeat(atom, min, max < 0 ? null : max);
            }
            return atom;
        }

        bool TryBraces(out int min, out int max)
        {
            min = max = 0;
            int close = pattern.IndexOf('}', at);
            if (close < 0) return false;
            var body = pattern.AsSpan(at + 1, close - at - 1);
            int comma = body.IndexOf(',');
            if (comma < 0)
            {
                if (!int.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out min)) return false;
                max = min;
            }
            else
            {
                if (!int.TryParse(body[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out min)) return false;
                var upper = body[(comma + 1)..];
                if (upper.IsEmpty) max = -1;
                else if (!int.TryParse(upper, NumberStyles.None, CultureInfo.InvariantCulture, out max)) return false;
            }
            if (max >= 0 && max < min) throw Error($"{{{min},{max}}} has its bounds reversed");
            if (min > RepeatLimit || max > RepeatLimit) throw Error($"a repetition above {RepeatLimit}");
            at = close + 1;
            return true;
        }

        RegexNode ParseAtom()
        {
            char c = pattern[at];
            switch (c)
            {
                case '(':
                    at++;
                    if (Peek('?'))
                    {
                        if (at + 1 < pattern.Length && pattern[at + 1] == ':') at += 2;
                        else throw Error($"the group construct '(?{(at + 1 < pattern.Length ? pattern[at + 1] : ' ')}' (lookaround, named groups and inline options)");
                    }
                    var inner = ParseAlternation();
                    if (!Peek(')')) throw Error("a group is not closed");
                    at++;
                    return inner;
                case '[':
                    return new RegexNode.Chars(ParseClass());
                case '.':
                    at++;
                    return new RegexNode.Chars(CharSet.Bmp.Without('\n', '\n'));
                case '\\':
                    at++;
                    return new RegexNode.Chars(ParseEscape(inClass: false, out _));
                case '*' or '+' or '?' or '{':
                    throw Error($"a quantifier with nothing to repeat at offset {at}");
                case '^':
                    throw Error($"'^' is only supported at the start (offset {at})");
                case ')':
                    throw Error($"unbalanced ')' at offset {at}");
                default:
                    return new RegexNode.Chars(CharSet.Single(ReadRune()));
            }
        }

        int ReadRune()
        {
            if (Rune.DecodeFromUtf16(pattern.AsSpan(at), out var rune, out int used) != System.Buffers.OperationStatus.Done)
                throw Error($"invalid UTF-16 at offset {at}");
            at += used;
            return rune.Value;
        }

        CharSet ParseClass()
        {
            at++; // '['
            bool negated = Peek('^');
            if (negated) at++;
            var items = new List<CharSet>();
            bool hasShorthand = false, first = true;
            while (true)
            {
                if (at >= pattern.Length) throw Error("a character class is not closed");
                if (Peek(']') && !first) { at++; break; }
                first = false;
                if (Peek('[')) throw Error("nested classes and class subtraction");
                int lo;
                if (Peek('\\'))
                {
                    at++;
                    var escaped = ParseEscape(inClass: true, out bool shorthand);
                    if (shorthand) { hasShorthand = true; items.Add(escaped); continue; }
                    lo = escaped.Ranges[0].Lo;
                }
                else lo = ReadRune();
                if (Peek('-') && at + 1 < pattern.Length && pattern[at + 1] != ']')
                {
                    at++;
                    int hi;
                    if (Peek('\\'))
                    {
                        at++;
                        var escaped = ParseEscape(inClass: true, out bool shorthand);
                        if (shorthand) throw Error("a range ending in a class shorthand");
                        hi = escaped.Ranges[0].Lo;
                    }
                    else hi = ReadRune();
                    if (hi < lo) throw Error($"the range {char.ConvertFromUtf32(lo)}-{char.ConvertFromUtf32(hi)} is reversed");
                    items.Add(CharSet.Of([(lo, hi)]));
                }
                else items.Add(CharSet.Of([(lo, lo)]));
            }
            var set = items.Aggregate(CharSet.Of([]), (a, b) => a.Union(b));
            if (!negated) return set;
            return set.Complement(hasShorthand ? CharSet.Ascii : CharSet.Bmp);
        }

        CharSet ParseEscape(bool inClass, out bool shorthand)
        {
            if (at >= pattern.Length) throw Error("a trailing backslash");
            char c = pattern[at++];
            shorthand = c is 'd' or 'D' or 'w' or 'W' or 's' or 'S';
            switch (c)
            {
                case 'd': return CharSet.Digits;
                case 'D': return CharSet.Digits.Complement(CharSet.Ascii);
                case 'w': return CharSet.Word;
                case 'W': return CharSet.Word.Complement(CharSet.Ascii);
                case 's': return CharSet.Space;
                case 'S': return CharSet.Space.Complement(CharSet.Ascii);
                case 'n': return CharSet.Single('\n');
                case 't': return CharSet.Single('\t');
                case 'r': return CharSet.Single('\r');
                case 'f': return CharSet.Single('\f');
                case 'v': return CharSet.Single('\v');
                case 'b' when inClass: return CharSet.Single('\b');
                case 'x': return CharSet.Single(Hex(2));
                case 'u': return CharSet.Single(Hex(4));
                default:
                    if (char.IsAsciiLetterOrDigit(c)) throw Error($"the escape \\{c}");
                    at--;
                    return CharSet.Single(ReadRune());
            }
        }

        int Hex(int digits)
        {
            if (at + digits > pattern.Length || !int.TryParse(pattern.AsSpan(at, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int value))
                throw Error($"a bad hexadecimal escape at offset {at}");
            at += digits;
            if (value is >= 0xD800 and <= 0xDFFF) throw Error("a surrogate escape");
            return value;
        }
    }
}

/// <summary>A parsed regular expression.</summary>
internal abstract record RegexNode
{
    public sealed record Chars(CharSet Set) : RegexNode;
    public sealed record Concat(IReadOnlyList<RegexNode> Items) : RegexNode;
    public sealed record Alternation(IReadOnlyList<RegexNode> Branches) : RegexNode;
    public sealed record Repeat(RegexNode Inner, int Min, int? Max) : RegexNode;
}
