using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Loom.Evaluation;

/// <summary>
/// Checks JSON values against a JSON Schema in the subset structured output compiles (README "Structured output"): type,
/// enum, const, properties, required, additionalProperties, items, prefixItems, minItems, maxItems, anyOf, oneOf (exactly
/// one branch), pattern (an unanchored search, as JSON Schema says), minLength/maxLength (code points), minimum, maximum,
/// exclusiveMinimum, exclusiveMaximum, local $ref into $defs/definitions or any JSON pointer; annotations are ignored.
/// A keyword outside the subset is refused by name, as the compiler refuses it, rather than silently passed.
/// </summary>
public sealed class SchemaValidator
{
    static readonly HashSet<string> Annotations =
        ["title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "$schema", "$id", "$defs", "definitions"];

    readonly JsonElement root;

    public SchemaValidator(JsonElement schema)
    {
        root = schema.Clone();
        Check(root, "#");
    }

    /// <summary>Reads a schema file; errors name the file.</summary>
    public static SchemaValidator Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such schema file");
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            return new SchemaValidator(document.RootElement);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
    }

    /// <summary>The schema, for a request's response format.</summary>
    public JsonElement Schema => root;

    /// <summary>True when <paramref name="text"/> is one JSON value (surrounding white space allowed) that the schema accepts.</summary>
    public bool IsValid(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return Valid(root, document.RootElement);
        }
        catch (JsonException) { return false; }
    }

    public bool Valid(JsonElement value) => Valid(root, value);

    static void Check(JsonElement schema, string path)
    {
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False) return;
        if (schema.ValueKind != JsonValueKind.Object) throw new ArgumentException($"the schema at {path} is not an object or a boolean");
        foreach (var property in schema.EnumerateObject())
        {
            switch (property.Name)
            {
                case "type" or "enum" or "const" or "required" or "minItems" or "maxItems" or "pattern" or "minLength" or "maxLength"
                    or "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum" or "$ref":
                    break;
                case "properties":
                    foreach (var p in property.Value.EnumerateObject()) Check(p.Value, $"{path}/properties/{p.Name}");
                    break;
                case "additionalProperties" or "items":
                    if (property.Value.ValueKind == JsonValueKind.Array) throw new ArgumentException($"unsupported JSON Schema keyword '{property.Name}' (an array) at {path}");
                    Check(property.Value, $"{path}/{property.Name}");
                    break;
                case "prefixItems" or "anyOf" or "oneOf":
                    int i = 0;
                    foreach (var item in property.Value.EnumerateArray()) Check(item, $"{path}/{property.Name}/{i++}");
                    break;
                default:
                    if (!Annotations.Contains(property.Name)) throw new ArgumentException($"unsupported JSON Schema keyword '{property.Name}' at {path}");
                    if (property.Name is "$defs" or "definitions")
                        foreach (var d in property.Value.EnumerateObject()) Check(d.Value, $"{path}/{property.Name}/{d.Name}");
                    break;
            }
        }
    }

    bool Valid(JsonElement schema, JsonElement value, int depth = 0)
    {
        if (schema.ValueKind == JsonValueKind.True) return true;
        if (schema.ValueKind == JsonValueKind.False) return false;
        if (depth > 64) return false;
        foreach (var keyword in schema.EnumerateObject())
        {
            var s = keyword.Value;
            bool ok = keyword.Name switch
            {
                "type" => s.ValueKind == JsonValueKind.Array ? s.EnumerateArray().Any(t => IsType(t.GetString()!, value)) : IsType(s.GetString()!, value),
                "enum" => s.EnumerateArray().Any(e => JsonElement.DeepEquals(e, value)),
                "const" => JsonElement.DeepEquals(s, value),
                "$ref" => Valid(Resolve(s.GetString()!), value, depth + 1),
                "anyOf" => s.EnumerateArray().Any(branch => Valid(branch, value, depth + 1)),
                "oneOf" => s.EnumerateArray().Count(branch => Valid(branch, value, depth + 1)) == 1,
                "properties" => value.ValueKind != JsonValueKind.Object || value.EnumerateObject().All(p =>
                    !s.TryGetProperty(p.Name, out var sub) || Valid(sub, p.Value, depth + 1)),
                "required" => value.ValueKind != JsonValueKind.Object || s.EnumerateArray().All(name => value.TryGetProperty(name.GetString()!, out _)),
                "additionalProperties" => value.ValueKind != JsonValueKind.Object || value.EnumerateObject().All(p =>
                    (schema.TryGetProperty("properties", out var listed) && listed.TryGetProperty(p.Name, out _)) || Valid(s, p.Value, depth + 1)),
                "prefixItems" => value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Zip(s.EnumerateArray()).All(pair => Valid(pair.Second, pair.First, depth + 1)),
                "items" => value.ValueKind != JsonValueKind.Array || value.EnumerateArray()
                    .Skip(schema.TryGetProperty("prefixItems", out var prefix) ? prefix.GetArrayLength() : 0).All(item => Valid(s, item, depth + 1)),
                "minItems" => value.ValueKind != JsonValueKind.Array || value.GetArrayLength() >= s.GetInt32(),
                "maxItems" => value.ValueKind != JsonValueKind.Array || value.GetArrayLength() <= s.GetInt32(),
                "minLength" => value.ValueKind != JsonValueKind.String || CodePoints(value.GetString()!) >= s.GetInt32(),
                "maxLength" => value.ValueKind != JsonValueKind.String || CodePoints(value.GetString()!) <= s.GetInt32(),
                "pattern" => value.ValueKind != JsonValueKind.String || Regex.IsMatch(value.GetString()!, s.GetString()!, RegexOptions.None, TimeSpan.FromSeconds(1)),
                "minimum" => value.ValueKind != JsonValueKind.Number || Number(value) >= Number(s),
                "maximum" => value.ValueKind != JsonValueKind.Number || Number(value) <= Number(s),
                "exclusiveMinimum" => value.ValueKind != JsonValueKind.Number || Number(value) > Number(s),
                "exclusiveMaximum" => value.ValueKind != JsonValueKind.Number || Number(value) < Number(s),
                _ => true,
            };
            if (!ok) return false;
        }
        return true;
    }

    static bool IsType(string type, JsonElement value) => type switch
    {
        "null" => value.ValueKind == JsonValueKind.Null,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "string" => value.ValueKind == JsonValueKind.String,
        "array" => value.ValueKind == JsonValueKind.Array,
        "object" => value.ValueKind == JsonValueKind.Object,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal d) && d == decimal.Truncate(d),
        _ => throw new ArgumentException($"unknown JSON Schema type '{type}'"),
    };

    JsonElement Resolve(string reference)
    {
        if (!reference.StartsWith('#')) throw new ArgumentException($"$ref '{reference}' is not a local pointer");
        var node = root;
        foreach (string raw in reference[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string part = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            node = node.ValueKind == JsonValueKind.Array ? node[int.Parse(part, CultureInfo.InvariantCulture)]
                : node.TryGetProperty(part, out var next) ? next : throw new ArgumentException($"$ref '{reference}' points at nothing");
        }
        return node;
    }

    static double Number(JsonElement value) => value.TryGetDecimal(out decimal d) ? (double)d : value.GetDouble();

    static int CodePoints(string text)
    {
        int count = 0;
        for (int i = 0; i < text.Length; i++, count++) if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
        return count;
    }
}
