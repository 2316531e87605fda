namespace Loom.Logs;

/// <summary>How <see cref="LogWatcher"/> follows a file. Null means the default.</summary>
public sealed record LogWatchOptions
{
    /// <summary>How lines are read and mined (preset, layout, miner).</summary>
    public LogParserOptions? Parser { get; init; }
    /// <summary>Regex whose match names a line's session (HDFS: <c>blk_-?\d+</c>).</summary>
    public string IdentifierPattern { get; init; } = @"blk_-?\d+";
    /// <summary>A session with no new line for this long is complete and judged, end of session included.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How often the file is polled for new bytes, truncation and rotation.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>Start at the end of the file (only new lines) instead of its beginning.</summary>
    public bool FromEnd { get; init; }

    public LogWatchOptions Validate()
    {
        if (SessionTimeout <= TimeSpan.Zero) throw new ArgumentException($"LogWatchOptions.SessionTimeout must be positive, got {SessionTimeout}");
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentException($"LogWatchOptions.PollInterval must be positive, got {PollInterval}");
        if (string.IsNullOrEmpty(IdentifierPattern)) throw new ArgumentException("LogWatchOptions.IdentifierPattern must not be empty");
        return this;
    }
}

/// <summary>
/// Follows a growing log file: mines each new line, adds it to its session, scores the open session at once, and
/// flags it as soon as an event is more surprising than the threshold; a session idle for
/// <see cref="LogWatchOptions.SessionTimeout"/> is complete and judged with its end. Survives truncation (reads on from
/// the new end) and rotation (a new file at the path is read from its start).
/// </summary>
public sealed class LogWatcher
{
    readonly LiveDetector detector;

    public LogWatcher(LogModel model, LogWatchOptions? options = null)
    {
        Options = (options ?? new LogWatchOptions()).Validate();
        detector = new LiveDetector(model, new LiveDetectorOptions
        {
            Parser = Options.Parser, IdentifierPattern = Options.IdentifierPattern, SessionTimeout = Options.SessionTimeout,
        });
    }

    public LogWatchOptions Options { get; }

    /// <summary>Lines read so far.</summary>
    public long LinesRead => detector.LinesRead;

    /// <summary>Follows <paramref name="path"/> until cancelled, reporting each flag and note as it happens.</summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string path, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var splitter = new LogLineSplitter(detector.ParserOptions.MaxLineBytes);
        var pending = new List<WatchEvent>();
        var buffer = new byte[1 << 16];
        FileStream? stream = null;
        long position = 0;
        bool first = true;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (stream is null && File.Exists(path))
                {
                    try
                    {
                        stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
                        position = first && Options.FromEnd ? stream.Length : 0;
                        first = false;
                    }
                    catch (IOException) { stream = null; }
                }
                if (stream is not null)
                {
                    long length = stream.Length;
                    if (length < position)
                    {
                        pending.Add(new WatchEvent(null, $"{path}: truncated from {position} to {length} bytes; reading on from its start", TimeSpan.Zero, false));
                        splitter.Reset();
                        position = 0;
                    }
                    stream.Position = position;
                    int read;
                    while ((read = stream.Read(buffer)) > 0)
                    {
                        position += read;
                        splitter.Feed(buffer.AsSpan(0, read), line => OnLine(line, pending));
                    }
                    // Rotation: the path now names another file (renamed away, a new one created). Finish the old one, then switch.
                    if (IsRotated(stream, path))
                    {
                        splitter.Flush(line => OnLine(line, pending));
                        pending.Add(new WatchEvent(null, $"{path}: rotated; reading the new file from its start", TimeSpan.Zero, false));
                        stream.Dispose();
                        stream = null;
                        continue;
                    }
                }
                ExpireSessions(pending);
                foreach (var report in pending) yield return report;
                pending.Clear();
                try { await Task.Delay(Options.PollInterval, cancellationToken).ConfigureAwait(false); }
                catch (OperationCanceledException) { yield break; }
            }
        }
        finally
        {
            stream?.Dispose();
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> now names another file than the open one: their sizes differ and so do their
    /// first bytes (or the new file is empty). A truncation in place shows the same size through both and is not one.
    /// </summary>
    static bool IsRotated(FileStream open, string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            using var current = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long openLength = open.Length, currentLength = current.Length;
            if (openLength == currentLength) return false;
            if (currentLength == 0) return openLength > 0;
            int head = (int)Math.Min(64, Math.Min(openLength, currentLength));
            var a = new byte[head];
            var b = new byte[head];
            long keep = open.Position;
            open.Position = 0;
            open.ReadExactly(a);
            open.Position = keep;
            current.ReadExactly(b);
            return !a.AsSpan().SequenceEqual(b);
        }
        catch (IOException) { return false; }
    }

    void OnLine(LogLine line, List<WatchEvent> pending) => detector.Add(line, pending);

    /// <summary>Completes idle sessions; only the anomalous ones are reported.</summary>
    void ExpireSessions(List<WatchEvent> pending)
    {
        var completed = new List<WatchEvent>();
        detector.Complete(completed);
        pending.AddRange(completed.Where(r => r.Verdict?.Anomalous == true));
    }
}
