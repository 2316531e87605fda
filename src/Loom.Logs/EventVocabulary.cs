using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;

namespace Loom.Logs;

/// <summary>
/// The tokens of a log model: start and end of session, unknown event, then one token per event key seen in training,
/// with the event's template text when known. Saved in the checkpoint as a Hugging Face WordLevel <c>tokenizer.json</c>
/// (so any tool sees the vocabulary) and as <c>events.json</c> (keys with their templates).
/// </summary>
public sealed class EventVocabulary
{
    public const int StartId = 0;
    public const int EndId = 1;
    public const int UnknownId = 2;
    public const string StartToken = "<s>";
    public const string EndToken = "</s>";
    public const string UnknownToken = "<unk>";
    public const string FileName = "events.json";

    readonly List<string> keys = [StartToken, EndToken, UnknownToken];
    readonly Dictionary<string, int> ids = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> templates = new(StringComparer.Ordinal);

    public EventVocabulary(IEnumerable<string> eventKeys, IReadOnlyDictionary<string, string>? templateTexts = null)
    {
        foreach (string key in eventKeys)
        {
            if (ids.ContainsKey(key)) continue;
            ids[key] = keys.Count;
            keys.Add(key);
            if (templateTexts is not null && templateTexts.TryGetValue(key, out var text)) templates[key] = text;
        }
    }

    /// <summary>Tokens, the three special ones included.</summary>
    public int Count => keys.Count;

    /// <summary>The token of <paramref name="eventKey"/>, or <see cref="UnknownId"/>.</summary>
    public int Id(string eventKey) => ids.TryGetValue(eventKey, out int id) ? id : UnknownId;

    /// <summary>The event key (or special token) of <paramref name="id"/>.</summary>
    public string Key(int id) => keys[id];

    /// <summary>The template text of an event, or null when none was given.</summary>
    public string? Template(string eventKey) => templates.GetValueOrDefault(eventKey);

    /// <summary>Writes tokenizer.json and events.json into <paramref name="folder"/>.</summary>
    public void Save(string folder)
    {
        var vocab = new JsonObject();
        for (int i = 0; i < keys.Count; i++) vocab[keys[i]] = i;
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                Special(StartId, StartToken), Special(EndId, EndToken), Special(UnknownId, UnknownToken)),
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" },
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = UnknownToken },
        };
        AtomicFile.WriteAllText(Path.Combine(folder, "tokenizer.json"), tokenizer.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var events = new JsonArray();
        foreach (string key in keys.Skip(3))
            events.Add(new JsonObject { ["key"] = key, ["template"] = templates.TryGetValue(key, out var t) ? t : null });
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), new JsonObject { ["events"] = events }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        static JsonObject Special(int id, string content) => new() { ["id"] = id, ["content"] = content, ["special"] = true };
    }

    /// <summary>Reads events.json from a checkpoint folder; errors name the file and field.</summary>
    public static EventVocabulary Load(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found (not a log model checkpoint)", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        if (root?["events"] is not JsonArray list) throw new InvalidDataException($"{path}: missing field events");
        var keys = new List<string>();
        var templates = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in list)
        {
            string key = item?["key"]?.GetValue<string>() ?? throw new InvalidDataException($"{path}: events[{keys.Count}] has no key");
            keys.Add(key);
            if (item["template"] is JsonValue template && template.GetValueKind() == JsonValueKind.String) templates[key] = template.GetValue<string>();
        }
        return new EventVocabulary(keys, templates);
    }
}
