using System.Globalization;
using System.Text.RegularExpressions;

namespace Loom.Logs;

/// <summary>
/// A session: the events of one unit of work (an HDFS block, a node, a time window) in the order they were logged,
/// with the line each came from (0 when read pre-parsed) and a label when one is known (true = anomalous).
/// </summary>
public sealed record LogSession(string Id, IReadOnlyList<string> Events, IReadOnlyList<long> Lines, bool? Anomalous = null);

/// <summary>Groups parsed lines into sessions, or reads sessions that were grouped already.</summary>
public static class Sessionizer
{
    /// <summary>
    /// One session per distinct match of <paramref name="identifierPattern"/> (e.g. <c>blk_-?\d+</c> for HDFS blocks);
    /// a line naming several identifiers goes to each; lines naming none go to no session. Sessions come out in order
    /// of first appearance.
    /// </summary>
    public static List<LogSession> ByIdentifier(IEnumerable<ParsedLine> lines, string identifierPattern)
    {
        Regex regex;
        try { regex = new Regex(identifierPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException e) { throw new ArgumentException($"SessionOptions.IdentifierPattern is not a valid regex ({e.Message.Split('\n')[0]}): {identifierPattern}"); }
        var builder = new Builder();
        foreach (var line in lines)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (Match match in regex.Matches(line.Content))
                if (seen.Add(match.Value)) builder.Add(match.Value, line);
        }
        return builder.Sessions();
    }

    /// <summary>One session per value of the header field <paramref name="field"/> (a process, a node); lines without it go to no session.</summary>
    public static List<LogSession> ByField(IEnumerable<ParsedLine> lines, string field)
    {
        var builder = new Builder();
        foreach (var line in lines)
            if (line.Header.TryGetValue(field, out var value) && value.Length > 0) builder.Add(value, line);
        return builder.Sessions();
    }

    /// <summary>
    /// Consecutive windows of <paramref name="windowSeconds"/> by the time in header field <paramref name="timeField"/>
    /// (Unix seconds or a date-time .NET can read). A session is labelled anomalous when <paramref name="isAnomalous"/>
    /// holds for any of its lines (null = no labels). Lines whose time cannot be read join the current window.
    /// </summary>
    public static List<LogSession> ByTimeWindow(IEnumerable<ParsedLine> lines, string timeField, double windowSeconds, Func<ParsedLine, bool>? isAnomalous = null)
    {
        if (!(windowSeconds > 0)) throw new ArgumentException($"SessionOptions.WindowSeconds must be positive, got {windowSeconds}");
        var sessions = new List<LogSession>();
        var events = new List<string>();
        var numbers = new List<long>();
        bool anomalous = false;
        double? windowStart = null;
        void Close()
        {
            if (events.Count > 0)
                sessions.Add(new LogSession($"window-{sessions.Count + 1}@{windowStart?.ToString("F0", CultureInfo.InvariantCulture)}", [.. events], [.. numbers], isAnomalous is null ? null : anomalous));
            events.Clear();
            numbers.Clear();
            anomalous = false;
        }
        foreach (var line in lines)
        {
            double? time = line.Header.TryGetValue(timeField, out var text) ? ParseTime(text) : null;
            if (time is { } t && (windowStart is null || t >= windowStart + windowSeconds || t < windowStart))
            {
                Close();
                windowStart = windowStart is { } s && t >= s ? s + Math.Floor((t - s) / windowSeconds) * windowSeconds : t;
            }
            events.Add(EventKey(line.TemplateId));
            numbers.Add(line.LineNumber);
            anomalous |= isAnomalous?.Invoke(line) ?? false;
        }
        Close();
        return sessions;
    }

    /// <summary>Consecutive windows of <paramref name="count"/> lines each (the last may be shorter).</summary>
    public static List<LogSession> ByCount(IEnumerable<ParsedLine> lines, int count, Func<ParsedLine, bool>? isAnomalous = null)
    {
        if (count < 1) throw new ArgumentException($"SessionOptions.WindowLines must be positive, got {count}");
        var sessions = new List<LogSession>();
        var chunk = new List<ParsedLine>(count);
        void Close()
        {
            if (chunk.Count == 0) return;
            sessions.Add(new LogSession($"lines-{chunk[0].LineNumber}", [.. chunk.Select(l => EventKey(l.TemplateId))], [.. chunk.Select(l => l.LineNumber)],
                isAnomalous is null ? null : chunk.Any(isAnomalous)));
            chunk.Clear();
        }
        foreach (var line in lines)
        {
            chunk.Add(line);
            if (chunk.Count == count) Close();
        }
        Close();
        return sessions;
    }

    /// <summary>
    /// Reads pre-parsed sessions: one per line, space-separated event ids (DeepLog's <c>hdfs_train</c>), or a CSV with a
    /// header <c>Sequence,label</c> (label 1 = anomalous). Blank lines are skipped; a bad label is a one-line error naming the line.
    /// </summary>
    public static List<LogSession> ReadEventSequences(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        var sessions = new List<LogSession>();
        bool csv = false;
        long number = 0;
        foreach (var line in LogLineSplitter.ReadFile(path))
        {
            number = line.Number;
            string text = line.Text.Trim();
            if (number == 1 && text.StartsWith("Sequence,", StringComparison.OrdinalIgnoreCase))
            {
                csv = true;
                continue;
            }
            if (text.Length == 0) continue;
            bool? label = null;
            if (csv)
            {
                int comma = text.LastIndexOf(',');
                if (comma < 0) throw new InvalidDataException($"{path}:{number}: expected 'Sequence,label'");
                label = text[(comma + 1)..].Trim() switch
                {
                    "0" => false,
                    "1" => true,
                    var other => throw new InvalidDataException($"{path}:{number}: label must be 0 or 1, got '{other}'"),
                };
                text = text[..comma];
            }
            var events = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            sessions.Add(new LogSession($"{Path.GetFileName(path)}:{number}", events, new long[events.Length], label));
        }
        return sessions;
    }

    /// <summary>The event key of a mined template id (how parsed lines name their events in sessions).</summary>
    public static string EventKey(int templateId) => templateId.ToString(CultureInfo.InvariantCulture);

    internal static double? ParseTime(string text)
    {
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds)) return seconds;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)) return time.ToUnixTimeMilliseconds() / 1000.0;
        return null;
    }

    sealed class Builder
    {
        readonly Dictionary<string, (List<string> Events, List<long> Lines)> byId = new(StringComparer.Ordinal);
        readonly List<string> order = [];

        public void Add(string id, ParsedLine line)
        {
            if (!byId.TryGetValue(id, out var session))
            {
                byId[id] = session = ([], []);
                order.Add(id);
            }
            session.Events.Add(EventKey(line.TemplateId));
            session.Lines.Add(line.LineNumber);
        }

        public List<LogSession> Sessions() => [.. order.Select(id => new LogSession(id, byId[id].Events, byId[id].Lines))];
    }
}
