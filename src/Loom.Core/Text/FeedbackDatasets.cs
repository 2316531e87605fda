using System.Text.Json;
using Loom.IO;

namespace Loom.Text;

/// <summary>A supervised example: a conversation whose assistant turns are the targets.</summary>
public sealed record SupervisedExample(IReadOnlyList<ChatTurn> Turns, string Origin);

/// <summary>One human judgement that <see cref="Chosen"/> answers <see cref="Prompt"/> better than <see cref="Rejected"/>.</summary>
public sealed record PreferencePair(IReadOnlyList<ChatTurn> Prompt, string Chosen, string Rejected, string Origin);

/// <summary>A rating of one response, kept for reports and for pairing responses to the same prompt.</summary>
public sealed record RatedResponse(IReadOnlyList<ChatTurn> Prompt, string Response, double Rating, string Origin);

/// <summary>Everything read from one or more JSONL files, and what was skipped.</summary>
public sealed class FeedbackData
{
    public List<SupervisedExample> Supervised { get; } = [];
    public List<PreferencePair> Pairs { get; } = [];
    public List<RatedResponse> Ratings { get; } = [];
    /// <summary>"file:line: reason" for each line skipped.</summary>
    public List<string> Skipped { get; } = [];
}

/// <summary>
/// Reads the JSONL formats of human feedback (compatible with Hugging Face TRL's), one object per line,
/// the format told by its fields:
/// <list type="bullet">
/// <item>supervised: <c>{"messages":[{"role","content"}…]}</c> or <c>{"prompt","completion"}</c> (a user turn and an assistant turn);</item>
/// <item>comparison: <c>{"prompt","chosen","rejected"}</c>;</item>
/// <item>ranking: <c>{"prompt","responses":[…],"ranking":[…]}</c>, ranking = indices into responses, best first; expanded into every ordered pair;</item>
/// <item>rating: <c>{"prompt","response","rating"}</c>; responses to the same prompt with different ratings become pairs;</item>
/// <item>correction: <c>{"prompt","response","corrected"}</c>; becomes a supervised example and the pair corrected ≻ response.</item>
/// </list>
/// A prompt is a string (one user turn) or a list of messages. A bad line is skipped and counted
/// with its file and line; in strict mode the first bad line stops the read with that message. Bytes that are not
/// UTF-8 stop the read in either mode (<see cref="Utf8Lines"/>): a file in another encoding is wrong throughout.
/// </summary>
public static class FeedbackDatasets
{
    public static FeedbackData Read(IEnumerable<string> paths, bool strict = false)
    {
        var data = new FeedbackData();
        foreach (var path in paths) Read(path, data, strict);
        PairRatings(data);
        return data;
    }

    public static FeedbackData Read(string path, bool strict = false) => Read([path], strict);

    /// <summary>
    /// The prompts of a JSONL file for online RL and sampling: the <c>prompt</c> field of each line (a string or
    /// a list of messages), whatever else the line holds. Bad lines are counted in <paramref name="skipped"/> with
    /// file and line, or stop the read in strict mode.
    /// </summary>
    public static List<IReadOnlyList<ChatTurn>> ReadPrompts(string path, List<string> skipped, bool strict = false)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such prompts file", path);
        var prompts = new List<IReadOnlyList<ChatTurn>>();
        int lineNumber = 0;
        foreach (var line in Utf8Lines.Read(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("each line must be a JSON object");
                prompts.Add(Prompt(document.RootElement));
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
            {
                string message = $"{path}:{lineNumber}: {(e is JsonException ? "malformed JSON" : e.Message.ReplaceLineEndings(" "))}";
                if (strict) throw new FormatException(message, e);
                skipped.Add(message);
            }
        }
        return prompts;
    }

