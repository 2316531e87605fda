using System.Globalization;
using System.Text;

namespace Loom.Text.Jinja;

/// <summary>
/// Jinja2's operators, filters, tests and globals, and the Python methods that chat templates call on strings and
/// dicts, with Python's results. Each failure is an <see cref="InvalidOperationException"/> that the renderer turns
/// into a one-line <see cref="JinjaException"/> at the expression's position.
/// </summary>
static class JinjaBuiltins
{
    public static readonly IReadOnlyDictionary<string, object?> Globals = new Dictionary<string, object?>(StringComparer.Ordinal)
    {
        ["raise_exception"] = new JinjaFunction((arguments, _) =>
            throw new InvalidOperationException(arguments.Count > 0 ? JinjaValues.Str(arguments[0]) : "raise_exception")),
        ["range"] = new JinjaFunction((arguments, _) => Range(arguments)),
        ["namespace"] = new JinjaFunction((arguments, keywords) =>
        {
            var ns = new JinjaNamespace();
            foreach (var argument in arguments)
                if (argument is OrderedDictionary<string, object?> initial)
                    foreach (var (key, value) in initial) ns.Values[key] = value;
            foreach (var (key, value) in keywords) ns.Values[key] = value;
            return ns;
        }),
        ["dict"] = new JinjaFunction((arguments, keywords) =>
        {
            var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (key, value) in keywords) dict[key] = value;
            return dict;
        }),
    };

    static List<object?> Range(IReadOnlyList<object?> arguments)
    {
        long start = 0, stop, step = 1;
        if (arguments.Count == 1) stop = Int(arguments[0]);
        else if (arguments.Count is 2 or 3)
        {
            start = Int(arguments[0]);
            stop = Int(arguments[1]);
            if (arguments.Count == 3) step = Int(arguments[2]);
        }
        else throw new InvalidOperationException($"range expected 1 to 3 arguments, got {arguments.Count}");
        if (step == 0) throw new InvalidOperationException("range() arg 3 must not be zero");
        var items = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            items.Add(i);
            if (items.Count > 100_000) throw new InvalidOperationException("range() is too long for a template");
        }
        return items;
    }

    static long Int(object? value) => value is long or bool ? JinjaValues.ToLong(value)
        : throw new InvalidOperationException($"'{JinjaValues.TypeName(value)}' object cannot be interpreted as an integer");

    static string Text(object? value, string what) => value as string
        ?? throw new InvalidOperationException($"{what} expects a string, got '{JinjaValues.TypeName(value)}'");

    // ---- attributes, items, slices ----

    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case OrderedDictionary<string, object?> dict:
                return name switch
                {
                    "items" => Method(_ => dict.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList()),
                    "keys" => Method(_ => dict.Keys.Cast<object?>().ToList()),
                    "values" => Method(_ => dict.Values.ToList()),
                    "get" => Method(a => a.Count > 0 && a[0] is string key && dict.TryGetValue(key, out var v) ? v : a.Count > 1 ? a[1] : null),
                    _ => dict.TryGetValue(name, out var value) ? value : JinjaUndefined.Instance,
                };
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out var attribute) ? attribute : JinjaUndefined.Instance;
            case JinjaLoop loop:
                return loop.Get(name);
            case string s:
                return StringMethod(s, name) ?? (object)JinjaUndefined.Instance;
            case JinjaUndefined:
                throw new InvalidOperationException($"cannot read '{name}' of an undefined value");
            default:
                return JinjaUndefined.Instance;
        }
    }

    static JinjaFunction Method(Func<IReadOnlyList<object?>, object?> body) => (arguments, _) => body(arguments);

    static JinjaFunction? StringMethod(string s, string name) => name switch
    {
        "strip" => Method(a => a.Count > 0 && a[0] is string chars ? s.Trim(chars.ToCharArray()) : s.Trim()),
        "lstrip" => Method(a => a.Count > 0 && a[0] is string chars ? s.TrimStart(chars.ToCharArray()) : s.TrimStart()),
        "rstrip" => Method(a => a.Count > 0 && a[0] is string chars ? s.TrimEnd(chars.ToCharArray()) : s.TrimEnd()),
        "startswith" => Method(a => Prefixes(a).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method(a => Prefixes(a).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
        "split" => Method(a => Split(s, a.Count > 0 ? a[0] as string : null, a.Count > 1 ? (int)Int(a[1]) : -1)),
        "upper" => Method(_ => s.ToUpperInvariant()),
        "lower" => Method(_ => s.ToLowerInvariant()),
        "title" => Method(_ => Title(s)),
        "capitalize" => Method(_ => Capitalize(s)),
        "replace" => Method(a => Replace(s, Text(a[0], "replace"), Text(a[1], "replace"), a.Count > 2 ? (int)Int(a[2]) : -1)),
        "find" => Method(a => (long)s.IndexOf(Text(a[0], "find"), StringComparison.Ordinal)),
        "count" => Method(a => (long)CountOf(s, Text(a[0], "count"))),
        "join" => Method(a => string.Join(s, (JinjaValues.Iterate(a[0]) ?? []).Select(JinjaValues.Str))),
        "isdigit" => Method(_ => s.Length > 0 && s.All(char.IsDigit)),
        "isspace" => Method(_ => s.Length > 0 && s.All(char.IsWhiteSpace)),
        _ => null,
    };

    static IEnumerable<string> Prefixes(IReadOnlyList<object?> arguments) => arguments.Count == 0 ? throw new InvalidOperationException("startswith/endswith expect a string")
        : arguments[0] switch { string p => [p], object?[] tuple => tuple.Select(t => Text(t, "startswith")), var other => [Text(other, "startswith")] };

    static List<object?> Split(string s, string? separator, int maxSplit)
    {
        if (separator is null)
        {
            var words = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (maxSplit < 0 || words.Length <= maxSplit + 1) return [.. words];
            var result = new List<object?>();
            string rest = s.TrimStart();
            for (int i = 0; i < maxSplit; i++)
            {
                int end = 0;
                while (end < rest.Length && !char.IsWhiteSpace(rest[end])) end++;
                result.Add(rest[..end]);
                rest = rest[end..].TrimStart();
            }
            result.Add(rest);
            return result;
        }
        if (separator.Length == 0) throw new InvalidOperationException("empty separator");
        return maxSplit < 0 ? [.. s.Split(separator)] : [.. s.Split(separator, maxSplit + 1)];
    }

    static string Replace(string s, string old, string replacement, int count)
    {
        if (count < 0) return old.Length == 0 ? string.Concat(s.Select(c => replacement + c)) + replacement : s.Replace(old, replacement, StringComparison.Ordinal);
        var text = new StringBuilder();
        int pos = 0;
        for (int done = 0; done < count; done++)
        {
            int at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0) break;
            text.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
        }
        return text.Append(s, pos, s.Length - pos).ToString();
    }

    static int CountOf(string s, string part)
    {
        if (part.Length == 0) return s.Length + 1;
        int count = 0;
        for (int at = s.IndexOf(part, StringComparison.Ordinal); at >= 0; at = s.IndexOf(part, at + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    static string Title(string s)
    {
        var text = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            text.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return text.ToString();
    }

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case OrderedDictionary<string, object?> dict:
                return key is string name && dict.TryGetValue(name, out var value) ? value : JinjaUndefined.Instance;
            case List<object?> or object?[] or string when key is long or bool:
            {
                int count = JinjaValues.Length(target);
                long index = JinjaValues.ToLong(key);
                if (index < 0) index += count;
                if (index < 0 || index >= count) return JinjaUndefined.Instance;
                return target switch
                {
                    List<object?> list => list[(int)index],
                    object?[] tuple => tuple[index],
                    _ => ((string)target)[(int)index].ToString(),
                };
            }
            case JinjaUndefined:
                throw new InvalidOperationException($"cannot index an undefined value with {JinjaValues.Repr(key)}");
            case JinjaNamespace or JinjaLoop when key is string attribute:
                return GetAttribute(target, attribute);
            default:
                return JinjaUndefined.Instance;
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        if (target is not (List<object?> or object?[] or string))
            throw new InvalidOperationException($"'{JinjaValues.TypeName(target)}' object cannot be sliced");
        int count = JinjaValues.Length(target);
        long stride = step is null ? 1 : Int(step);
        if (stride == 0) throw new InvalidOperationException("slice step cannot be zero");
        long Bound(object? value, long fallback)
        {
            if (value is null) return fallback;
            long v = Int(value);
            if (v < 0) v += count;
            return stride > 0 ? Math.Clamp(v, 0, count) : Math.Clamp(v, -1, count - 1);
        }
        long from = Bound(start, stride > 0 ? 0 : count - 1), to = Bound(stop, stride > 0 ? count : -1);
        var indices = new List<int>();
        for (long i = from; stride > 0 ? i < to : i > to; i += stride) indices.Add((int)i);
        return target switch
        {
            List<object?> list => indices.Select(i => list[i]).ToList(),
            object?[] tuple => indices.Select(i => tuple[i]).ToArray(),
            _ => string.Concat(indices.Select(i => ((string)target)[i])),
        };
    }

    // ---- operators ----

    public static object? Binary(string op, object? left, object? right)
    {
        switch (op)
        {
            case "==": return JinjaValues.Equal(left, right);
            case "!=": return !JinjaValues.Equal(left, right);
            case "<": return Compare(left, right, op) < 0;
            case ">": return Compare(left, right, op) > 0;
            case "<=": return Compare(left, right, op) <= 0;
            case ">=": return Compare(left, right, op) >= 0;
            case "in": return Contains(right, left);
            case "not in": return !Contains(right, left);
            case "~": return JinjaValues.Str(left) + JinjaValues.Str(right);
        }
        if (op == "+")
        {
            if (left is string ls && right is string rs) return ls + rs;
            if (left is List<object?> ll && right is List<object?> rl) return ll.Concat(rl).ToList();
            if (left is object?[] lt && right is object?[] rt) return lt.Concat(rt).ToArray();
        }
        if (op == "*")
        {
            if (left is string s && right is long or bool) return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, JinjaValues.ToLong(right))));
            if (left is List<object?> list && right is long or bool) return Enumerable.Repeat(list, (int)Math.Max(0, JinjaValues.ToLong(right))).SelectMany(x => x).ToList();
        }
        if (!JinjaValues.IsNumber(left) || !JinjaValues.IsNumber(right))
            throw new InvalidOperationException($"unsupported operand type(s) for {op}: '{JinjaValues.TypeName(left)}' and '{JinjaValues.TypeName(right)}'");
        bool whole = left is not double && right is not double;
        switch (op)
        {
            case "+": return whole ? JinjaValues.ToLong(left) + JinjaValues.ToLong(right) : (object)(JinjaValues.ToDouble(left) + JinjaValues.ToDouble(right));
            case "-": return whole ? JinjaValues.ToLong(left) - JinjaValues.ToLong(right) : (object)(JinjaValues.ToDouble(left) - JinjaValues.ToDouble(right));
            case "*": return whole ? JinjaValues.ToLong(left) * JinjaValues.ToLong(right) : (object)(JinjaValues.ToDouble(left) * JinjaValues.ToDouble(right));
            case "/":
                if (JinjaValues.ToDouble(right) == 0) throw new InvalidOperationException("division by zero");
                return JinjaValues.ToDouble(left) / JinjaValues.ToDouble(right);
            case "//":
                if (JinjaValues.ToDouble(right) == 0) throw new InvalidOperationException("integer division or modulo by zero");
                if (whole)
                {
                    long a = JinjaValues.ToLong(left), b = JinjaValues.ToLong(right);
                    long q = a / b;
                    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
                }
                return Math.Floor(JinjaValues.ToDouble(left) / JinjaValues.ToDouble(right));
            case "%":
                if (JinjaValues.ToDouble(right) == 0) throw new InvalidOperationException("integer division or modulo by zero");
                if (whole)
                {
                    long a = JinjaValues.ToLong(left), b = JinjaValues.ToLong(right);
                    long r = a % b;
                    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
                }
                double x = JinjaValues.ToDouble(left), y = JinjaValues.ToDouble(right);
                return x - y * Math.Floor(x / y);
            case "**":
                if (whole && JinjaValues.ToLong(right) >= 0) return (long)Math.Pow(JinjaValues.ToLong(left), JinjaValues.ToLong(right));
                return Math.Pow(JinjaValues.ToDouble(left), JinjaValues.ToDouble(right));
            default: throw new InvalidOperationException($"unknown operator {op}");
        }
    }

    static int Compare(object? left, object? right, string op)
    {
        if (JinjaValues.IsNumber(left) && JinjaValues.IsNumber(right)) return JinjaValues.ToDouble(left).CompareTo(JinjaValues.ToDouble(right));
        if (left is string a && right is string b) return string.CompareOrdinal(a, b);
        throw new InvalidOperationException($"'{op}' not supported between instances of '{JinjaValues.TypeName(left)}' and '{JinjaValues.TypeName(right)}'");
    }

    static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string part ? s.Contains(part, StringComparison.Ordinal)
            : throw new InvalidOperationException($"'in <string>' requires string as left operand, not {JinjaValues.TypeName(item)}"),
        List<object?> list => list.Any(x => JinjaValues.Equal(x, item)),
        object?[] tuple => tuple.Any(x => JinjaValues.Equal(x, item)),
        OrderedDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        JinjaUndefined => false,
        _ => throw new InvalidOperationException($"argument of type '{JinjaValues.TypeName(container)}' is not iterable"),
    };

    // ---- filters ----

    public static object? Filter(string name, object? value, IReadOnlyList<object?> arguments, IReadOnlyDictionary<string, object?> keywords)
    {
        object? Argument(int index, string keyword, object? fallback) =>
            index >= 0 && index < arguments.Count ? arguments[index] : keywords.TryGetValue(keyword, out var v) ? v : fallback;
        switch (name)
        {
            case "trim":
                return Argument(0, "chars", null) is string chars ? JinjaValues.Str(value).Trim(chars.ToCharArray()) : JinjaValues.Str(value).Trim();
            case "tojson":
            {
                var indent = Argument(0, "indent", null);
                var separators = Argument(-1, "separators", null);
                string? itemSeparator = null, keySeparator = null;
                if (separators is object?[] or List<object?>)
                {
                    var pair = JinjaValues.Iterate(separators)!;
                    itemSeparator = JinjaValues.Str(pair[0]);
                    keySeparator = JinjaValues.Str(pair[1]);
                }
                return JinjaValues.ToJson(value, indent is null ? null : (int)Int(indent), itemSeparator, keySeparator,
                    JinjaValues.Truthy(Argument(-1, "sort_keys", false)), JinjaValues.Truthy(Argument(-1, "ensure_ascii", false)));
            }
            case "length" or "count":
                return (long)JinjaValues.Length(value);
            case "upper": return JinjaValues.Str(value).ToUpperInvariant();
            case "lower": return JinjaValues.Str(value).ToLowerInvariant();
            case "capitalize": return Capitalize(JinjaValues.Str(value));
            case "title": return Title(JinjaValues.Str(value));
            case "string": return JinjaValues.Str(value);
            case "safe": return value;
            case "default" or "d":
            {
                bool boolean = JinjaValues.Truthy(Argument(1, "boolean", false));
                bool missing = value is JinjaUndefined || (boolean && !JinjaValues.Truthy(value));
                return missing ? Argument(0, "default_value", "") : value;
            }
            case "join":
            {
                string separator = JinjaValues.Str(Argument(0, "d", ""));
                var items = Items(value, name);
                if (Argument(1, "attribute", null) is { } attribute) items = items.Select(i => Attribute(i, attribute)).ToList();
                return string.Join(separator, items.Select(JinjaValues.Str));
            }
            case "items":
                return value switch
                {
                    OrderedDictionary<string, object?> dict => dict.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList(),
                    JinjaUndefined => new List<object?>(),
                    _ => throw new InvalidOperationException($"items filter expects a mapping, got '{JinjaValues.TypeName(value)}'"),
                };
            case "list": return Items(value, name).ToList();
            case "first": { var items = Items(value, name); return items.Count > 0 ? items[0] : JinjaUndefined.Instance; }
            case "last": { var items = Items(value, name); return items.Count > 0 ? items[^1] : JinjaUndefined.Instance; }
            case "reverse":
                return value is string s ? new string(s.Reverse().ToArray()) : Items(value, name).Reverse().ToList();
            case "unique":
            {
                var unique = new List<object?>();
                foreach (var item in Items(value, name)) if (!unique.Any(u => JinjaValues.Equal(u, item))) unique.Add(item);
                return unique;
            }
            case "int":
                return value switch
                {
                    long or bool => (object)JinjaValues.ToLong(value),
                    double d => (long)Math.Truncate(d),
                    string digits when long.TryParse(digits.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
                    _ => Argument(0, "default", 0L),
                };
            case "float":
                return value switch
                {
                    long or bool or double => (object)JinjaValues.ToDouble(value),
                    string number when double.TryParse(number.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
                    _ => Argument(0, "default", 0.0),
                };
            case "abs":
                return value switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), bool b => b ? 1L : 0L, _ => throw new InvalidOperationException("abs expects a number") };
            case "replace":
                return Replace(JinjaValues.Str(value), JinjaValues.Str(Argument(0, "old", "")), JinjaValues.Str(Argument(1, "new", "")),
                    Argument(2, "count", null) is { } count ? (int)Int(count) : -1);
            case "indent":
            {
                int width = (int)Int(Argument(0, "width", 4L));
                bool first = JinjaValues.Truthy(Argument(1, "first", false)), blank = JinjaValues.Truthy(Argument(2, "blank", false));
                var lines = JinjaValues.Str(value).Split('\n');
                string pad = new(' ', width);
                for (int i = 0; i < lines.Length; i++)
                    if ((i > 0 || first) && (blank || lines[i].Trim().Length > 0)) lines[i] = pad + lines[i];
                return string.Join("\n", lines);
            }
            case "map":
            {
                var items = Items(value, name);
                if (keywords.TryGetValue("attribute", out var attribute))
                    return items.Select(i => Attribute(i, attribute) is JinjaUndefined && keywords.TryGetValue("default", out var d) ? d : Attribute(i, attribute)).ToList();
                if (arguments.Count == 0) throw new InvalidOperationException("map needs a filter name or attribute=");
                string filter = Text(arguments[0], "map");
                return items.Select(i => Filter(filter, i, arguments.Skip(1).ToList(), new Dictionary<string, object?>())).ToList();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                string? test = arguments.Count > 0 ? Text(arguments[0], name) : null;
                var testArguments = arguments.Skip(1).ToList();
                return Items(value, name).Where(i => (test is null ? JinjaValues.Truthy(i) : Test(test, i, testArguments)) == keep).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                bool keep = name == "selectattr";
                if (arguments.Count == 0) throw new InvalidOperationException($"{name} needs an attribute name");
                var attribute = arguments[0];
                string? test = arguments.Count > 1 ? Text(arguments[1], name) : null;
                var testArguments = arguments.Skip(2).ToList();
                return Items(value, name).Where(i =>
                {
                    var field = Attribute(i, attribute);
                    return (test is null ? JinjaValues.Truthy(field) : Test(test, field, testArguments)) == keep;
                }).ToList();
            }
            case "dictsort":
                return value is OrderedDictionary<string, object?> sorted
                    ? sorted.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase).Select(p => (object?)new object?[] { p.Key, p.Value }).ToList()
                    : throw new InvalidOperationException("dictsort expects a mapping");
            case "sum":
            {
                object? total = Argument(1, "start", 0L);
                foreach (var item in Items(value, name)) total = Binary("+", total, Argument(0, "attribute", null) is { } a ? Attribute(item, a) : item);
                return total;
            }
            case "min" or "max":
            {
                var items = Items(value, name);
                if (items.Count == 0) return JinjaUndefined.Instance;
                var best = items[0];
                foreach (var item in items.Skip(1))
                    if ((Compare(item, best, "<") < 0) == (name == "min") && !JinjaValues.Equal(item, best)) best = item;
                return best;
            }
            case "wordcount":
                return (long)JinjaValues.Str(value).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "center":
            {
                string centered = JinjaValues.Str(value);
                int width = (int)Int(Argument(0, "width", 80L));
                if (centered.Length >= width) return centered;
                int left = (width - centered.Length) / 2 + ((width - centered.Length) % 2 & width % 2);
                return new string(' ', left) + centered + new string(' ', width - centered.Length - left);
            }
            default:
                throw new InvalidOperationException($"unknown filter '{name}'");
        }
    }

    static IReadOnlyList<object?> Items(object? value, string filter) =>
        JinjaValues.Iterate(value) ?? throw new InvalidOperationException($"{filter} filter expects a sequence, got '{JinjaValues.TypeName(value)}'");

    /// <summary>Jinja's attribute lookup for filters (<c>map(attribute=)</c>, <c>selectattr</c>): dotted paths, item or attribute.</summary>
    static object? Attribute(object? item, object? path)
    {
        if (path is long index) return GetItem(item, index);
        foreach (var part in JinjaValues.Str(path).Split('.'))
        {
            if (item is JinjaUndefined) return item;
            item = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && item is List<object?> or object?[]
                ? GetItem(item, i)
                : item is OrderedDictionary<string, object?> dict ? (dict.TryGetValue(part, out var v) ? v : JinjaUndefined.Instance) : GetAttribute(item, part);
        }
        return item;
    }

    // ---- tests ----

    public static bool Test(string name, object? value, IReadOnlyList<object?> arguments)
    {
        object? Argument() => arguments.Count > 0 ? arguments[0] : throw new InvalidOperationException($"test '{name}' needs an argument");
        return name switch
        {
            "defined" => value is not JinjaUndefined,
            "undefined" => value is JinjaUndefined,
            "none" => value is null,
            "string" => value is string,
            "mapping" => value is OrderedDictionary<string, object?>,
            "iterable" => value is string or List<object?> or object?[] or OrderedDictionary<string, object?> or JinjaUndefined,
            "sequence" => value is string or List<object?> or object?[] or OrderedDictionary<string, object?> or JinjaUndefined,
            "number" => value is long or double or bool,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "callable" => value is JinjaFunction,
            "odd" => Int(value) % 2 != 0,
            "even" => Int(value) % 2 == 0,
            "divisibleby" => Int(value) % Int(Argument()) == 0,
            "equalto" or "eq" or "==" => JinjaValues.Equal(value, Argument()),
            "ne" or "!=" => !JinjaValues.Equal(value, Argument()),
            "lt" or "lessthan" or "<" => Compare(value, Argument(), "<") < 0,
            "gt" or "greaterthan" or ">" => Compare(value, Argument(), ">") > 0,
            "le" or "<=" => Compare(value, Argument(), "<=") <= 0,
            "ge" or ">=" => Compare(value, Argument(), ">=") >= 0,
            "in" => Contains(Argument(), value),
            "sameas" => value is null ? Argument() is null : value is bool b ? Argument() is bool a && a == b : ReferenceEquals(value, Argument()),
            "lower" => value is string s && s == s.ToLowerInvariant(),
            "upper" => value is string u && u == u.ToUpperInvariant(),
            _ => throw new InvalidOperationException($"unknown test '{name}'"),
        };
    }
}
