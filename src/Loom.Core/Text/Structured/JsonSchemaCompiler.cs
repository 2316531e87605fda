using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Loom.Text.Structured;

/// <summary>
/// Compiles a JSON Schema to a byte automaton of the compact JSON text that validates against it.
/// The output has no whitespace, object properties in the schema's order, strings without \u
/// escapes, integers of at most 15 digits and decimals of at most 6 fraction digits (no exponent).
/// Supported keywords: type (a name or a list), enum, const, properties, required,
/// additionalProperties (true or false: only listed properties are generated either way), items
/// (a schema or a boolean), prefixItems, minItems, maxItems, anyOf, oneOf (only when no value can match
/// two of its branches: different types, different const/enum values, or an object property that one
/// branch requires and another excludes or fixes to a different value; else refused, since generating
/// it like anyOf could produce a value that matches two), pattern (the whole string matches), minLength, maxLength,
/// minimum, maximum, exclusiveMinimum, exclusiveMaximum, $ref (local "#..." pointers) with $defs or
/// definitions, and the annotations title, description, default, examples, $comment, deprecated,
/// readOnly, writeOnly ($schema and $id at the root). Every other keyword throws
/// <see cref="SchemaNotSupportedException"/> naming it and its JSON path.
/// </summary>
internal sealed class JsonSchemaCompiler
{
    const long IntegerLimit = 999_999_999_999_999;
    const int FractionDigits = 6;
    /// <summary>Above this many copies of a string character or an array item, the copies call one rule instead.</summary>
    const int InlineCopies = 8;

    static readonly HashSet<string> Annotations = ["title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"];
    static readonly HashSet<string> Keywords =
    [
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
        "anyOf", "oneOf", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "$ref", "$defs", "definitions",
    ];
    static readonly string[] ObjectKeywords = ["properties", "required", "additionalProperties"];
    static readonly string[] ArrayKeywords = ["items", "prefixItems", "minItems", "maxItems"];
    static readonly string[] StringKeywords = ["pattern", "minLength", "maxLength"];
    static readonly string[] NumberKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
    static readonly JsonWriterOptions CompactWriter = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    readonly JsonElement root;
    readonly ByteAutomaton automaton = new();
    readonly Dictionary<string, int> refRules = new(StringComparer.Ordinal);
    int anyValueRule = -1;
    int stringCharRule = -1;

    JsonSchemaCompiler(JsonElement root) => this.root = root;

    public static Grammar Compile(JsonElement schema, GrammarOptions? options)
    {
        CheckKeywords(schema, "#", isRoot: true);
        var compiler = new JsonSchemaCompiler(schema);
        int rule = compiler.RefRule("#", "#");
        return new Grammar(compiler.automaton, rule, options);
    }

