using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Loom.Serving;
using Microsoft.Extensions.AI;

namespace Loom.Server;

/// <summary>
/// A request the server refuses, with the HTTP status and OpenAI error fields it answers with. The message is one line
/// even when it quotes a request's own text (a role, a tool name, a format type) that holds line breaks.
/// </summary>
public sealed class ApiException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null)
    : Exception(message.ReplaceLineEndings(" "))
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
    IReadOnlyList<ChatMessage>? Messages,
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
    bool IncludeUsage)
{
    /// <summary>response_format: null or text leaves the answer free.</summary>
    public ChatResponseFormat? ResponseFormat { get; init; }
    /// <summary>tools, as function declarations; null when none.</summary>
    public IList<AITool>? Tools { get; init; }
    /// <summary>tool_choice; null is auto.</summary>
    public ChatToolMode? ToolMode { get; init; }
    /// <summary>Log-probabilities with this many alternatives per token (chat: top_logprobs; completions: logprobs); null for none.</summary>
    public int? TopLogprobs { get; init; }
    /// <summary>logit_bias: token id to bias.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
}

/// <summary>The OpenAI dialect at the edge: JSON in, typed records out, and JSON back.</summary>
public static class OpenAiProtocol
{
    /// <summary>Characters of one stop string at most: every generated character is matched against each of them.</summary>
    public const int MaxStopChars = 256;

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
            throw new ApiException(400, $"malformed JSON in the request body: {e.Message}");
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
        IReadOnlyList<ChatMessage>? messages = null;
        string? prompt = null;
        if (chat)
        {
            if (body["messages"] is not JsonArray array || array.Count == 0)
                throw new ApiException(400, "'messages' must be a non-empty array", param: "messages");
            var turns = new List<ChatMessage>();
            for (int i = 0; i < array.Count; i++)
            {
                if (array[i] is not JsonObject message) throw new ApiException(400, $"messages[{i}] must be an object", param: $"messages[{i}]");
                turns.Add(Message(message, $"messages[{i}]"));
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
        if (stop is { Count: > 4 }) throw new ApiException(400, $"'stop' holds at most 4 strings, got {stop.Count}", param: "stop");
        if (stop?.FirstOrDefault(s => s.Length > MaxStopChars) is string longStop)
            throw new ApiException(400, $"a 'stop' string has {longStop.Length} characters; at most {MaxStopChars}", param: "stop");
        int? maxTokens = Int(body, "max_completion_tokens") ?? Int(body, "max_tokens");
        if (maxTokens is < 1) throw new ApiException(400, $"max_tokens must be at least 1, got {maxTokens}", param: body["max_completion_tokens"] is null ? "max_tokens" : "max_completion_tokens");
        bool includeUsage = body["stream_options"] is JsonObject so && so["include_usage"] is JsonValue iu && iu.TryGetValue<bool>(out var b) && b;
        int n = Int(body, "n") ?? 1;
        if (n is < 1 or > 128) throw new ApiException(400, $"n must be between 1 and 128, got {n}", param: "n");
        float? temperature = Range(body, "temperature", 0, 2);
        float? topP = Range(body, "top_p", 0, 1);
        long? seed = Long(body, "seed");
        int? topLogprobs;
        if (chat)
        {
            bool logprobs = Bool(body, "logprobs") ?? false;
            topLogprobs = Int(body, "top_logprobs");
            if (topLogprobs is < 0 or > 20) throw new ApiException(400, $"top_logprobs must be between 0 and 20, got {topLogprobs}", param: "top_logprobs");
            if (topLogprobs is not null && !logprobs) throw new ApiException(400, "top_logprobs needs logprobs: true", param: "top_logprobs");
            if (logprobs) topLogprobs ??= 0;
        }
        else
        {
            topLogprobs = Int(body, "logprobs");
            if (topLogprobs is < 0 or > 20) throw new ApiException(400, $"logprobs must be between 0 and 20, got {topLogprobs}", param: "logprobs");
        }
        var tools = chat ? Tools(body) : null;
        return new CompletionCall(
            model, messages, prompt,
            Bool(body, "stream") ?? false,
            maxTokens,
            // top_p 0 keeps only the most likely token: greedy
            topP == 0 ? 0 : temperature,
            topP == 0 ? null : topP,
            seed is long seedValue ? unchecked((int)seedValue) : null,
            n,
            stop,
            Range(body, "frequency_penalty", -2, 2) ?? 0f,
            Range(body, "presence_penalty", -2, 2) ?? 0f,
            includeUsage)
        {
            ResponseFormat = ResponseFormat(body),
            Tools = tools,
            ToolMode = chat ? ToolChoice(body, tools) : null,
            TopLogprobs = topLogprobs,
            LogitBias = LogitBias(body),
        };
    }

    /// <summary>One chat message: system/developer, user, assistant (with tool_calls) or tool (with tool_call_id).</summary>
    static ChatMessage Message(JsonObject message, string field)
    {
        string role = String(message, "role") ?? throw new ApiException(400, $"{field}.role is missing", param: $"{field}.role");
        if (role == "developer") role = "system";
        if (role is not ("system" or "user" or "assistant" or "tool"))
            throw new ApiException(400, $"{field}.role '{role}' is not supported (system, developer, user, assistant, tool)", param: $"{field}.role");
        string content = Content(message["content"], $"{field}.content");
        switch (role)
        {
            case "system" or "user":
                return new ChatMessage(new ChatRole(role), content);
            case "assistant":
            {
                var contents = new List<AIContent>();
                if (content.Length > 0) contents.Add(new TextContent(content));
                if (message["tool_calls"] is JsonArray calls)
                    for (int j = 0; j < calls.Count; j++)
                    {
                        string at = $"{field}.tool_calls[{j}]";
                        if (calls[j] is not JsonObject call || call["function"] is not JsonObject function)
                            throw new ApiException(400, $"{at} must be an object with a 'function'", param: at);
                        string name = String(function, "name") ?? throw new ApiException(400, $"{at}.function.name is missing", param: $"{at}.function.name");
                        string arguments = String(function, "arguments") ?? "{}";
                        Dictionary<string, object?> parsed;
                        try
                        {
                            parsed = (JsonNode.Parse(arguments) as JsonObject ?? throw new JsonException("not an object"))
                                .ToDictionary(p => p.Key, p => (object?)(p.Value is null ? null : JsonSerializer.SerializeToElement(p.Value)));
                        }
                        catch (JsonException e)
                        {
                            throw new ApiException(400, $"{at}.function.arguments must be a JSON object as a string: {e.Message}", param: $"{at}.function.arguments");
                        }
                        contents.Add(new FunctionCallContent(String(call, "id") ?? ChatTools.NewCallId(), name, parsed));
                    }
                else if (message["tool_calls"] is not null)
                    throw new ApiException(400, $"{field}.tool_calls must be an array", param: $"{field}.tool_calls");
                return new ChatMessage(ChatRole.Assistant, contents);
            }
            default: // "tool", the one role left
            {
                string callId = String(message, "tool_call_id") ?? throw new ApiException(400, $"{field}.tool_call_id is missing", param: $"{field}.tool_call_id");
                return new ChatMessage(ChatRole.Tool, [new FunctionResultContent(callId, content)]);
            }
        }
    }

    /// <summary>response_format: text, json_object, or json_schema with a schema.</summary>
    static ChatResponseFormat? ResponseFormat(JsonObject body)
    {
        if (body["response_format"] is null) return null;
        if (body["response_format"] is not JsonObject format) throw new ApiException(400, "'response_format' must be an object", param: "response_format");
        return String(format, "type") switch
        {
            "text" => ChatResponseFormat.Text,
            "json_object" => ChatResponseFormat.Json,
            "json_schema" => format["json_schema"] is JsonObject spec && spec["schema"] is JsonObject schema
                ? ChatResponseFormat.ForJsonSchema(JsonSerializer.SerializeToElement(schema), String(spec, "name"), String(spec, "description"))
                : throw new ApiException(400, "response_format.json_schema.schema must be a JSON Schema object", param: "response_format"),
            var other => throw new ApiException(400, $"response_format.type '{other}' is not supported (text, json_object, json_schema)", param: "response_format"),
        };
    }

    /// <summary>tools: functions with a name, a description and a parameters schema.</summary>
    static IList<AITool>? Tools(JsonObject body)
    {
        if (body["tools"] is null) return null;
        if (body["tools"] is not JsonArray array) throw new ApiException(400, "'tools' must be an array", param: "tools");
        var tools = new List<AITool>();
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject tool || String(tool, "type") != "function" || tool["function"] is not JsonObject function)
                throw new ApiException(400, $"tools[{i}] must be {{\"type\": \"function\", \"function\": {{…}}}}", param: $"tools[{i}]");
            string name = String(function, "name") ?? throw new ApiException(400, $"tools[{i}].function.name is missing", param: $"tools[{i}].function.name");
            if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                throw new ApiException(400, $"tools[{i}].function.name '{name}' must be 1 to 64 letters, digits, '_' or '-'", param: $"tools[{i}].function.name");
            if (tools.Any(t => t.Name == name)) throw new ApiException(400, $"tools[{i}].function.name '{name}' is given twice", param: $"tools[{i}].function.name");
            var parameters = function["parameters"] switch
            {
                null => new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() },
                JsonObject o => o,
                _ => throw new ApiException(400, $"tools[{i}].function.parameters must be a JSON Schema object", param: $"tools[{i}].function.parameters"),
            };
            tools.Add(AIFunctionFactory.CreateDeclaration(name, String(function, "description"), JsonSerializer.SerializeToElement(parameters)));
        }
        return tools.Count == 0 ? null : tools;
    }

    /// <summary>tool_choice: auto, none, required, or {"type":"function","function":{"name":…}} naming one of the tools.</summary>
    static ChatToolMode? ToolChoice(JsonObject body, IList<AITool>? tools)
    {
        ChatToolMode? mode = body["tool_choice"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s switch
            {
                "auto" => ChatToolMode.Auto,
                "none" => ChatToolMode.None,
                "required" => ChatToolMode.RequireAny,
                _ => throw new ApiException(400, $"tool_choice '{s}' is not supported (auto, none, required, or a function)", param: "tool_choice"),
            },
            JsonObject o when String(o, "type") == "function" && o["function"] is JsonObject f && String(f, "name") is string name =>
                tools?.Any(t => t.Name == name) == true ? ChatToolMode.RequireSpecific(name)
                    : throw new ApiException(400, $"tool_choice names function '{name}', which is not among the tools", param: "tool_choice"),
            _ => throw new ApiException(400, "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}", param: "tool_choice"),
        };
        if (mode is RequiredChatToolMode && tools is null) throw new ApiException(400, "tool_choice requires a tool, but no tools are given", param: "tool_choice");
        return mode;
    }

    /// <summary>logit_bias: token id strings to a bias in [-100, 100].</summary>
    static IReadOnlyDictionary<int, float>? LogitBias(JsonObject body)
    {
        if (body["logit_bias"] is null) return null;
        if (body["logit_bias"] is not JsonObject map) throw new ApiException(400, "'logit_bias' must map token ids to numbers", param: "logit_bias");
        var biases = new Dictionary<int, float>();
        foreach (var (key, value) in map)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                throw new ApiException(400, $"logit_bias key '{key}' is not a token id", param: "logit_bias");
            if (value is not JsonValue v || !v.TryGetValue<double>(out double bias) || !(bias >= -100 && bias <= 100))
                throw new ApiException(400, $"logit_bias[\"{key}\"] must be a number in [-100, 100], got {value?.ToJsonString() ?? "null"}", param: "logit_bias");
            biases[id] = (float)bias;
        }
        return biases.Count == 0 ? null : biases;
    }

    /// <summary>Parses /v1/embeddings: one string or an array of strings, encoding_format float or base64, and dimensions.</summary>
    public static (string Model, IReadOnlyList<string> Inputs, bool Base64, int? Dimensions) ParseEmbeddings(JsonObject body)
    {
        string model = String(body, "model") ?? throw new ApiException(400, "missing field 'model'", param: "model");
        IReadOnlyList<string> inputs = body["input"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a when a.Count > 0 => a.Select((n, i) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new ApiException(400, $"input[{i}] must be a string", param: "input")).ToList(),
            null => throw new ApiException(400, "missing field 'input'", param: "input"),
            _ => throw new ApiException(400, "'input' must be a string or a non-empty array of strings", param: "input"),
        };
        bool base64 = String(body, "encoding_format") switch
        {
            null or "float" => false,
            "base64" => true,
            var other => throw new ApiException(400, $"encoding_format '{other}' is not supported (float, base64)", param: "encoding_format"),
        };
        int? dimensions = Int(body, "dimensions");
        if (dimensions is <= 0) throw new ApiException(400, $"dimensions must be positive, got {dimensions}", param: "dimensions");
        return (model, inputs, base64, dimensions);
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

    static long? Long(JsonObject o, string name) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < long.MaxValue => (long)d,
        _ => throw new ApiException(400, $"'{name}' must be an integer", param: name),
    };

    /// <summary>A number that must lie in [min, max] (OpenAI's range for the field).</summary>
    static float? Range(JsonObject o, string name, float min, float max)
    {
        float? value = Float(o, name);
        if (value is float f && !(f >= min && f <= max)) throw new ApiException(400, $"{name} must be between {min} and {max}, got {f}", param: name);
        return value;
    }

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
