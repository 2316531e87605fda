using System.Globalization;
using System.Text;

namespace Loom.Text.Jinja;

/// <summary>A template error: one line naming the template's line and column.</summary>
public sealed class JinjaException(string message, int line, int column)
    : Exception($"chat template line {line}, column {column}: {message}")
{
    /// <summary>The message without the position.</summary>
    public string Reason { get; } = message;
    public int Line { get; } = line;
    public int Column { get; } = column;
}

enum TokenKind { Text, VariableStart, VariableEnd, BlockStart, BlockEnd, Name, String, Integer, Float, Operator, End }

readonly record struct Token(TokenKind Kind, string Value, int Line, int Column)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsOperator(string value) => Kind == TokenKind.Operator && Value == value;
    public bool IsName(string value) => Kind == TokenKind.Name && Value == value;
}

/// <summary>
/// Splits a template into text and tag tokens the way Hugging Face renders chat templates: Jinja2 with
/// <c>trim_blocks</c> (the first newline after a block or comment tag is dropped) and <c>lstrip_blocks</c> (spaces
/// and tabs before a block or comment tag at the start of a line are dropped), plus <c>-</c> and <c>+</c> whitespace control.
/// </summary>
static class JinjaLexer
{
    static readonly string[] Operators = ["==", "!=", "<=", ">=", "//", "**", "<", ">", "+", "-", "*", "/", "%", "~", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "="];

