using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Loom.Logs;

/// <summary>How raw lines are judged as they arrive; null means the default.</summary>
public sealed record LiveDetectorOptions
{
    /// <summary>How lines are split and mined (the model's templates are loaded first); default the generic format.</summary>
    public LogParserOptions? Parser { get; init; }
    /// <summary>Regex naming a line's session (a line naming several goes to each); default HDFS block ids.</summary>
    public string IdentifierPattern { get; init; } = @"blk_-?\d+";
    /// <summary>Time without a new line after which a session is complete and judged with its end.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public LiveDetectorOptions Validate()
    {
        if (SessionTimeout <= TimeSpan.Zero) throw new ArgumentException($"LiveDetectorOptions.SessionTimeout must be positive, got {SessionTimeout}");
        if (string.IsNullOrEmpty(IdentifierPattern)) throw new ArgumentException("LiveDetectorOptions.IdentifierPattern must not be empty");
        return this;
    }
}

/// <summary>
/// What one live line or timeout produced: a verdict (flagged while open, or judged when the session completed), or a
/// note about the input (a cut or invalid line); <see cref="Latency"/> is the time from the line's arrival to the verdict.
/// </summary>
public sealed record WatchEvent(SessionVerdict? Verdict, string? Note, TimeSpan Latency, bool Completed);

/// <summary>
/// Judges raw lines one at a time against a <see cref="LogModel"/>: each line is mined (starting from the model's
/// templates, so it gets the event key the model was trained on), added to the sessions it names, and an open session
/// is flagged at the first line whose surprise passes the threshold. A session idle for the timeout, or closed by
/// <see cref="Complete"/>, is judged with its end. Not thread-safe: one owner feeds it (a watcher, a server's endpoint).
/// </summary>
public sealed class LiveDetector
{
    sealed class Open
    {
        public readonly List<string> Events = [];
        public readonly List<long> Lines = [];
        public long LastSeen;
        public bool Flagged;
    }

    readonly LogModel model;
    readonly LogParser parser;
    readonly Regex identifier;
    readonly Dictionary<string, Open> open = new(StringComparer.Ordinal);
    readonly ModelEventKeys eventKeys;

    public LiveDetector(LogModel model, LiveDetectorOptions? options = null)
    {
        this.model = model;
        Options = (options ?? new LiveDetectorOptions()).Validate();
        parser = new LogParser(Options.Parser);
        eventKeys = new ModelEventKeys(model, parser);
        try { identifier = new Regex(Options.IdentifierPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException e) { throw new ArgumentException($"LiveDetectorOptions.IdentifierPattern is not a valid regex ({e.Message.Split('\n')[0]})"); }
    }

    public LiveDetectorOptions Options { get; }

    /// <summary>The parser lines go through (its options, e.g. the longest line).</summary>
    public LogParserOptions ParserOptions => parser.Options;

    /// <summary>Lines judged so far.</summary>
    public long LinesRead { get; private set; }

    /// <summary>Sessions still open.</summary>
    public int OpenSessions => open.Count;

    /// <summary>Judges one line; appends to <paramref name="results"/> a note for a bad line and a verdict for each session it flags.</summary>
    public void Add(LogLine line, ICollection<WatchEvent> results)
    {
        long started = Stopwatch.GetTimestamp();
        LinesRead++;
        var parsed = parser.Parse(line);
        if (line.Issue is not null) results.Add(new WatchEvent(null, $"line {line.Number}: {line.Issue}", TimeSpan.Zero, false));
        foreach (Match match in identifier.Matches(parsed.Content))
        {
            if (!open.TryGetValue(match.Value, out var session)) open[match.Value] = session = new Open();
            if (session.Lines.Count > 0 && session.Lines[^1] == line.Number) continue;
            session.Events.Add(eventKeys.Key(parsed.TemplateId));
            session.Lines.Add(line.Number);
            session.LastSeen = started;
            if (session.Flagged) continue;
            var verdict = Judge(match.Value, session, includeEnd: false);
            if (verdict.Anomalous)
            {
                session.Flagged = true;
                results.Add(new WatchEvent(verdict, null, Stopwatch.GetElapsedTime(started), false));
            }
        }
    }

    /// <summary>
    /// Completes the sessions idle for the timeout (all open ones when <paramref name="all"/>) and appends the verdicts
    /// of those not flagged already, normal ones too (<see cref="WatchEvent.Completed"/> true).
    /// </summary>
    public void Complete(ICollection<WatchEvent> results, bool all = false)
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var (id, session) in open.ToList())
        {
            if (!all && Stopwatch.GetElapsedTime(session.LastSeen, now) < Options.SessionTimeout) continue;
            open.Remove(id);
            if (session.Flagged) continue;
            long started = Stopwatch.GetTimestamp();
            results.Add(new WatchEvent(Judge(id, session, includeEnd: true), null, Stopwatch.GetElapsedTime(started), true));
        }
    }

    SessionVerdict Judge(string id, Open session, bool includeEnd)
    {
        var logSession = new LogSession(id, session.Events, session.Lines);
        var score = model.Score([logSession], includeEnd)[0];
        return AnomalyDetector.Verdict(model, logSession, score, model.Threshold, 3);
    }
}
