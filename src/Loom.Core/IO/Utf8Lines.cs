using System.Buffers;
using System.Text;

namespace Loom.IO;

/// <summary>
/// The lines of a text file decoded as strict UTF-8: a byte sequence that is not UTF-8 is an
/// <see cref="InvalidDataException"/> naming the file, the line and the byte, never a silent U+FFFD (a Latin-1 file read as
/// UTF-8 would otherwise train on replacement characters). Lines end at '\n' (a '\r' before it is dropped); a leading
/// byte-order mark is skipped. A line longer than <see cref="MaxLineBytes"/> is an error before it is held whole.
/// </summary>
public static class Utf8Lines
{
    /// <summary>The longest line read (64 MiB): a record in a JSONL dataset is far smaller; a file with no line breaks is not one.</summary>
    public const int MaxLineBytes = 64 << 20;

    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static IEnumerable<string> Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        var buffer = new byte[1 << 16];
        var line = new ArrayBufferWriter<byte>();
        int lineNumber = 1;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            int start = 0;
            while (start < read)
            {
                int newline = Array.IndexOf(buffer, (byte)'\n', start, read - start);
                int end = newline < 0 ? read : newline;
                if ((long)line.WrittenCount + (end - start) > MaxLineBytes)
                    throw new InvalidDataException($"{path}:{lineNumber}: the line is longer than {MaxLineBytes >> 20} MiB; is this a JSONL file?");
                line.Write(buffer.AsSpan(start, end - start));
                start = end + 1;
                if (newline < 0) break;
                yield return Decode(path, lineNumber++, line.WrittenSpan);
                line.ResetWrittenCount();
            }
        }
        if (line.WrittenCount > 0) yield return Decode(path, lineNumber, line.WrittenSpan);
    }

    static string Decode(string path, int lineNumber, ReadOnlySpan<byte> bytes)
    {
        if (lineNumber == 1 && bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        if (bytes.Length > 0 && bytes[^1] == '\r') bytes = bytes[..^1];
        try
        {
            return Strict.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            int at = FirstInvalid(bytes);
            throw new InvalidDataException($"{path}:{lineNumber}: not valid UTF-8 (byte 0x{bytes[at]:X2} at byte {at + 1} of the line); save the file as UTF-8");
        }
    }

    static int FirstInvalid(ReadOnlySpan<byte> bytes)
    {
        int at = 0;
        while (at < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[at..], out _, out int consumed) != System.Buffers.OperationStatus.Done) return at;
            at += consumed;
        }
        return 0;
    }
}