    public static List<Token> Tokenize(string source)
    {
        source = source.Replace("\r\n", "\n");
        var tokens = new List<Token>();
        int pos = 0;
        bool lineStarting = true; // the text before the next tag starts a line (template start, or the previous tag ended one)
        bool stripNextText = false;
        while (pos < source.Length)
        {
            int tagAt = FindTag(source, pos);
            string text = source[pos..(tagAt < 0 ? source.Length : tagAt)];
            if (stripNextText) text = text.TrimStart();
            stripNextText = false;
            if (tagAt < 0)
            {
                if (text.Length > 0) tokens.Add(new Token(TokenKind.Text, text, 0, 0));
                break;
            }
            char kind = source[tagAt + 1];
            char modifier = tagAt + 2 < source.Length ? source[tagAt + 2] : '\0';
            if (modifier == '-') text = text.TrimEnd();
            else if (kind != '{' && modifier != '+')
            {
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && text.AsSpan(lineStart).Trim(" \t").IsEmpty) text = text[..lineStart];
            }
            if (text.Length > 0) tokens.Add(new Token(TokenKind.Text, text, 0, 0));
            int bodyStart = tagAt + 2 + (modifier is '-' or '+' ? 1 : 0);
            var (line, column) = Position(source, tagAt);
            if (kind == '#')
            {
                int close = source.IndexOf("#}", bodyStart, StringComparison.Ordinal);
                if (close < 0) throw new JinjaException("comment not closed (missing #})", line, column);
                bool strip = source[close - 1] == '-' && close - 1 >= bodyStart;
                pos = close + 2;
                if (strip) stripNextText = true;
                else if (pos < source.Length && source[pos] == '\n') pos++;
                lineStarting = source[pos - 1] == '\n';
                continue;
            }
            bool block = kind == '%';
            tokens.Add(new Token(block ? TokenKind.BlockStart : TokenKind.VariableStart, "", line, column));
            pos = LexExpression(source, bodyStart, block, tokens, out bool stripAfter);
            if (stripAfter) stripNextText = true;
            else if (block && pos < source.Length && source[pos] == '\n') pos++;
            lineStarting = source[pos - 1] == '\n';
        }
        tokens.Add(new Token(TokenKind.End, "", Position(source, source.Length).Line, Position(source, source.Length).Column));
        return tokens;
    }

    static int FindTag(string source, int from)
    {
        for (int i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
            if (source[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    internal static (int Line, int Column) Position(string source, int offset)
    {
        int line = 1, column = 1;
        for (int i = 0; i < offset && i < source.Length; i++)
        {
            if (source[i] == '\n') { line++; column = 1; }
            else column++;
        }
        return (line, column);
    }

    /// <summary>Reads the expression tokens of one tag up to its end (<c>}}</c> or <c>%}</c>); returns the offset after the tag.</summary>
    static int LexExpression(string source, int pos, bool block, List<Token> tokens, out bool stripAfter)
    {
        int depth = 0; // open brackets: a '}' inside a dict literal does not end the tag
        char closing = block ? '%' : '}';
        while (true)
        {
            while (pos < source.Length && char.IsWhiteSpace(source[pos])) pos++;
            var (line, column) = Position(source, pos);
            if (pos >= source.Length) throw new JinjaException($"tag not closed (missing {closing}}})", line, column);
            if (depth == 0)
            {
                if (source[pos] == '-' && pos + 2 < source.Length && source[pos + 1] == closing && source[pos + 2] == '}')
                {
                    tokens.Add(new Token(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, "", line, column));
                    stripAfter = true;
                    return pos + 3;
                }
                if (source[pos] == closing && pos + 1 < source.Length && source[pos + 1] == '}')
                {
                    tokens.Add(new Token(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, "", line, column));
                    stripAfter = false;
                    return pos + 2;
                }
            }
            char c = source[pos];
            if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < source.Length && (char.IsLetterOrDigit(source[pos]) || source[pos] == '_')) pos++;
                tokens.Add(new Token(TokenKind.Name, source[start..pos], line, column));
            }
            else if (char.IsAsciiDigit(c))
            {
                int start = pos;
                while (pos < source.Length && (char.IsAsciiDigit(source[pos]) || source[pos] == '_')) pos++;
                bool isFloat = false;
                if (pos + 1 < source.Length && source[pos] == '.' && char.IsAsciiDigit(source[pos + 1]))
                {
                    isFloat = true;
                    pos++;
                    while (pos < source.Length && char.IsAsciiDigit(source[pos])) pos++;
                }
                if (pos < source.Length && source[pos] is 'e' or 'E')
                {
                    int save = pos++;
                    if (pos < source.Length && source[pos] is '+' or '-') pos++;
                    if (pos < source.Length && char.IsAsciiDigit(source[pos]))
                    {
                        isFloat = true;
                        while (pos < source.Length && char.IsAsciiDigit(source[pos])) pos++;
                    }
                    else pos = save;
                }
                tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, source[start..pos].Replace("_", ""), line, column));
            }
            else if (c is '\'' or '"')
            {
                tokens.Add(new Token(TokenKind.String, ReadString(source, ref pos, line, column), line, column));
            }
            else
            {
                string? op = null;
                foreach (var candidate in Operators)
                    if (string.CompareOrdinal(source, pos, candidate, 0, candidate.Length) == 0) { op = candidate; break; }
                if (op is null) throw new JinjaException($"unexpected character '{c}'", line, column);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth--;
                tokens.Add(new Token(TokenKind.Operator, op, line, column));
                pos += op.Length;
            }
        }
    }

    /// <summary>A quoted string literal with Python's escapes (<c>\n</c>, <c>\t</c>, <c>\\</c>, <c>\'</c>, <c>\uXXXX</c>…).</summary>
    static string ReadString(string source, ref int pos, int line, int column)
    {
        char quote = source[pos++];
        var text = new StringBuilder();
        while (true)
        {
            if (pos >= source.Length) throw new JinjaException("string literal not closed", line, column);
            char c = source[pos++];
            if (c == quote) return text.ToString();
            if (c != '\\') { text.Append(c); continue; }
            if (pos >= source.Length) throw new JinjaException("string literal not closed", line, column);
            char e = source[pos++];
            switch (e)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case 'b': text.Append('\b'); break;
                case 'f': text.Append('\f'); break;
                case 'v': text.Append('\v'); break;
                case 'a': text.Append('\a'); break;
                case '0': text.Append('\0'); break;
                case '\\': text.Append('\\'); break;
                case '\'': text.Append('\''); break;
                case '"': text.Append('"'); break;
                case '\n': break;
                case 'x': text.Append(Hex(source, ref pos, 2, line, column)); break;
                case 'u': text.Append(Hex(source, ref pos, 4, line, column)); break;
                case 'U': text.Append(Hex(source, ref pos, 8, line, column)); break;
                default: text.Append('\\').Append(e); break;
            }
        }
    }

    static string Hex(string source, ref int pos, int digits, int line, int column)
    {
        if (pos + digits > source.Length || !int.TryParse(source.AsSpan(pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code))
            throw new JinjaException("bad escape in string literal", line, column);
        pos += digits;
        return char.ConvertFromUtf32(code);
    }
}
