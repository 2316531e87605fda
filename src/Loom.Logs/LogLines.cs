using System.Text;

namespace Loom.Logs;

/// <summary>One line of a log as read: its 1-based number, the decoded text, and what was wrong with it, if anything.</summary>
public readonly record struct LogLine(long Number, string Text, string? Issue);

/// <summary>
/// Splits a byte stream into lines without trusting it: bytes that are not UTF-8 become U+FFFD, a line longer than
/// <see cref="MaxLineBytes"/> keeps its first bytes and says how long it was, a line that looks binary (NUL or many
/// control bytes) is kept with a note. Every line comes out, numbered, so nothing is lost. Feed it chunks as they
/// arrive; a line is emitted when its newline is seen (or at <see cref="Flush"/>).
/// </summary>
public sealed class LogLineSplitter
{
    readonly Decoder decoder = new UTF8Encoding(false, false).GetDecoder();
    readonly List<byte> pending = [];
    long pendingTotal;
    long lineNumber;

    public LogLineSplitter(int maxLineBytes = 1 << 20)
    {
        if (maxLineBytes < 16) throw new ArgumentException($"LogParserOptions.MaxLineBytes must be at least 16, got {maxLineBytes}");
        MaxLineBytes = maxLineBytes;
    }

    /// <summary>Longest line kept whole; the rest of a longer line is counted and dropped from its text.</summary>
    public int MaxLineBytes { get; }

    /// <summary>Lines emitted so far.</summary>
    public long LineCount => lineNumber;

    /// <summary>Whether a partial line is waiting for its newline.</summary>
    public bool HasPartialLine => pendingTotal > 0;

    /// <summary>Forgets a partial line (after the file was truncated or replaced); line numbers go on.</summary>
    public void Reset()
    {
        pending.Clear();
        pendingTotal = 0;
    }

    /// <summary>Appends bytes and calls <paramref name="emit"/> for each line they complete.</summary>
    public void Feed(ReadOnlySpan<byte> bytes, Action<LogLine> emit)
    {
        while (!bytes.IsEmpty)
        {
            int newline = bytes.IndexOf((byte)'\n');
            var part = newline < 0 ? bytes : bytes[..newline];
            int room = MaxLineBytes - pending.Count;
            if (room > 0) pending.AddRange(part[..Math.Min(room, part.Length)]);
            pendingTotal += part.Length;
            if (newline < 0) return;
            emit(Take());
            bytes = bytes[(newline + 1)..];
        }
    }

    /// <summary>Emits the last line when the input did not end with a newline.</summary>
    public void Flush(Action<LogLine> emit)
    {
        if (pendingTotal > 0) emit(Take());
    }

    LogLine Take()
    {
        var bytes = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending);
        if (!bytes.IsEmpty && bytes[^1] == '\r') bytes = bytes[..^1];
        long total = pendingTotal;
        var issues = new List<string>(2);
        if (total > MaxLineBytes) issues.Add($"line of {total} bytes cut to its first {MaxLineBytes}");
        int control = 0, nul = 0;
        foreach (byte b in bytes)
        {
            if (b == 0) nul++;
            else if (b < 32 && b != '\t') control++;
        }
        if (nul > 0 || control > bytes.Length / 10 + 1) issues.Add("binary content (control bytes) kept as text");
        var chars = new char[decoder.GetCharCount(bytes, flush: true)];
        decoder.GetChars(bytes, chars, flush: true);
        string text = new(chars);
        if (text.Contains('\uFFFD') && !bytes.ContainsAny("\uFFFD"u8)) issues.Add("invalid UTF-8 replaced by U+FFFD");
        if (nul > 0) text = text.Replace('\0', ' ');
        if (text.StartsWith('\uFEFF')) text = text[1..]; // a byte-order mark at the start of a file (or of a rotated one)
        pending.Clear();
        pendingTotal = 0;
        lineNumber++;
        return new LogLine(lineNumber, text, issues.Count == 0 ? null : string.Join("; ", issues));
    }

    /// <summary>Every line of <paramref name="path"/>, streamed; a missing file is a one-line error naming it.</summary>
    public static IEnumerable<LogLine> ReadFile(string path, int maxLineBytes = 1 << 20)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        return Read(path, maxLineBytes);

        static IEnumerable<LogLine> Read(string path, int maxLineBytes)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            foreach (var line in ReadStream(stream, maxLineBytes)) yield return line;
        }
    }

    /// <summary>Every line of <paramref name="stream"/>, streamed.</summary>
    public static IEnumerable<LogLine> ReadStream(Stream stream, int maxLineBytes = 1 << 20)
    {
        var splitter = new LogLineSplitter(maxLineBytes);
        var ready = new Queue<LogLine>();
        var buffer = new byte[1 << 16];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            splitter.Feed(buffer.AsSpan(0, read), ready.Enqueue);
            while (ready.Count > 0) yield return ready.Dequeue();
        }
        splitter.Flush(ready.Enqueue);
        while (ready.Count > 0) yield return ready.Dequeue();
    }
}
