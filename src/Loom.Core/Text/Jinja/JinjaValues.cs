using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Text.Jinja;

/// <summary>
/// The values a template sees, as Python would: null (None), <see cref="JinjaUndefined"/>, bool, long, double,
/// string, <see cref="List{T}"/> of values (a list; an <c>object?[]</c> is a tuple), <see cref="OrderedDictionary{TKey, TValue}"/>
/// (a dict, insertion-ordered), <see cref="JinjaNamespace"/>, and callables.
/// </summary>
public sealed class JinjaUndefined
{
    public static readonly JinjaUndefined Instance = new();
    JinjaUndefined() { }
}

/// <summary>What <c>namespace()</c> returns: attributes that a <c>set</c> inside a loop may change.</summary>
sealed class JinjaNamespace
{
    public readonly Dictionary<string, object?> Values = new(StringComparer.Ordinal);
}

/// <summary>A function a template can call: positional arguments and keyword arguments.</summary>
public delegate object? JinjaFunction(IReadOnlyList<object?> arguments, IReadOnlyDictionary<string, object?> keywords);

/// <summary>Conversions and Python semantics shared by the evaluator, the filters and the tests.</summary>
static class JinjaValues
{
    /// <summary>A JSON value as a template value (objects keep their order; whole numbers become long).</summary>
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject obj => ToDict(obj),
        JsonArray array => array.Select(FromJson).ToList(),
        JsonValue value => value.GetValueKind() switch
        {
            JsonValueKind.String => value.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => Number(value),
            _ => null,
        },
        _ => null,
    };

    /// <summary>A JSON number as Python's json module reads it: int when written without a fraction or exponent, else float.</summary>
    static object Number(JsonValue value)
    {
        if (value.TryGetValue(out JsonElement element))
            return element.TryGetInt64(out long whole) && element.GetRawText().All(c => c is '-' || char.IsAsciiDigit(c)) ? whole : (object)element.GetDouble();
        if (value.TryGetValue(out long l)) return l;
        if (value.TryGetValue(out int i)) return (long)i;
        return value.GetValue<double>();
    }

    static OrderedDictionary<string, object?> ToDict(JsonObject obj)
    {
        var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in obj) dict[key] = FromJson(value);
        return dict;
    }

    public static bool Truthy(object? value) => value switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        object?[] tuple => tuple.Length > 0,
        OrderedDictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        JinjaUndefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        OrderedDictionary<string, object?> => "dict",
        JinjaNamespace => "Namespace",
        _ => "function",
    };

    /// <summary>Python's <c>str()</c>: what <c>{{ value }}</c> prints.</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        JinjaUndefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr()</c>: how a value prints inside a list or dict.</summary>
    public static string Repr(object? value) => value switch
    {
        null => "None",
        JinjaUndefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StringRepr(s),
        List<object?> list => "[" + string.Join(", ", list.Select(Repr)) + "]",
        object?[] tuple => tuple.Length == 1 ? "(" + Repr(tuple[0]) + ",)" : "(" + string.Join(", ", tuple.Select(Repr)) + ")",
        OrderedDictionary<string, object?> dict => "{" + string.Join(", ", dict.Select(p => StringRepr(p.Key) + ": " + Repr(p.Value))) + "}",
        JinjaNamespace => "<Namespace>",
        _ => "<function>",
    };

    /// <summary>Python's float repr: shortest round-trip digits, <c>1.0</c> for whole numbers, exponent outside [1e-4, 1e16).</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        double magnitude = Math.Abs(d);
        if (magnitude >= 1e16 || magnitude < 1e-4)
        {
            string mantissa = r, exponent = "0";
            if (r.Contains('E')) (mantissa, exponent) = (r[..r.IndexOf('E')], r[(r.IndexOf('E') + 1)..]);
            int exp = int.Parse(exponent, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            return mantissa + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (r.Contains('E'))
            r = decimal.Parse(r, NumberStyles.Float, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture);
        return r.Contains('.') ? r : r + ".0";
    }

    static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var text = new StringBuilder().Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                default:
                    if (c == quote) text.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) text.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else text.Append(c);
                    break;
            }
        }
        return text.Append(quote).ToString();
    }

    /// <summary>Python's <c>json.dumps</c> with Hugging Face's defaults (<c>ensure_ascii=False</c>, keys in order).</summary>
    public static string ToJson(object? value, int? indent, string? itemSeparator, string? keySeparator, bool sortKeys, bool ensureAscii)
    {
        itemSeparator ??= indent is null ? ", " : ",";
        keySeparator ??= ": ";
        var text = new StringBuilder();
        WriteJson(text, value, indent, itemSeparator, keySeparator, sortKeys, ensureAscii, 0);
        return text.ToString();
    }

    static void WriteJson(StringBuilder text, object? value, int? indent, string itemSeparator, string keySeparator, bool sortKeys, bool ensureAscii, int level)
    {
        switch (value)
        {
            case null: text.Append("null"); return;
            case bool b: text.Append(b ? "true" : "false"); return;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                text.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : FloatRepr(d));
                return;
            case string s: WriteJsonString(text, s, ensureAscii); return;
            case List<object?> or object?[]:
            {
                var items = value is List<object?> list ? (IReadOnlyList<object?>)list : (object?[])value;
                if (items.Count == 0) { text.Append("[]"); return; }
                text.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) text.Append(itemSeparator);
                    NewLine(text, indent, level + 1);
                    WriteJson(text, items[i], indent, itemSeparator, keySeparator, sortKeys, ensureAscii, level + 1);
                }
                NewLine(text, indent, level);
                text.Append(']');
                return;
            }
            case OrderedDictionary<string, object?> dict:
            {
                if (dict.Count == 0) { text.Append("{}"); return; }
                text.Append('{');
                var pairs = sortKeys ? dict.OrderBy(p => p.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                for (int i = 0; i < pairs.Count; i++)
                {
                    if (i > 0) text.Append(itemSeparator);
                    NewLine(text, indent, level + 1);
                    WriteJsonString(text, pairs[i].Key, ensureAscii);
                    text.Append(keySeparator);
                    WriteJson(text, pairs[i].Value, indent, itemSeparator, keySeparator, sortKeys, ensureAscii, level + 1);
                }
                NewLine(text, indent, level);
                text.Append('}');
                return;
            }
            default: throw new InvalidOperationException($"Object of type {TypeName(value)} is not JSON serializable");
        }
    }

    static void NewLine(StringBuilder text, int? indent, int level)
    {
        if (indent is int spaces) text.Append('\n').Append(' ', spaces * level);
    }

    static void WriteJsonString(StringBuilder text, string s, bool ensureAscii)
    {
        text.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e)) text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else text.Append(c);
                    break;
            }
        }
        text.Append('"');
    }

    /// <summary>Python's <c>==</c>: numbers compare across int, float and bool; lists and dicts compare item by item.</summary>
    public static bool Equal(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a is JinjaUndefined || b is JinjaUndefined) return a is JinjaUndefined && b is JinjaUndefined;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        if (a is string sa) return b is string sb && sa == sb;
        if (a is List<object?> la) return b is List<object?> lb && la.Count == lb.Count && la.Zip(lb).All(p => Equal(p.First, p.Second));
        if (a is object?[] ta) return b is object?[] tb && ta.Length == tb.Length && ta.Zip(tb).All(p => Equal(p.First, p.Second));
        if (a is OrderedDictionary<string, object?> da)
            return b is OrderedDictionary<string, object?> db && da.Count == db.Count
                && da.All(p => db.TryGetValue(p.Key, out var v) && Equal(p.Value, v));
        return ReferenceEquals(a, b);
    }

    public static bool IsNumber(object? value) => value is long or double or bool;
    public static double ToDouble(object? value) => value switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => throw new InvalidCastException() };
    public static long ToLong(object? value) => value switch { long l => l, bool b => b ? 1 : 0, double d => (long)d, _ => throw new InvalidCastException() };

    /// <summary>The items a <c>for</c> loop walks: a list's or tuple's items, a string's characters, a dict's keys.</summary>
    public static IReadOnlyList<object?>? Iterate(object? value) => value switch
    {
        List<object?> list => list,
        object?[] tuple => tuple,
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        OrderedDictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        JinjaUndefined => [],
        _ => null,
    };

    public static int Length(object? value) => value switch
    {
        string s => s.Length,
        List<object?> list => list.Count,
        object?[] tuple => tuple.Length,
        OrderedDictionary<string, object?> dict => dict.Count,
        JinjaUndefined => 0,
        _ => throw new InvalidOperationException($"object of type '{TypeName(value)}' has no len()"),
    };
}
