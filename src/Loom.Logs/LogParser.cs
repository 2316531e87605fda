using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Loom.IO;

namespace Loom.Logs;

/// <summary>What <see cref="LogParser"/> reads and how. Null means the default.</summary>
public sealed record LogParserOptions
{
    /// <summary>A name from <see cref="LogPresets.All"/>; null = the generic preset.</summary>
    public string? Preset { get; init; }
    /// <summary>A header layout that replaces the preset's (see <see cref="LogFormat"/>).</summary>
    public string? Layout { get; init; }
    /// <summary>Miner settings that replace the preset's.</summary>
    public TemplateMinerOptions? Miner { get; init; }
    /// <summary>Longest line kept whole, in bytes; longer lines are cut (and say so).</summary>
    public int MaxLineBytes { get; init; } = 1 << 20;
}

/// <summary>One parsed line: where it was, which template it joined, the wildcard values, its header fields, and any issue reading it.</summary>
public sealed record ParsedLine(long LineNumber, int TemplateId, string Template, IReadOnlyList<string> Parameters,
    string Content, IReadOnlyDictionary<string, string> Header, string? Issue);

/// <summary>
/// Reads log lines, takes each one's message out of its header (the preset's layout, or for the generic preset a
/// leading timestamp and level when present) and mines templates online. Streaming: memory holds the templates,
/// not the lines.
/// </summary>
public sealed class LogParser
{
    // The generic header: an optional leading date/time in the common shapes, then an optional level.
    static readonly Regex GenericHeader = new(
        @"^\s*(\[?(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{6}|\d{8}|[A-Z][a-z]{2}\s+\d{1,2}|\d{1,2}[-/]\d{1,2}|\w{3}\s\w{3}\s+\d{1,2})[ T-]?(\d{1,2}[:.]\d{2}([:.]\d{2})?([.,:]\d+)?)?\]?,?\s+)?" +
        @"(\[?(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL|SEVERE|[VDIWEF])\]?:?\s+)?",
        RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    readonly LogFormat? format;
    static readonly IReadOnlyDictionary<string, string> NoHeader = new Dictionary<string, string>();

    public LogParser(LogParserOptions? options = null)
    {
        Options = options ?? new LogParserOptions();
        var preset = LogPresets.Get(Options.Preset ?? LogPresets.GenericName);
        string layout = Options.Layout ?? preset.Layout;
        format = layout == "<Content>" && Options.Layout is null ? null : new LogFormat(layout);
        Miner = new TemplateMiner(Options.Miner ?? preset.Miner);
    }

    public LogParserOptions Options { get; }
    public TemplateMiner Miner { get; }

    /// <summary>Lines whose header did not match the layout (their whole text was mined).</summary>
    public long UnmatchedHeaders { get; private set; }

    /// <summary>The message and header fields of <paramref name="line"/>; the whole line when the layout does not fit.</summary>
    public (string Content, IReadOnlyDictionary<string, string> Header, bool Matched) Split(string line)
    {
        if (format is null)
        {
            var match = GenericHeader.Match(line);
            return (line[match.Length..], NoHeader, true);
        }
        return format.Match(line) is { } parsed ? (parsed.Content, parsed.Header, true) : (line, NoHeader, false);
    }

    /// <summary>Mines one line.</summary>
    public ParsedLine Parse(LogLine line)
    {
        var (content, header, matched) = Split(line.Text);
        string? issue = line.Issue;
        if (!matched)
        {
            UnmatchedHeaders++;
            issue = issue is null ? "header does not match the layout; the whole line was mined" : issue + "; header does not match the layout";
        }
        var template = Miner.Add(content);
        return new ParsedLine(line.Number, template.Id, template.Text, template.Parameters(content), content, header, issue);
    }

    /// <summary>Mines every line of <paramref name="path"/>, streamed.</summary>
    public IEnumerable<ParsedLine> ParseFile(string path)
    {
        foreach (var line in LogLineSplitter.ReadFile(path, Options.MaxLineBytes)) yield return Parse(line);
    }

    /// <summary>
    /// Parses <paramref name="input"/> into <paramref name="output"/> (JSONL when it ends in .jsonl or .json, CSV
    /// otherwise), written atomically. Returns the lines read.
    /// </summary>
    public long ParseToFile(string input, string output, CancellationToken cancellationToken = default)
    {
        bool csv = !output.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) && !output.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        long lines = 0;
        AtomicFile.Write(output, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            if (csv) writer.WriteLine("line,template_id,template,parameters,issue");
            foreach (var parsed in ParseFile(input))
            {
                cancellationToken.ThrowIfCancellationRequested();
                writer.WriteLine(csv ? ToCsv(parsed) : ToJson(parsed));
                lines++;
            }
        });
        return lines;
    }

    /// <summary>One JSON object per line: line, template_id, template, parameters, and issue when there was one.</summary>
    public static string ToJson(ParsedLine line)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("line", line.LineNumber);
            json.WriteNumber("template_id", line.TemplateId);
            json.WriteString("template", line.Template);
            json.WriteStartArray("parameters");
            foreach (string p in line.Parameters) json.WriteStringValue(p);
            json.WriteEndArray();
            if (line.Issue is not null) json.WriteString("issue", line.Issue);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    static string ToCsv(ParsedLine line) =>
        string.Join(',', line.LineNumber.ToString(System.Globalization.CultureInfo.InvariantCulture), line.TemplateId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Quote(line.Template), Quote(JsonSerializer.Serialize(line.Parameters)), Quote(line.Issue ?? ""));

    static string Quote(string field) =>
        field.AsSpan().IndexOfAny(",\"\n\r") < 0 ? field : "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
