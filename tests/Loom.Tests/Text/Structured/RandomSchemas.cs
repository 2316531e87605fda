using System.Text.Json.Nodes;

namespace Loom.Tests.Text.Structured;

/// <summary>
/// Random JSON Schemas inside the supported subset (seeded). Every string, array and recursion is
/// bounded so that any value the schema admits is a few hundred bytes at most: a sampled output
/// always ends well inside a test model's context.
/// </summary>
internal static class RandomSchemas
{
    static readonly string[] Names = ["id", "name", "age", "tags", "x", "y", "kind", "note", "é", "a b", "quote\"d", "value"];
    static readonly string[] Patterns = ["[a-z]{1,5}", "\\d{3}-\\d{2}", "(ab|cd){1,3}x?", "[A-Z][a-z]{0,4}", "(yes|no)", "[0-9a-f]{2,4}", "\\w{1,3}@\\w{1,3}\\.com", "[^\"\\\\]{0,3}"];

    public static JsonObject Generate(int seed)
    {
        var random = new Random(seed);
        var root = Schema(random, depth: 0);
        if (random.Next(4) == 0)
        {
            // A recursive list through $defs: each node may hold at most one child.
            root = new JsonObject
            {
                ["$defs"] = new JsonObject
                {
                    ["node"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject
                        {
                            ["v"] = Schema(random, depth: 2),
                            ["next"] = new JsonObject { ["$ref"] = "#/$defs/node" },
                        },
                        ["required"] = new JsonArray("v"),
                        ["additionalProperties"] = false,
                    },
                },
                ["type"] = "object",
                ["properties"] = new JsonObject { ["head"] = new JsonObject { ["$ref"] = "#/$defs/node" }, ["extra"] = root },
                ["required"] = new JsonArray("head"),
            };
        }
        return root;
    }

    static JsonObject Schema(Random random, int depth)
    {
        int kinds = depth >= 2 ? 9 : 13;
        switch (random.Next(kinds))
        {
            case 0:
            {
                int max = random.Next(4) == 0 ? random.Next(9, 20) : random.Next(0, 8);
                var schema = new JsonObject { ["type"] = "string", ["maxLength"] = max };
                if (random.Next(2) == 0) schema["minLength"] = random.Next(0, max + 1);
                return schema;
            }
            case 1:
                return new JsonObject { ["type"] = "string", ["pattern"] = Patterns[random.Next(Patterns.Length)] };
            case 2:
            {
                var schema = new JsonObject { ["type"] = "integer" };
                int min = random.Next(-50, 50);
                if (random.Next(2) == 0) schema[random.Next(2) == 0 ? "minimum" : "exclusiveMinimum"] = min;
                if (random.Next(2) == 0) schema[random.Next(2) == 0 ? "maximum" : "exclusiveMaximum"] = min + 2 + random.Next(200);
                return schema;
            }
            case 3:
            {
                var schema = new JsonObject { ["type"] = "number" };
                double min = random.Next(-40, 40) / 4.0;
                if (random.Next(2) == 0) schema[random.Next(2) == 0 ? "minimum" : "exclusiveMinimum"] = min;
                if (random.Next(2) == 0) schema[random.Next(2) == 0 ? "maximum" : "exclusiveMaximum"] = min + 3 + random.Next(100) / 4.0;
                return schema;
            }
            case 4:
                return new JsonObject { ["type"] = random.Next(2) == 0 ? "boolean" : "null" };
            case 5:
                return new JsonObject { ["enum"] = new JsonArray("red", "green", 3, null, "bl\"ue", 2.5, true) };
            case 6:
                return new JsonObject { ["const"] = random.Next(2) == 0 ? "fixed" : JsonValue.Create(42) };
            case 7:
                return new JsonObject { ["type"] = new JsonArray("string", "null"), ["maxLength"] = random.Next(1, 6) };
            case 8:
                return new JsonObject { ["type"] = new JsonArray("integer", "boolean"), ["minimum"] = 0, ["maximum"] = 9, ["description"] = "a digit or a flag" };
            case 9 or 10:
            {
                var properties = new JsonObject();
                var required = new JsonArray();
                int count = random.Next(1, 5);
                foreach (var name in Names.OrderBy(_ => random.Next()).Take(count))
                {
                    properties[name] = Schema(random, depth + 1);
                    if (random.Next(2) == 0) required.Add(name);
                }
                var schema = new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = required };
                if (random.Next(2) == 0) schema["additionalProperties"] = false;
                return schema;
            }
            case 11:
            {
                int min = random.Next(0, 3);
                var schema = new JsonObject { ["type"] = "array", ["items"] = Schema(random, depth + 1), ["minItems"] = min, ["maxItems"] = min + random.Next(0, 3) };
                if (random.Next(3) == 0) schema["prefixItems"] = new JsonArray(Schema(random, depth + 1), Schema(random, depth + 1));
                if (random.Next(4) == 0) { schema["items"] = false; schema["minItems"] = 0; }
                else if (random.Next(4) == 0) { schema["items"] = new JsonObject { ["type"] = "integer", ["minimum"] = 0, ["maximum"] = 9 }; schema["minItems"] = 9; schema["maxItems"] = 12; }
                return schema;
            }
            default:
            {
                // oneOf branches of distinct types never overlap; anyOf branches may.
                if (random.Next(2) == 0)
                    return new JsonObject { ["oneOf"] = new JsonArray(new JsonObject { ["type"] = "integer", ["maximum"] = 99 }, new JsonObject { ["type"] = "string", ["maxLength"] = 4 }, new JsonObject { ["type"] = "null" }) };
                return new JsonObject { ["anyOf"] = new JsonArray(Schema(random, depth + 1), Schema(random, depth + 1)) };
            }
        }
    }
}