    static void Read(string path, FeedbackData data, bool strict)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such dataset file", path);
        int lineNumber = 0;
        foreach (var line in Utf8Lines.Read(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string origin = $"{path}:{lineNumber}";
            try
            {
                using var document = JsonDocument.Parse(line);
                ReadLine(document.RootElement, origin, data);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
            {
                string message = $"{origin}: {(e is JsonException ? "malformed JSON" : e.Message.ReplaceLineEndings(" "))}";
                if (strict) throw new FormatException(message, e);
                data.Skipped.Add(message);
            }
        }
    }

    static void ReadLine(JsonElement line, string origin, FeedbackData data)
    {
        if (line.ValueKind != JsonValueKind.Object) throw new FormatException("each line must be a JSON object");
        if (line.TryGetProperty("messages", out var messages))
        {
            var turns = Turns(messages, "messages");
            if (!turns.Any(t => t.Role == "assistant")) throw new FormatException("'messages' has no assistant turn to learn from");
            data.Supervised.Add(new SupervisedExample(turns, origin));
            return;
        }
        var prompt = Prompt(line);
        if (Has(line, "chosen") || Has(line, "rejected"))
        {
            data.Pairs.Add(new PreferencePair(prompt, Response(line, "chosen"), Response(line, "rejected"), origin));
        }
        else if (Has(line, "responses"))
        {
            var responses = line.GetProperty("responses");
            if (responses.ValueKind != JsonValueKind.Array || responses.GetArrayLength() < 2) throw new FormatException("'responses' must be an array of at least two strings");
            var texts = responses.EnumerateArray().Select((r, i) => r.ValueKind == JsonValueKind.String ? r.GetString()! : throw new FormatException($"responses[{i}] must be a string")).ToList();
            if (!line.TryGetProperty("ranking", out var ranking) || ranking.ValueKind != JsonValueKind.Array) throw new FormatException("'ranking' must be an array of indices into 'responses', best first");
            var order = ranking.EnumerateArray().Select(r => r.TryGetInt32(out int i) && i >= 0 && i < texts.Count ? i : throw new FormatException($"'ranking' entry {r} is not an index into 'responses' (0..{texts.Count - 1})")).ToList();
            if (order.Distinct().Count() != order.Count || order.Count < 2) throw new FormatException("'ranking' must list at least two distinct indices");
            for (int better = 0; better < order.Count; better++)
                for (int worse = better + 1; worse < order.Count; worse++)
                    data.Pairs.Add(new PreferencePair(prompt, texts[order[better]], texts[order[worse]], origin));
        }
        else if (Has(line, "corrected"))
        {
            string response = Response(line, "response"), corrected = Response(line, "corrected");
            data.Supervised.Add(new SupervisedExample([.. prompt, new ChatTurn("assistant", corrected)], origin));
            if (corrected != response) data.Pairs.Add(new PreferencePair(prompt, corrected, response, origin));
        }
        else if (Has(line, "rating"))
        {
            var rating = line.GetProperty("rating");
            if (!rating.TryGetDouble(out double value) || !double.IsFinite(value)) throw new FormatException("'rating' must be a number");
            data.Ratings.Add(new RatedResponse(prompt, Response(line, "response"), value, origin));
        }
        else if (Has(line, "completion"))
        {
            data.Supervised.Add(new SupervisedExample([.. prompt, new ChatTurn("assistant", Response(line, "completion"))], origin));
        }
        else
        {
            throw new FormatException("unknown record: expected messages, completion, chosen/rejected, responses/ranking, rating or corrected");
        }
    }

    /// <summary>Adds a pair for every two ratings of the same prompt that differ: the higher-rated response is chosen.</summary>
    public static void PairRatings(FeedbackData data)
    {
        foreach (var group in data.Ratings.GroupBy(r => ChatTemplate.Format(r.Prompt, addGenerationPrompt: false)))
        {
            var rated = group.ToList();
            for (int i = 0; i < rated.Count; i++)
                for (int j = 0; j < rated.Count; j++)
                    if (rated[i].Rating > rated[j].Rating)
                        data.Pairs.Add(new PreferencePair(rated[i].Prompt, rated[i].Response, rated[j].Response, $"{rated[i].Origin} vs {rated[j].Origin}"));
        }
    }

    static bool Has(JsonElement line, string name) => line.TryGetProperty(name, out _);

    static IReadOnlyList<ChatTurn> Prompt(JsonElement line)
    {
        if (!line.TryGetProperty("prompt", out var prompt)) throw new FormatException("missing field 'prompt'");
        return prompt.ValueKind switch
        {
            JsonValueKind.String => [new ChatTurn("user", prompt.GetString()!)],
            JsonValueKind.Array => Turns(prompt, "prompt"),
            _ => throw new FormatException("'prompt' must be a string or a list of messages"),
        };
    }

    /// <summary>A response field: a string, or a one-message list holding the assistant's turn (TRL's conversational form).</summary>
    static string Response(JsonElement line, string name)
    {
        if (!line.TryGetProperty(name, out var value)) throw new FormatException($"missing field '{name}'");
        if (value.ValueKind == JsonValueKind.String) return value.GetString()!;
        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 1)
        {
            var turn = Turns(value, name)[0];
            if (turn.Role == "assistant") return turn.Content;
        }
        throw new FormatException($"'{name}' must be a string or a one-message assistant list");
    }

    static IReadOnlyList<ChatTurn> Turns(JsonElement messages, string field)
    {
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0) throw new FormatException($"'{field}' must be a non-empty list of messages");
        var turns = new List<ChatTurn>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object
                || !message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
                || !message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                throw new FormatException($"{field}[{index}] must have string 'role' and 'content'");
            string name = role.GetString()!;
            if (name is not ("system" or "user" or "assistant")) throw new FormatException($"{field}[{index}].role '{name}' is not system, user or assistant");
            turns.Add(new ChatTurn(name, content.GetString()!));
            index++;
        }
        return turns;
    }
}
