using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Loom.Server;

/// <summary>A request the server refuses, with the HTTP status and OpenAI error fields it answers with.</summary>
public sealed class ApiException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = Message,
            ["type"] = Type,
            ["param"] = Param,
            ["code"] = Code,
        },
    };
}

/// <summary>A chat or completion request after parsing: every field typed and checked.</summary>
public sealed record CompletionCall(
    string Model,
    IReadOnlyList<Loom.Text.ChatTurn>? Messages,
    string? Prompt,
    bool Stream,
    int? MaxTokens,
    float? Temperature,
    float? TopP,
    int? Seed,
    int N,
    IReadOnlyList<string>? Stop,
    float FrequencyPenalty,
    float PresencePenalty,
    bool IncludeUsage);

/// <summary>The OpenAI dialect at the edge: JSON in, typed records out, and JSON back.</summary>
public static class OpenAiProtocol
{
    public static readonly JsonSerializerOptions Json = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static JsonObject ParseObject(ReadOnlySpan<byte> body)
    {
        if (!System.Text.Unicode.Utf8.IsValid(body))
            throw new ApiException(400, $"the request body is not valid UTF-8 (at byte {InvalidUtf8Offset(body)})");
        try
        {
            CheckStrings(body);
            return JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw new ApiException(400, "the request body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ApiException(400, $"malformed JSON in the request body: {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    /// <summary>The offset of the first byte that is not part of a valid UTF-8 sequence.</summary>
    static int InvalidUtf8Offset(ReadOnlySpan<byte> body)
    {
        System.Text.Unicode.Utf8.ToUtf16(body, new char[body.Length], out int read, out _, replaceInvalidSequences: false);
        return read;
    }

    /// <summary>
    /// Reads every string of the body once, so that an escaped lone surrogate (<c>"\ud800"</c>), which is valid JSON
    /// but no text, is a 400 naming its place instead of a failure deep inside a handler.
    /// </summary>
    static void CheckStrings(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName)) continue;
            try { reader.GetString(); }
            catch (InvalidOperationException)
            {
                throw new ApiException(400, $"a string at byte {reader.TokenStartIndex} of the request body is not valid text (a lone UTF-16 surrogate)");
            }
        }
    }

    /// <summary>Parses /v1/chat/completions (chat: true) or /v1/completions (chat: false).</summary>
    public static CompletionCall ParseCompletion(JsonObject body, bool chat)
    {
        string model = String(body, "model") ?? throw new ApiException(400, "missing field 'model'", param: "model");
        IReadOnlyList<Loom.Text.ChatTurn>? messages = null;
        string? prompt = null;
        if (chat)
        {
            if (body["messages"] is not JsonArray array || array.Count == 0)
                throw new ApiException(400, "'messages' must be a non-empty array", param: "messages");
            var turns = new List<Loom.Text.ChatTurn>();
            for (int i = 0; i < array.Count; i++)
            {
                if (array[i] is not JsonObject message) throw new ApiException(400, $"messages[{i}] must be an object", param: $"messages[{i}]");
                string role = String(message, "role") ?? throw new ApiException(400, $"messages[{i}].role is missing", param: $"messages[{i}].role");
                if (role == "developer") role = "system";
                if (role is not ("system" or "user" or "assistant"))
                    throw new ApiException(400, $"messages[{i}].role '{role.ReplaceLineEndings(" ")}' is not supported (system, user, assistant)", param: $"messages[{i}].role");
                turns.Add(new Loom.Text.ChatTurn(role, Content(message["content"], $"messages[{i}].content")));
            }
            messages = turns;
        }
        else
        {
            prompt = body["prompt"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray { Count: 1 } a when a[0] is JsonValue v && v.TryGetValue<string>(out var s) => s,
                null => throw new ApiException(400, "missing field 'prompt'", param: "prompt"),
                _ => throw new ApiException(400, "'prompt' must be a string", param: "prompt"),
            };
        }
        IReadOnlyList<string>? stop = body["stop"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a => a.Select((n, i) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new ApiException(400, $"stop[{i}] must be a string", param: "stop")).ToList(),
            _ => throw new ApiException(400, "'stop' must be a string or an array of strings", param: "stop"),
        };
        int? maxTokens = Int(body, "max_completion_tokens") ?? Int(body, "max_tokens");
        bool includeUsage = body["stream_options"] is JsonObject so && so["include_usage"] is JsonValue iu && iu.TryGetValue<bool>(out var b) && b;
        return new CompletionCall(
            model, messages, prompt,
            Bool(body, "stream") ?? false,
            maxTokens,
            Float(body, "temperature"),
            Float(body, "top_p"),
            Int(body, "seed"),
            Int(body, "n") ?? 1,
            stop,
            Float(body, "frequency_penalty") ?? 0f,
            Float(body, "presence_penalty") ?? 0f,
            includeUsage);
    }

    /// <summary>Parses /v1/embeddings: one string or an array of strings.</summary>
    public static (string Model, IReadOnlyList<string> Inputs) ParseEmbeddings(JsonObject body)
    {
        string model = String(body, "model") ?? throw new ApiException(400, "missing field 'model'", param: "model");
        IReadOnlyList<string> inputs = body["input"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a when a.Count > 0 => a.Select((n, i) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new ApiException(400, $"input[{i}] must be a string", param: "input")).ToList(),
            null => throw new ApiException(400, "missing field 'input'", param: "input"),
            _ => throw new ApiException(400, "'input' must be a string or a non-empty array of strings", param: "input"),
        };
        return (model, inputs);
    }

    static string Content(JsonNode? node, string field) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        // content parts: concatenate the text parts
        JsonArray parts => string.Concat(parts.Select((p, i) =>
            p is JsonObject o && String(o, "type") == "text" ? String(o, "text") ?? "" : throw new ApiException(400, $"{field}[{i}]: only text parts are supported", param: field))),
        null => "",
        _ => throw new ApiException(400, $"{field} must be a string", param: field),
    };

    static string? String(JsonObject o, string name) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new ApiException(400, $"'{name}' must be a string", param: name),
    };

    static int? Int(JsonObject o, string name) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<int>(out var i) => i,
        JsonValue v when v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
        _ => throw new ApiException(400, $"'{name}' must be an integer", param: name),
    };

    static float? Float(JsonObject o, string name) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<double>(out var d) => (float)d,
        _ => throw new ApiException(400, $"'{name}' must be a number", param: name),
    };

    static bool? Bool(JsonObject o, string name) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw new ApiException(400, $"'{name}' must be true or false", param: name),
    };
}
