using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Text.Jinja;

namespace Loom.Text;

/// <summary>
/// A checkpoint's own chat template (the <c>chat_template</c> of a Hugging Face tokenizer_config.json) as an
/// <see cref="IChatFormat"/>. It renders as transformers' <c>apply_chat_template</c> does: <c>messages</c> (role and
/// content), <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c>, optional <c>tools</c>, and the
/// <c>raise_exception</c> and <c>strftime_now</c> functions. The rendered text is tokenized whole with special tokens
/// recognised (the template writes the markers as text), so message content can carry marker strings, as with
/// transformers.
/// </summary>
public sealed class JinjaChatFormat : IChatFormat
{
    /// <summary>The file a Hugging Face checkpoint keeps its chat template in.</summary>
    public const string ConfigFileName = "tokenizer_config.json";

    /// <summary>Where newer transformers versions save the template instead (beside tokenizer_config.json).</summary>
    public const string TemplateFileName = "chat_template.jinja";

    const string Probe = "LOOMPROBE";

    readonly JinjaTemplate template;
    readonly Func<DateTime> clock;

    /// <param name="source">The Jinja template text.</param>
    /// <param name="bosToken">The vocabulary's beginning-of-sequence token text (<c>bos_token</c>), or null.</param>
    /// <param name="eosToken">The end-of-sequence token text (<c>eos_token</c>), or null.</param>
    /// <param name="clock">What <c>strftime_now</c> reads (Llama 3.2 prints today's date); null means the local clock.</param>
    public JinjaChatFormat(string source, string? bosToken = null, string? eosToken = null, Func<DateTime>? clock = null)
    {
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
        this.clock = clock ?? (() => DateTime.Now);
        template = JinjaTemplate.Parse(source);
        StopSequences = FindStops();
    }

    public string Source { get; }
    public string? BosToken { get; }
    public string? EosToken { get; }

    /// <summary>The end of an assistant turn as the template writes it (found by rendering a probe turn), and the eos token.</summary>
    public IReadOnlyList<string> StopSequences { get; }

    public string Format(IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt) => Render(turns, addGenerationPrompt, clock());

    /// <summary>
    /// Renders messages given as JSON objects (role, content, and whatever else the template reads, such as
    /// <c>tool_calls</c>), with the functions offered in <paramref name="tools"/> (null: none).
    /// </summary>
    public string Render(JsonArray messages, bool addGenerationPrompt, JsonArray? tools = null) =>
        Render(JinjaTemplate.FromJson(messages), addGenerationPrompt, tools is null ? null : JinjaTemplate.FromJson(tools), clock());

    string Render(IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt, DateTime now)
    {
        var messages = new List<object?>(turns.Count);
        foreach (var turn in turns)
        {
            var message = new OrderedDictionary<string, object?>(StringComparer.Ordinal) { ["role"] = turn.Role, ["content"] = turn.Content };
            messages.Add(message);
        }
        return Render(messages, addGenerationPrompt, null, now);
    }

