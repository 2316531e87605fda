namespace Loom.IO;

/// <summary>
/// Writes files so that a reader sees either the old file or the whole new one: the bytes go to a
/// temporary file in the same folder, which is flushed to disk and then renamed over the target.
/// </summary>
public static class AtomicFile
{
    /// <summary>Opens the stream for a temporary file; tests replace it to simulate a full disk.</summary>
    internal static Func<string, Stream> CreateStream { get; set; } = DefaultCreateStream;

    /// <summary>Puts back the real file stream after a test replaced it.</summary>
    internal static void ResetCreateStream() => CreateStream = DefaultCreateStream;

    static Stream DefaultCreateStream(string path) =>
        new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);

    /// <summary>Writes <paramref name="path"/> by calling <paramref name="write"/> on a temporary file's stream, then renaming it.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = CreateStream(temp))
            {
                write(stream);
                stream.Flush();
                if (stream is FileStream file) file.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes UTF-8 text (no byte-order mark) atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            var bytes = new System.Text.UTF8Encoding(false).GetBytes(text);
            stream.Write(bytes);
        });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }

    static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