    // Pass 1: every keyword anywhere in the schema (unused $defs included) must be in the subset.
    static void CheckKeywords(JsonElement schema, string path, bool isRoot)
    {
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False) return;
        if (schema.ValueKind != JsonValueKind.Object) throw new SchemaNotSupportedException($"the schema at {path} must be an object or a boolean");
        foreach (var property in schema.EnumerateObject())
        {
            string name = property.Name;
            if (!Keywords.Contains(name) && !Annotations.Contains(name) && !(isRoot && name is "$schema" or "$id"))
                throw new SchemaNotSupportedException($"unsupported JSON Schema keyword '{name}' at {path}");
            var value = property.Value;
            switch (name)
            {
                case "properties" or "$defs" or "definitions":
                    if (value.ValueKind != JsonValueKind.Object) throw new SchemaNotSupportedException($"'{name}' at {path} must be an object");
                    foreach (var child in value.EnumerateObject()) CheckKeywords(child.Value, $"{path}/{name}/{Escape(child.Name)}", false);
                    break;
                case "prefixItems" or "anyOf" or "oneOf":
                    if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0) throw new SchemaNotSupportedException($"'{name}' at {path} must be a non-empty array of schemas");
                    int i = 0;
                    foreach (var child in value.EnumerateArray()) CheckKeywords(child, $"{path}/{name}/{i++}", false);
                    break;
                case "items":
                    if (value.ValueKind == JsonValueKind.Array) throw new SchemaNotSupportedException($"'items' at {path} must be a schema or a boolean (use 'prefixItems' for tuples)");
                    CheckKeywords(value, $"{path}/items", false);
                    break;
                case "additionalProperties":
                    if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                        throw new SchemaNotSupportedException($"'additionalProperties' at {path} must be true or false (a schema is not supported)");
                    break;
            }
        }
    }

    static string Escape(string name) => name.Replace("~", "~0").Replace("/", "~1");

    int RefRule(string reference, string path)
    {
        if (refRules.TryGetValue(reference, out int known)) return known;
        if (!reference.StartsWith('#')) throw new SchemaNotSupportedException($"'$ref' at {path} must be a local pointer starting with '#', got '{reference}'");
        if (!TryPointer(reference, out var target)) throw new SchemaNotSupportedException($"'$ref' at {path} points to '{reference}', which does not exist");
        int rule = automaton.NewRule();
        refRules[reference] = rule;
        automaton.DefineRule(rule, Value(target, reference));
        return rule;
    }

    Fragment Value(JsonElement schema, string path)
    {
        if (schema.ValueKind == JsonValueKind.True) return AnyValue();
        if (schema.ValueKind == JsonValueKind.False) throw new SchemaNotSupportedException($"the schema at {path} is false and admits no value");
        var constraints = schema.EnumerateObject().Select(p => p.Name)
            .Where(n => !Annotations.Contains(n) && n is not ("$defs" or "definitions" or "$schema" or "$id")).ToList();

        if (schema.TryGetProperty("$ref", out var reference))
        {
            if (constraints.FirstOrDefault(n => n != "$ref") is string other) throw new SchemaNotSupportedException($"'$ref' with the sibling keyword '{other}' at {path}");
            if (reference.ValueKind != JsonValueKind.String) throw new SchemaNotSupportedException($"'$ref' at {path} must be a string");
            return automaton.Call(RefRule(reference.GetString()!, path));
        }
        foreach (string combinator in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (!schema.TryGetProperty(combinator, out var branches)) continue;
            if (constraints.FirstOrDefault(n => n != combinator) is string other) throw new SchemaNotSupportedException($"'{combinator}' combined with '{other}' at {path}");
            if (combinator == "oneOf") RequireDisjoint(branches, path);
            int i = 0;
            return automaton.Choice([.. branches.EnumerateArray().Select(b => Value(b, $"{path}/{combinator}/{i++}"))]);
        }

        var types = Types(schema, path);
        if (schema.TryGetProperty("const", out var constant) || schema.TryGetProperty("enum", out _))
        {
            var values = new List<JsonElement>();
            if (schema.TryGetProperty("enum", out var enumeration))
            {
                if (enumeration.ValueKind != JsonValueKind.Array || enumeration.GetArrayLength() == 0) throw new SchemaNotSupportedException($"'enum' at {path} must be a non-empty array");
                values.AddRange(enumeration.EnumerateArray());
            }
            if (schema.TryGetProperty("const", out _)) values = values.Count == 0 || values.Any(v => JsonElement.DeepEquals(v, constant)) ? [constant] : [];
            var allowed = values.Where(v => types is null || types.Any(t => HasType(v, t))).ToList();
            if (allowed.Count == 0) throw new SchemaNotSupportedException($"no value of 'enum'/'const' at {path} fits its other keywords");
            return automaton.Choice([.. allowed.Select(v => automaton.Literal(Compact(v)))]);
        }
        if (types is null) return AnyValue();
        return automaton.Choice([.. types.Select(t => Typed(t, schema, path))]);
    }

    /// <summary>
    /// Refuses a oneOf unless no value can match two of its branches (as far as a simple test can tell): generating
    /// it as a choice must never yield a value that validates against more than one branch.
    /// </summary>
    void RequireDisjoint(JsonElement branches, string path)
    {
        var list = branches.EnumerateArray().Select(Resolve).ToList();
        for (int a = 0; a < list.Count; a++)
            for (int b = a + 1; b < list.Count; b++)
                if (!Disjoint(list[a], list[b]))
                    throw new SchemaNotSupportedException(
                        $"'oneOf' at {path}: branches {a} and {b} may both match one value; Loom generates oneOf only when its branches are told apart by type, by const/enum values, or by a required property (use anyOf otherwise)");
    }

    /// <summary>The schema a branch stands for, following local $ref pointers.</summary>
    JsonElement Resolve(JsonElement schema)
    {
        for (int hops = 0; hops < 32 && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var reference)
            && reference.ValueKind == JsonValueKind.String && TryPointer(reference.GetString()!, out var target); hops++)
            schema = target;
        return schema;
    }

    /// <summary>The element a local JSON pointer (<c>#/a/0/b</c>) names in the root schema.</summary>
    bool TryPointer(string reference, out JsonElement target)
    {
        target = root;
        if (!reference.StartsWith('#')) return false;
        foreach (var raw in reference[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            if (target.ValueKind == JsonValueKind.Object && target.TryGetProperty(part, out var child)) target = child;
            else if (target.ValueKind == JsonValueKind.Array && int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int index) && index < target.GetArrayLength())
                target = target[index];
            else return false;
        }
        return true;
    }

    /// <summary>Whether no JSON value can validate against both schemas (false when unsure).</summary>
    bool Disjoint(JsonElement a, JsonElement b)
    {
        if (a.ValueKind != JsonValueKind.Object || b.ValueKind != JsonValueKind.Object) return false;
        var (literalsA, literalsB, kindsA, kindsB) = (Literals(a), Literals(b), Kinds(a), Kinds(b));
        if (literalsA is not null && literalsB is not null) return !literalsA.Overlaps(literalsB);
        if (kindsA is not null && kindsB is not null && !kindsA.Overlaps(kindsB)) return true;
        if (literalsA is not null && kindsB is not null && literalsA.All(v => !kindsB.Contains(KindOf(v)))) return true;
        if (literalsB is not null && kindsA is not null && literalsB.All(v => !kindsA.Contains(KindOf(v)))) return true;
        return ObjectsDisjoint(a, b) || ObjectsDisjoint(b, a);
    }

    /// <summary>
    /// Two object schemas are disjoint when a property one requires is one the other does not list while allowing no
    /// additional properties, or when both require a property whose const/enum values differ.
    /// </summary>
    bool ObjectsDisjoint(JsonElement a, JsonElement b)
    {
        if (Kinds(a) is not { Count: 1 } ka || !ka.Contains("object") || Kinds(b) is not { Count: 1 } kb || !kb.Contains("object")) return false;
        var requiredA = Required(a);
        var requiredB = Required(b);
        bool closedB = b.TryGetProperty("additionalProperties", out var extra) && extra.ValueKind == JsonValueKind.False;
        b.TryGetProperty("properties", out var propertiesB);
        a.TryGetProperty("properties", out var propertiesA);
        foreach (var name in requiredA)
        {
            bool listedInB = propertiesB.ValueKind == JsonValueKind.Object && propertiesB.TryGetProperty(name, out _);
            if (closedB && !listedInB) return true;
            if (!requiredB.Contains(name) || propertiesA.ValueKind != JsonValueKind.Object || !listedInB) continue;
            if (propertiesA.TryGetProperty(name, out var pa) && propertiesB.TryGetProperty(name, out var pb) && Disjoint(Resolve(pa), Resolve(pb))) return true;
        }
        return false;
    }

    static HashSet<string> Required(JsonElement schema) =>
        schema.TryGetProperty("required", out var required) && required.ValueKind == JsonValueKind.Array
            ? [.. required.EnumerateArray().Where(r => r.ValueKind == JsonValueKind.String).Select(r => r.GetString()!)]
            : [];

    /// <summary>The compact JSON of every value a const/enum schema allows, or null when it has neither.</summary>
    static HashSet<string>? Literals(JsonElement schema)
    {
        if (schema.TryGetProperty("const", out var constant)) return [System.Text.Encoding.UTF8.GetString(Compact(constant))];
        if (schema.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array)
            return [.. values.EnumerateArray().Select(v => System.Text.Encoding.UTF8.GetString(Compact(v)))];
        return null;
    }

    /// <summary>The JSON kinds a schema allows (integer counts as number), or null for any kind.</summary>
    static HashSet<string>? Kinds(JsonElement schema)
    {
        if (schema.TryGetProperty("anyOf", out _) || schema.TryGetProperty("oneOf", out _) || schema.TryGetProperty("$ref", out _)) return null;
        List<string>? types;
        try { types = Types(schema, "#"); }
        catch (SchemaNotSupportedException) { return null; }
        return types is null ? null : [.. types.Select(t => t == "integer" ? "number" : t)];
    }

    static string KindOf(string compact) => compact[0] switch
    {
        '{' => "object",
        '[' => "array",
        '"' => "string",
        'n' => "null",
        't' or 'f' => "boolean",
        _ => "number",
    };

    /// <summary>The types the schema allows: its 'type', else those its keywords imply, else null (any value).</summary>
    static List<string>? Types(JsonElement schema, string path)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            if (type.ValueKind == JsonValueKind.String) return [type.GetString()!];
            if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0 && type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String))
                return [.. type.EnumerateArray().Select(t => t.GetString()!).Distinct()];
            throw new SchemaNotSupportedException($"'type' at {path} must be a type name or a non-empty array of them");
        }
        var implied = new List<string>();
        bool Has(string[] keywords) => keywords.Any(k => schema.TryGetProperty(k, out _));
        if (Has(ObjectKeywords)) implied.Add("object");
        if (Has(ArrayKeywords)) implied.Add("array");
        if (Has(StringKeywords)) implied.Add("string");
        if (Has(NumberKeywords)) implied.Add("number");
        return implied.Count == 0 ? null : implied;
    }

    static bool HasType(JsonElement value, string type) => type switch
    {
        "null" => value.ValueKind == JsonValueKind.Null,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && double.IsInteger(value.GetDouble()),
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        _ => false,
    };

    static byte[] Compact(JsonElement value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, CompactWriter)) value.WriteTo(writer);
        return buffer.WrittenSpan.ToArray();
    }

    Fragment Typed(string type, JsonElement schema, string path) => type switch
    {
        "null" => automaton.Literal("null"),
        "boolean" => automaton.Choice([automaton.Literal("true"), automaton.Literal("false")]),
        "integer" => Integer(schema, path),
        "number" => Number(schema, path),
        "string" => String(schema, path),
        "array" => Array(schema, path),
        "object" => Object(schema, path),
        _ => throw new SchemaNotSupportedException($"unknown type '{type}' at {path}/type"),
    };

    // ---- numbers ----

    static double? Bound(JsonElement schema, string name, string path)
    {
        if (!schema.TryGetProperty(name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Number) throw new SchemaNotSupportedException($"'{name}' at {path} must be a number");
        return value.GetDouble();
    }

    static long Clamp(double value) => (long)Math.Clamp(value, -IntegerLimit, IntegerLimit);

    /// <summary>The least and greatest integers inside the schema's bounds, within ±IntegerLimit.</summary>
    static (long Lo, long Hi) IntegerBounds(JsonElement schema, string path)
    {
        long lo = -IntegerLimit, hi = IntegerLimit;
        if (Bound(schema, "minimum", path) is double min) lo = Math.Max(lo, Clamp(Math.Ceiling(min)));
        if (Bound(schema, "exclusiveMinimum", path) is double exMin) lo = Math.Max(lo, Clamp(Math.Floor(exMin) + 1));
        if (Bound(schema, "maximum", path) is double max) hi = Math.Min(hi, Clamp(Math.Floor(max)));
        if (Bound(schema, "exclusiveMaximum", path) is double exMax) hi = Math.Min(hi, Clamp(Math.Ceiling(exMax) - 1));
        return (lo, hi);
    }

    Fragment Integer(JsonElement schema, string path)
    {
        var (lo, hi) = IntegerBounds(schema, path);
        if (lo > hi) throw new SchemaNotSupportedException($"no integer satisfies the bounds at {path}");
        return IntegerRange(lo, hi);
    }

    /// <summary>
    /// Integers in range, plus decimals I.f (and -I.f) for every whole part I whose unit interval lies
    /// inside the bounds, so no fraction can step over a bound.
    /// </summary>
    Fragment Number(JsonElement schema, string path)
    {
        var (lo, hi) = IntegerBounds(schema, path);
        double? min = Bound(schema, "minimum", path), exMin = Bound(schema, "exclusiveMinimum", path);
        double? max = Bound(schema, "maximum", path), exMax = Bound(schema, "exclusiveMaximum", path);
        // Positive I.f lies in [I, I+1): I >= lower bound (lo), I + 1 <= upper bound.
        long positiveLo = Math.Max(0, lo);
        long positiveHi = Math.Min(IntegerLimit, Math.Min(max is double a ? Clamp(Math.Floor(a)) - 1 : IntegerLimit, exMax is double b ? Clamp(Math.Floor(b)) - 1 : IntegerLimit));
        // Negative -I.f lies in (-(I+1), -I]: -I within the upper bound, -(I+1) >= lower bound.
        long negativeLo = Math.Max(0, -hi);
        long negativeHi = Math.Min(IntegerLimit, Math.Min(min is double c ? Clamp(Math.Floor(-c)) - 1 : IntegerLimit, exMin is double d ? Clamp(Math.Floor(-d)) - 1 : IntegerLimit));
        var alternatives = new List<Fragment>();
        if (lo <= hi) alternatives.Add(IntegerRange(lo, hi));
        if (positiveLo <= positiveHi) alternatives.Add(automaton.Sequence(NonNegativeRange(positiveLo, positiveHi), Fraction()));
        if (negativeLo <= negativeHi) alternatives.Add(automaton.Sequence(automaton.Literal("-"), NonNegativeRange(negativeLo, negativeHi), Fraction()));
        if (alternatives.Count == 0) throw new SchemaNotSupportedException($"the bounds at {path} admit no integer and no whole unit interval of decimals");
        return automaton.Choice(alternatives);
    }

    Fragment Fraction() => automaton.Sequence(automaton.Literal("."), automaton.Repeat(() => automaton.Range((byte)'0', (byte)'9'), 1, FractionDigits));

    Fragment IntegerRange(long lo, long hi)
    {
        var alternatives = new List<Fragment>();
        if (hi >= 0) alternatives.Add(NonNegativeRange(Math.Max(lo, 0), hi));
        if (lo < 0) alternatives.Add(automaton.Sequence(automaton.Literal("-"), NonNegativeRange(Math.Max(1, -hi), -lo)));
        return alternatives.Count == 1 ? alternatives[0] : automaton.Choice(alternatives);
    }

    /// <summary>The decimal spellings (no leading zeros) of the integers in [lo, hi], 0 &lt;= lo &lt;= hi.</summary>
    Fragment NonNegativeRange(long lo, long hi)
    {
        if (lo <= 1 && hi == IntegerLimit)
        {
            // Unbounded above: [1-9][0-9]{0,14} (and "0"), a few states instead of one branch per length.
            var positive = automaton.Sequence(automaton.Range((byte)'1', (byte)'9'),
                automaton.Repeat(() => automaton.Range((byte)'0', (byte)'9'), 0, IntegerLimit.ToString(CultureInfo.InvariantCulture).Length - 1));
            return lo == 0 ? automaton.Choice([automaton.Literal("0"), positive]) : positive;
        }
        var alternatives = new List<Fragment>();
        int loDigits = lo.ToString(CultureInfo.InvariantCulture).Length, hiDigits = hi.ToString(CultureInfo.InvariantCulture).Length;
        for (int digits = loDigits; digits <= hiDigits; digits++)
        {
            long first = digits == 1 ? 0 : Pow10(digits - 1), last = Pow10(digits) - 1;
            long a = Math.Max(lo, first), b = Math.Min(hi, last);
            if (a <= b) alternatives.Add(SameLength(a.ToString(CultureInfo.InvariantCulture), b.ToString(CultureInfo.InvariantCulture)));
        }
        return alternatives.Count == 1 ? alternatives[0] : automaton.Choice(alternatives);
    }

    static long Pow10(int n)
    {
        long value = 1;
        for (int i = 0; i < n; i++) value *= 10;
        return value;
    }

    /// <summary>Digit strings of one length between a and b (as strings of that length), split at the first differing digit.</summary>
    Fragment SameLength(string a, string b)
    {
        if (a.Length == 0) return automaton.Empty();
        if (a[0] == b[0]) return automaton.Sequence(automaton.Literal(a[..1]), SameLength(a[1..], b[1..]));
        string rest = a[1..], restHi = b[1..];
        if (rest.All(c => c == '0') && restHi.All(c => c == '9'))
            return automaton.Sequence(automaton.Range((byte)a[0], (byte)b[0]), Digits(rest.Length));
        var alternatives = new List<Fragment>
        {
            automaton.Sequence(automaton.Literal(a[..1]), SameLength(rest, new string('9', rest.Length))),
        };
        if (b[0] - a[0] > 1) alternatives.Add(automaton.Sequence(automaton.Range((byte)(a[0] + 1), (byte)(b[0] - 1)), Digits(rest.Length)));
        alternatives.Add(automaton.Sequence(automaton.Literal(b[..1]), SameLength(new string('0', restHi.Length), restHi)));
        return automaton.Choice(alternatives);
    }

    Fragment Digits(int count) => automaton.Repeat(() => automaton.Range((byte)'0', (byte)'9'), count, count);

    // ---- strings ----

    static int? Count(JsonElement schema, string name, string path)
    {
        if (!schema.TryGetProperty(name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int count) || count < 0)
            throw new SchemaNotSupportedException($"'{name}' at {path} must be a non-negative integer");
        return count;
    }

    Fragment String(JsonElement schema, string path)
    {
        var quote = () => automaton.Literal("\"");
        int? minLength = Count(schema, "minLength", path), maxLength = Count(schema, "maxLength", path);
        if (schema.TryGetProperty("pattern", out var pattern))
        {
            if (pattern.ValueKind != JsonValueKind.String) throw new SchemaNotSupportedException($"'pattern' at {path} must be a string");
            if (minLength is not null || maxLength is not null)
                throw new SchemaNotSupportedException($"'pattern' together with '{(minLength is null ? "maxLength" : "minLength")}' at {path} (bound the length inside the pattern)");
            var node = RegexCompiler.Parse(pattern.GetString()!, $"{path}/pattern");
            return automaton.Sequence(quote(), RegexCompiler.Build(node, automaton, jsonString: true), quote());
        }
        if (minLength > maxLength) throw new SchemaNotSupportedException($"'minLength' {minLength} exceeds 'maxLength' {maxLength} at {path}");
        return automaton.Sequence(quote(), automaton.Repeat(StringChar(Math.Max(minLength ?? 0, maxLength ?? 0)), minLength ?? 0, maxLength), quote());
    }

    /// <summary>
    /// Builds one character of a JSON string: inline for a few copies, else a call of one shared rule, so a
    /// long length bound costs a handful of states per character instead of a copy of the UTF-8 automaton.
    /// </summary>
    Func<Fragment> StringChar(int copies)
    {
        if (copies <= InlineCopies) return () => CharSet.All.ToJsonStringUtf8(automaton);
        if (stringCharRule < 0)
        {
            stringCharRule = automaton.NewRule();
            automaton.DefineRule(stringCharRule, CharSet.All.ToJsonStringUtf8(automaton));
        }
        return () => automaton.Call(stringCharRule);
    }

    // ---- arrays ----

    Fragment Array(JsonElement schema, string path)
    {
        var prefix = schema.TryGetProperty("prefixItems", out var p) ? p.EnumerateArray().ToList() : [];
        JsonElement? items = schema.TryGetProperty("items", out var i) ? i : null;
        bool itemsAllowed = items is not { ValueKind: JsonValueKind.False };
        int min = Count(schema, "minItems", path) ?? 0;
        int? max = Count(schema, "maxItems", path);
        if (!itemsAllowed) max = Math.Min(max ?? prefix.Count, prefix.Count);
        if (min > max) throw new SchemaNotSupportedException($"no array length satisfies 'minItems' {min} and the items allowed at {path}");

        // Many copies of the items schema call one rule (a long minItems/maxItems stays small).
        int itemRule = -1;
        if (items is JsonElement shared && (max ?? min) - prefix.Count > InlineCopies)
        {
            itemRule = automaton.NewRule();
            automaton.DefineRule(itemRule, Value(shared, $"{path}/items"));
        }

        Fragment Element(int index) => index < prefix.Count
            ? Value(prefix[index], $"{path}/prefixItems/{index}")
            : itemRule >= 0 ? automaton.Call(itemRule)
            : items is JsonElement schemaOfItems ? Value(schemaOfItems, $"{path}/items") : AnyValue();

        Fragment Tail(int index)
        {
            if (index >= max) return automaton.Empty();
            if (max is null && index >= prefix.Count && index >= min)
                return automaton.Repeat(() => automaton.Sequence(automaton.Literal(","), Element(index)), 0, null);
            var part = automaton.Sequence(automaton.Literal(","), Element(index), Tail(index + 1));
            return index >= min ? automaton.Optional(part) : part;
        }

        if (max == 0) return automaton.Literal("[]");
        var body = automaton.Sequence(Element(0), Tail(1));
        return automaton.Sequence(automaton.Literal("["), min == 0 ? automaton.Optional(body) : body, automaton.Literal("]"));
    }

    // ---- objects ----

    Fragment Object(JsonElement schema, string path)
    {
        bool closed = schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False;
        var required = new List<string>();
        if (schema.TryGetProperty("required", out var requiredList))
        {
            if (requiredList.ValueKind != JsonValueKind.Array || requiredList.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                throw new SchemaNotSupportedException($"'required' at {path} must be an array of property names");
            required.AddRange(requiredList.EnumerateArray().Select(r => r.GetString()!).Distinct());
        }
        bool hasProperties = schema.TryGetProperty("properties", out var properties);
        if (!hasProperties && !closed && required.Count == 0) return AnyObject();

        var members = new List<(string Name, JsonElement? Schema, bool Required)>();
        if (hasProperties)
            foreach (var property in properties.EnumerateObject())
                members.Add((property.Name, property.Value, required.Contains(property.Name)));
        foreach (string name in required.Where(r => !members.Any(m => m.Name == r)))
        {
            if (closed) throw new SchemaNotSupportedException($"required property '{name}' at {path} is not in 'properties' and 'additionalProperties' is false");
            members.Add((name, null, true));
        }

        // Two states per position: nothing written yet, or some property written (so the next needs a comma).
        int start = automaton.NewState();
        int? none = start, some = null;
        foreach (var (name, memberSchema, isRequired) in members)
        {
            int member = automaton.NewState();
            if (none is int n) automaton.Epsilon(n, member);
            if (some is int s) automaton.Epsilon(s, automaton.Sequence(Literal(","), new Fragment(member, member)).Start);
            var value = memberSchema is JsonElement m ? Value(m, $"{path}/properties/{Escape(name)}") : AnyValue();
            var written = automaton.Sequence(new Fragment(member, member), automaton.Literal(KeyBytes(name)), value);
            int afterSome = automaton.NewState();
            automaton.Epsilon(written.End, afterSome);
            if (!isRequired && some is int s2) automaton.Epsilon(s2, afterSome);
            int? afterNone = null;
            if (!isRequired && none is int n2)
            {
                afterNone = automaton.NewState();
                automaton.Epsilon(n2, afterNone.Value);
            }
            none = afterNone;
            some = afterSome;
        }
        int end = automaton.NewState();
        if (none is int last) automaton.Epsilon(last, end);
        if (some is int lastSome) automaton.Epsilon(lastSome, end);
        return automaton.Sequence(automaton.Literal("{"), new Fragment(start, end), automaton.Literal("}"));
    }

    Fragment Literal(string text) => automaton.Literal(text);

    static byte[] KeyBytes(string name)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, CompactWriter)) writer.WriteStringValue(name);
        return [.. buffer.WrittenSpan, (byte)':'];
    }

    // ---- free-form JSON ----

    /// <summary>Any JSON value (a call into one shared recursive rule).</summary>
    Fragment AnyValue()
    {
        if (anyValueRule < 0)
        {
            anyValueRule = automaton.NewRule();
            automaton.DefineRule(anyValueRule, automaton.Choice(
            [
                AnyObject(),
                AnyArray(),
                AnyString(),
                automaton.Sequence(IntegerRange(-IntegerLimit, IntegerLimit), automaton.Optional(Fraction())),
                automaton.Literal("true"),
                automaton.Literal("false"),
                automaton.Literal("null"),
            ]));
        }
        return automaton.Call(anyValueRule);
    }

    Fragment AnyString() => automaton.Sequence(automaton.Literal("\""), automaton.Repeat(() => CharSet.All.ToJsonStringUtf8(automaton), 0, null), automaton.Literal("\""));

    Fragment AnyObject()
    {
        Fragment Member() => automaton.Sequence(AnyString(), automaton.Literal(":"), AnyValue());
        var members = automaton.Sequence(Member(), automaton.Repeat(() => automaton.Sequence(automaton.Literal(","), Member()), 0, null));
        return automaton.Sequence(automaton.Literal("{"), automaton.Optional(members), automaton.Literal("}"));
    }

    Fragment AnyArray()
    {
        var elements = automaton.Sequence(AnyValue(), automaton.Repeat(() => automaton.Sequence(automaton.Literal(","), AnyValue()), 0, null));
        return automaton.Sequence(automaton.Literal("["), automaton.Optional(elements), automaton.Literal("]"));
    }
}
