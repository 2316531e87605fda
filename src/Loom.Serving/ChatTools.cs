using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>
/// Function calling and JSON answers over Loom's chat template. The functions of <see cref="ChatOptions.Tools"/> are offered in
/// the system turn (<see cref="ChatTemplate.ToolsBlock"/>), and the answer is constrained to one JSON object: a call
/// <c>{"name": const, "arguments": that function's parameters schema}</c>, or with <see cref="ChatToolMode.Auto"/> also a plain
/// answer <c>{"content": string}</c>. <see cref="ChatToolMode.None"/> offers nothing and constrains nothing. Without tools,
/// <see cref="ChatOptions.ResponseFormat"/> Json becomes a JSON Schema format (<c>{"type":"object"}</c> when it has no schema).
/// </summary>
public sealed class ChatTools
{
    ChatTools(IReadOnlyList<AIFunctionDeclaration> functions, OutputFormat format)
    {
        Functions = functions;
        Format = format;
    }

    /// <summary>The functions the answer may call.</summary>
    public IReadOnlyList<AIFunctionDeclaration> Functions { get; }

    /// <summary>The format that constrains the answer to a call (or a plain answer under auto).</summary>
    public OutputFormat Format { get; }

    /// <summary>
    /// The tools a request offers, or null when it offers none (no tools, or <see cref="ChatToolMode.None"/>).
    /// Throws <see cref="ChatRequestException"/> for a tool that is not a function declaration or a required function that is not offered.
    /// </summary>
    public static ChatTools? From(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } tools || options.ToolMode is NoneChatToolMode) return null;
        var functions = new List<AIFunctionDeclaration>();
        foreach (var tool in tools)
        {
            if (tool is not AIFunctionDeclaration function)
                throw new ChatRequestException("ChatOptions.Tools", $"ChatOptions.Tools: '{tool.Name}' is not a function declaration");
            functions.Add(function);
        }
        JsonObject format = options.ToolMode switch
        {
            RequiredChatToolMode { RequiredFunctionName: string name } => Call(functions.FirstOrDefault(f => f.Name == name)
                ?? throw new ChatRequestException("ChatOptions.ToolMode", $"ChatOptions.ToolMode requires function '{name}', which is not among ChatOptions.Tools"), ""),
            RequiredChatToolMode when functions.Count == 1 => Call(functions[0], ""),
            RequiredChatToolMode => AnyOf(functions.Select((f, i) => Call(f, $"/anyOf/{i}"))),
            _ => AnyOf([.. functions.Select((f, i) => Call(f, $"/anyOf/{i}")), PlainAnswer()]),
        };
        return new ChatTools(functions, new OutputFormat { JsonSchema = ToElement(format) });
    }

    /// <summary>The format <see cref="ChatOptions.ResponseFormat"/> asks for: null for text, a JSON Schema for Json.</summary>
    public static OutputFormat? ResponseFormat(ChatOptions? options) => options?.ResponseFormat switch
    {
        ChatResponseFormatJson { Schema: JsonElement schema } => new OutputFormat { JsonSchema = schema },
        ChatResponseFormatJson => new OutputFormat { JsonSchema = ToElement(new JsonObject { ["type"] = "object" }) },
        _ => null,
    };

    /// <summary>The system-turn text that offers the functions.</summary>
    public string Block() => ChatTemplate.ToolsBlock(Functions.Select(f => new JsonObject
    {
        ["name"] = f.Name,
        ["description"] = f.Description,
        ["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText()),
    }.ToJsonString()));

    /// <summary>
    /// The answer read back: a <see cref="FunctionCallContent"/> for a call of an offered function, the text of a plain
    /// <c>{"content": …}</c> answer, or the text itself when it is neither (a model that ignored the format).
    /// </summary>
    public AIContent Parse(string text)
    {
        try
        {
            if (JsonNode.Parse(text) is JsonObject answer)
            {
                if (answer["name"] is JsonValue name && name.TryGetValue<string>(out var function) && Functions.Any(f => f.Name == function))
                {
                    var arguments = answer["arguments"] is JsonObject args
                        ? args.ToDictionary(p => p.Key, p => (object?)(p.Value is null ? null : JsonSerializer.SerializeToElement(p.Value)))
                        : new Dictionary<string, object?>();
                    return new FunctionCallContent(NewCallId(), function, arguments);
                }
                if (answer["content"] is JsonValue content && content.TryGetValue<string>(out var words)) return new TextContent(words);
            }
        }
        catch (JsonException)
        {
            // not JSON: the text as it is
        }
        return new TextContent(text);
    }

    /// <summary>A call's JSON as the model writes it, for an assistant turn that called a function.</summary>
    public static string CallJson(FunctionCallContent call) => new JsonObject
    {
        ["name"] = call.Name,
        ["arguments"] = JsonSerializer.SerializeToNode(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions),
    }.ToJsonString();

    /// <summary>A function result as the text of a tool turn.</summary>
    public static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null => "null",
        string text => text,
        JsonElement element => element.GetRawText(),
        var other => JsonSerializer.Serialize(other, AIJsonUtilities.DefaultOptions),
    };

    /// <summary>An OpenAI-style call id: <c>call_</c> and 24 hex digits.</summary>
    public static string NewCallId() => "call_" + Guid.NewGuid().ToString("N")[..24];

    /// <summary>The schema of a call to the function, for a place <paramref name="at"/> (a JSON pointer) in the whole format.</summary>
    static JsonObject Call(AIFunctionDeclaration function, string at) => new()
    {
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["name"] = new JsonObject { ["const"] = function.Name },
            ["arguments"] = Embedded(function.JsonSchema, at + "/properties/arguments"),
        },
        ["required"] = new JsonArray("name", "arguments"),
        ["additionalProperties"] = false,
    };

    static JsonObject PlainAnswer() => new()
    {
        ["type"] = "object",
        ["properties"] = new JsonObject { ["content"] = new JsonObject { ["type"] = "string" } },
        ["required"] = new JsonArray("content"),
        ["additionalProperties"] = false,
    };

    /// <summary>
    /// A function's parameters schema moved to <paramref name="path"/> inside a larger schema: its own root keywords
    /// (<c>$schema</c>, <c>$id</c>) go, and its local references (<c>#/$defs/X</c>, <c>#/properties/a</c>, as
    /// zod-to-json-schema writes them) point into the new place.
    /// </summary>
    static JsonNode? Embedded(JsonElement parameters, string path)
    {
        var schema = JsonNode.Parse(parameters.GetRawText());
        if (schema is JsonObject root)
        {
            root.Remove("$schema");
            root.Remove("$id");
        }
        Rebase(schema, path);
        return schema;

        static void Rebase(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject o:
                    if (o["$ref"] is JsonValue v && v.TryGetValue<string>(out var reference) && reference.StartsWith('#'))
                        o["$ref"] = "#" + path + reference[1..];
                    foreach (var (_, child) in o.ToList()) Rebase(child, path);
                    break;
                case JsonArray a:
                    foreach (var child in a) Rebase(child, path);
                    break;
            }
        }
    }

    static JsonObject AnyOf(IEnumerable<JsonObject> schemas) => new() { ["anyOf"] = new JsonArray([.. schemas]) };

    static JsonElement ToElement(JsonNode node) => JsonSerializer.SerializeToElement(node);
}