    string Render(object? messages, bool addGenerationPrompt, object? tools, DateTime now)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = BosToken ?? "",
            ["eos_token"] = EosToken ?? "",
            ["strftime_now"] = StrftimeFunction(() => now),
        };
        if (tools is not null) variables["tools"] = tools;
        return template.Render(variables);
    }

    /// <summary>
    /// Tokenizes the rendered conversation whole. The target spans are the assistant turns as the template renders
    /// them: for turn i, the text from the end of the conversation up to i rendered with an open assistant turn to
    /// where the conversation through i rendered closed stops agreeing with the whole (a template may close the last
    /// turn differently, e.g. with an eos token), less trailing whitespace: the content and the end-of-turn marker, as
    /// Loom's own format marks them. A token is a target when it lies wholly inside a span.
    /// </summary>
    public (int[] Ids, bool[] TargetMask) Encode(IReadOnlyList<ChatTurn> turns, ITokenizer tokenizer, bool addGenerationPrompt)
    {
        var now = clock();
        string text = Render(turns, addGenerationPrompt, now);
        var spans = new List<(int Start, int End)>(); // UTF-8 byte offsets into text
        for (int i = 0; i < turns.Count; i++)
        {
            if (turns[i].Role != "assistant") continue;
            string open = Render([.. turns.Take(i)], addGenerationPrompt: true, now);
            string closed = Render([.. turns.Take(i + 1)], addGenerationPrompt: false, now);
            if (!closed.StartsWith(open, StringComparison.Ordinal) || !text.StartsWith(open, StringComparison.Ordinal))
                throw new InvalidDataException($"the chat template does not render assistant turn {i + 1} as a continuation of the turns before it, so its tokens cannot be marked for tuning");
            int end = open.Length;
            while (end < closed.Length && end < text.Length && closed[end] == text[end]) end++;
            while (end > open.Length && char.IsWhiteSpace(text[end - 1])) end--;
            spans.Add((Encoding.UTF8.GetByteCount(text.AsSpan(0, open.Length)), Encoding.UTF8.GetByteCount(text.AsSpan(0, end))));
        }
        int[] ids = tokenizer.Encode(text, allowSpecialTokens: true);
        var mask = new bool[ids.Length];
        long offset = 0;
        for (int t = 0; t < ids.Length; t++)
        {
            long next = offset + TokenByteLength(tokenizer, ids[t]);
            foreach (var (start, end) in spans)
                if (offset >= start && next <= end) { mask[t] = true; break; }
            offset = next;
        }
        return (ids, mask);
    }

    static int TokenByteLength(ITokenizer tokenizer, int id) =>
        tokenizer.IsSpecial(id) ? Encoding.UTF8.GetByteCount(tokenizer.IdToToken(id) ?? "") : tokenizer.TokenBytes(id).Length;

    List<string> FindStops()
    {
        var stops = new List<string>();
        try
        {
            var now = clock();
            string open = Render([new ChatTurn("user", "hi")], addGenerationPrompt: true, now);
            string closed = Render([new ChatTurn("user", "hi"), new ChatTurn("assistant", Probe)], addGenerationPrompt: false, now);
            int at = closed.LastIndexOf(Probe, StringComparison.Ordinal);
            if (closed.StartsWith(open, StringComparison.Ordinal) && at >= open.Length)
            {
                string end = closed[(at + Probe.Length)..];
                int eos = string.IsNullOrEmpty(EosToken) ? -1 : end.IndexOf(EosToken, StringComparison.Ordinal);
                if (eos > 0) end = end[..eos]; // a template that closes the conversation with eos: the turn ends before it
                end = end.Trim();
                if (end.Length > 0) stops.Add(end);
            }
        }
        catch (JinjaException)
        {
            // a template that refuses a one-exchange conversation still stops at its eos token
        }
        if (!string.IsNullOrEmpty(EosToken) && !stops.Contains(EosToken)) stops.Add(EosToken);
        return stops;
    }

    /// <summary>
    /// Reads the chat template of a checkpoint folder: tokenizer_config.json's <c>chat_template</c> (a string, or a list
    /// of named templates of which "default" is used), else chat_template.jinja; with its <c>bos_token</c> and
    /// <c>eos_token</c>. Null when the folder has neither. Errors are one line naming the file and field.
    /// </summary>
    public static JinjaChatFormat? FromFolder(string folder, Func<DateTime>? clock = null)
    {
        string configPath = Path.Combine(folder, ConfigFileName);
        string templatePath = Path.Combine(folder, TemplateFileName);
        JsonObject? config = null;
        if (File.Exists(configPath))
        {
            try
            {
                config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                    ?? throw new InvalidDataException($"{configPath}: expected a JSON object");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message.Split('\n')[0]})");
            }
        }
        string? source = config?["chat_template"] switch
        {
            null => null,
            JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
            JsonArray named => named.OfType<JsonObject>().FirstOrDefault(t => t["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>()
                ?? throw new InvalidDataException($"{configPath}: chat_template lists no template named \"default\""),
            _ => throw new InvalidDataException($"{configPath}: chat_template must be a string or a list of {{name, template}}"),
        };
        if (source is null && File.Exists(templatePath)) source = File.ReadAllText(templatePath);
        if (source is null) return null;
        try
        {
            return new JinjaChatFormat(source, TokenText(config, "bos_token", configPath), TokenText(config, "eos_token", configPath), clock);
        }
        catch (JinjaException e)
        {
            throw new InvalidDataException($"{configPath}: chat_template: {e.Message}");
        }
    }

    static string? TokenText(JsonObject? config, string field, string path) => config?[field] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        JsonObject added => added["content"]?.GetValue<string>() ?? throw new InvalidDataException($"{path}: {field} has no content"),
        _ => throw new InvalidDataException($"{path}: {field} must be a string or an object with content"),
    };

    /// <summary>
    /// Writes the template into a checkpoint folder's tokenizer_config.json (its other fields kept), atomically, so a
    /// tuned copy of an imported model keeps its chat format.
    /// </summary>
    public void Save(string folder)
    {
        string path = Path.Combine(folder, ConfigFileName);
        var config = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? [] : [];
        config["chat_template"] = Source;
        if (BosToken is not null && config["bos_token"] is null) config["bos_token"] = BosToken;
        if (EosToken is not null && config["eos_token"] is null) config["eos_token"] = EosToken;
        AtomicFile.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The <c>strftime_now(format)</c> function transformers gives templates, reading <paramref name="clock"/>.</summary>
    public static JinjaFunction StrftimeFunction(Func<DateTime> clock) => (arguments, _) =>
        Strftime(clock(), arguments.Count > 0 && arguments[0] is string format ? format : throw new InvalidOperationException("strftime_now expects a format string"));

    /// <summary>C's <c>strftime</c> for the directives templates use (%d %b %B %Y %y %m %H %M %S %j %a %A %p %%).</summary>
    static string Strftime(DateTime time, string format)
    {
        var text = new StringBuilder();
        var culture = CultureInfo.InvariantCulture;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { text.Append(format[i]); continue; }
            char directive = format[++i];
            text.Append(directive switch
            {
                'd' => time.ToString("dd", culture),
                'b' => time.ToString("MMM", culture),
                'B' => time.ToString("MMMM", culture),
                'Y' => time.ToString("yyyy", culture),
                'y' => time.ToString("yy", culture),
                'm' => time.ToString("MM", culture),
                'H' => time.ToString("HH", culture),
                'I' => time.ToString("hh", culture),
                'M' => time.ToString("mm", culture),
                'S' => time.ToString("ss", culture),
                'p' => time.ToString("tt", culture),
                'a' => time.ToString("ddd", culture),
                'A' => time.ToString("dddd", culture),
                'j' => time.DayOfYear.ToString("000", culture),
                '%' => "%",
                _ => "%" + directive,
            });
        }
        return text.ToString();
    }
}
