using Loom.IO;
using System.Text;

namespace Loom.Text;

/// <summary>A file left out of a corpus, and why.</summary>
public sealed record SkippedFile(
    [property: System.Text.Json.Serialization.JsonPropertyName("path")] string Path,
    [property: System.Text.Json.Serialization.JsonPropertyName("reason")] string Reason);

/// <summary>One document of a corpus: a name (file path or member id), the file it came from, and its text in chunks.</summary>
public sealed record CorpusDocument(string Name, string SourceFile, IEnumerable<string> Chunks);

/// <summary>
/// A corpus of plain-text documents: a file, a folder (recursively; folders whose names start with '.'
/// are left out), a glob such as <c>logs/*.log</c> or <c>src/**/*.cs</c>, or the built-in
/// <c>dotnet-docs</c>. Each file (or each dotnet-docs member) is one document. Files that look binary
/// (a NUL byte, or not UTF-8, in their first 8 KB) are skipped with a reason. Documents are read in
/// chunks, so a corpus larger than memory streams through.
/// </summary>
public sealed class TextCorpus
{
    private const int ChunkChars = 1 << 20;
    private const int MaxCarryChars = 16 << 20;
    private const int SniffBytes = 8192;

    private TextCorpus(string specification, IReadOnlyList<string> files, IReadOnlyList<SkippedFile> skipped, bool isDotnetDocs)
    {
        Specification = specification;
        Files = files;
        Skipped = skipped;
        IsDotnetDocs = isDotnetDocs;
    }

    /// <summary>What the user asked for (a path, a glob or <c>dotnet-docs</c>).</summary>
    public string Specification { get; }

    /// <summary>The files read, in order (for dotnet-docs: the XML documentation files).</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>Files left out, with reasons.</summary>
    public IReadOnlyList<SkippedFile> Skipped { get; }

    /// <summary>Whether this is the built-in dotnet-docs corpus.</summary>
    public bool IsDotnetDocs { get; }

    /// <summary>Total size of the files in bytes.</summary>
    public long TotalBytes => Files.Sum(file => new FileInfo(file).Length);

    /// <summary>
    /// Resolves a corpus specification. Throws <see cref="FileNotFoundException"/> naming the path when
    /// nothing matches, and <see cref="InvalidDataException"/> when every file was skipped.
    /// </summary>
    public static TextCorpus Open(string specification)
    {
        if (specification == DotnetDocs.CorpusName)
        {
            return new TextCorpus(specification, DotnetDocs.FindFiles(), [], isDotnetDocs: true);
        }
        var candidates = new List<string>();
        var walkSkipped = new List<SkippedFile>();
        if (File.Exists(specification))
        {
            candidates.Add(Path.GetFullPath(specification));
        }
        else if (Directory.Exists(specification))
        {
            foreach (var (file, skipReason) in FileWalker.Walk(specification))
            {
                if (skipReason is null) candidates.Add(file);
                else walkSkipped.Add(new SkippedFile(file, skipReason));
            }
        }
        else if (specification.IndexOfAny(['*', '?']) >= 0)
        {
            candidates.AddRange(ExpandGlob(specification));
            if (candidates.Count == 0)
            {
                throw new FileNotFoundException($"{specification}: no files match", specification);
            }
        }
        else
        {
            throw new FileNotFoundException($"{specification}: corpus not found (no such file or folder)", specification);
        }

        var files = new List<string>();
        var skipped = walkSkipped;
        foreach (var file in candidates)
        {
            var reason = FileWalker.IsRegularFile(file) ? BinaryReason(file) : "not a regular file (a FIFO, device or socket)";
            if (reason is null)
            {
                files.Add(file);
            }
            else
            {
                skipped.Add(new SkippedFile(file, reason));
            }
        }
        if (files.Count > 0 && files.All(file => new FileInfo(file).Length == 0))
        {
            throw new InvalidDataException($"{specification}: corpus is empty (all {files.Count} files have no text)");
        }
        if (files.Count == 0)
        {
            var why = skipped.Count == 0 ? "no files" : $"all {skipped.Count} files skipped (first: {skipped[0].Path}: {skipped[0].Reason})";
            throw new InvalidDataException($"{specification}: corpus is empty ({why})");
        }
        return new TextCorpus(specification, files, skipped, isDotnetDocs: false);
    }

    /// <summary>
    /// The documents, each as a sequence of text chunks. Chunks end between a non-space character and
    /// a whitespace character, where no GPT-2 pre-token can span, so encoding chunk by chunk gives the
    /// same tokens as encoding the whole document.
    /// </summary>
    public IEnumerable<CorpusDocument> Documents(CancellationToken cancellationToken = default)
    {
        if (IsDotnetDocs)
        {
            foreach (var member in DotnetDocs.ReadAll())
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return new CorpusDocument(member.Id, member.SourceFile, [DotnetDocs.FormatDocument(member)]);
            }
            yield break;
        }
        foreach (var file in Files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return new CorpusDocument(file, file, ReadChunks(file, cancellationToken));
        }
    }

    /// <summary>
    /// Text for training a tokenizer: everything when the corpus is at most <paramref name="budgetBytes"/>,
    /// else evenly spaced 1 MB blocks of the files adding up to about the budget.
    /// </summary>
    public IEnumerable<string> Sample(long budgetBytes, CancellationToken cancellationToken = default)
    {
        if (IsDotnetDocs)
        {
            long taken = 0;
            foreach (var document in Documents(cancellationToken))
            {
                foreach (var chunk in document.Chunks)
                {
                    taken += chunk.Length;
                    yield return chunk;
                }
                if (taken >= budgetBytes)
                {
                    yield break;
                }
            }
            yield break;
        }
        var total = TotalBytes;
        if (total <= budgetBytes)
        {
            foreach (var document in Documents(cancellationToken))
            {
                foreach (var chunk in document.Chunks)
                {
                    yield return chunk;
                }
            }
            yield break;
        }
        const int blockBytes = 1 << 20;
        var ratio = (double)budgetBytes / total;
        long blockIndex = 0;
        var buffer = new byte[blockBytes];
        foreach (var file in Files)
        {
            using var stream = OpenRead(file);
            var length = stream.Length;
            for (long start = 0; start < length; start += blockBytes, blockIndex++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (Math.Floor((blockIndex + 1) * ratio) <= Math.Floor(blockIndex * ratio))
                {
                    continue;
                }
                stream.Seek(start, SeekOrigin.Begin);
                var count = stream.ReadAtLeast(buffer, (int)Math.Min(blockBytes, length - start), throwOnEndOfStream: false);
                var from = 0;
                while (from < count && from < 4 && (buffer[from] & 0xC0) == 0x80)
                {
                    from++;
                }
                yield return Encoding.UTF8.GetString(buffer, from, count - from);
            }
        }
    }

    private static IEnumerable<string> ReadChunks(string file, CancellationToken cancellationToken)
    {
        using var stream = OpenRead(file);
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var buffer = new char[ChunkChars];
        var carry = new StringBuilder();
        int read;
        while ((read = ReadBlock(reader, buffer, file)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var cut = SafeCut(buffer.AsSpan(0, read));
            if (cut < 0)
            {
                carry.Append(buffer, 0, read);
                if (carry.Length >= MaxCarryChars)
                {
                    // No safe boundary in 16M chars (one giant token run): cut anyway, never inside a surrogate pair.
                    var text = carry.ToString();
                    var end = char.IsHighSurrogate(text[^1]) ? text.Length - 1 : text.Length;
                    yield return text[..end];
                    carry.Clear().Append(text, end, text.Length - end);
                }
                continue;
            }
            carry.Append(buffer, 0, cut);
            yield return carry.ToString();
            carry.Clear().Append(buffer, cut, read - cut);
        }
        if (carry.Length > 0)
        {
            yield return carry.ToString();
        }
    }

    private static int ReadBlock(StreamReader reader, char[] buffer, string file)
    {
        try
        {
            return reader.ReadBlock(buffer, 0, buffer.Length);
        }
        catch (IOException error)
        {
            throw new IOException($"{file}: read failed ({error.Message})", error);
        }
    }

    // The last index p with block[p - 1] not whitespace and block[p] whitespace, or -1.
    private static int SafeCut(ReadOnlySpan<char> block)
    {
        for (var p = block.Length - 1; p > 0; p--)
        {
            if (char.IsWhiteSpace(block[p]) && !char.IsWhiteSpace(block[p - 1]))
            {
                return p;
            }
        }
        return -1;
    }

    private static FileStream OpenRead(string file)
    {
        try
        {
            return new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{file}: cannot read ({error.Message})", error);
        }
    }

    // Null when the file looks like text; otherwise why it does not.
    private static string? BinaryReason(string file)
    {
        var buffer = new byte[SniffBytes];
        int count;
        using (var stream = OpenRead(file))
        {
            count = stream.ReadAtLeast(buffer, SniffBytes, throwOnEndOfStream: false);
        }
        var bytes = buffer.AsSpan(0, count);
        if (bytes.IndexOf((byte)0) >= 0)
        {
            return "binary (contains NUL bytes)";
        }
        // A multi-byte character may be cut at the end of the sniffed block: that is not final, so not invalid.
        var status = System.Text.Unicode.Utf8.ToUtf16(bytes, new char[count], out _, out _, replaceInvalidSequences: false, isFinalBlock: count < SniffBytes);
        if (status == System.Buffers.OperationStatus.InvalidData)
        {
            return "not UTF-8 text";
        }
        return null;
    }

    // "dir/*.txt", "dir/**/*.cs", "logs/app-*.log": the part before the first wildcard segment is the root.
    private static IEnumerable<string> ExpandGlob(string pattern)
    {
        var normalized = pattern.Replace('\\', '/');
        var segments = normalized.Split('/');
        var firstWild = Array.FindIndex(segments, segment => segment.IndexOfAny(['*', '?']) >= 0);
        var root = string.Join('/', segments[..firstWild]);
        if (root.Length == 0)
        {
            root = normalized.StartsWith('/') ? "/" : ".";
        }
        if (!Directory.Exists(root))
        {
            return [];
        }
        var fullRoot = Path.GetFullPath(root);
        var matcher = GlobToRegex(string.Join('/', segments[firstWild..]));
        var recursive = segments[firstWild..].Length > 1 || segments[firstWild].Contains("**", StringComparison.Ordinal);
        var candidates = recursive
            ? FileWalker.Walk(fullRoot).Where(f => f.SkipReason is null).Select(f => f.Path)
            : Directory.GetFiles(fullRoot).Order(StringComparer.Ordinal);
        return candidates.Where(file => matcher.IsMatch(Path.GetRelativePath(fullRoot, file).Replace('\\', '/')));
    }

    private static System.Text.RegularExpressions.Regex GlobToRegex(string glob)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < glob.Length; i++)
        {
            var c = glob[i];
            if (c == '*' && i + 1 < glob.Length && glob[i + 1] == '*')
            {
                i++;
                if (i + 1 < glob.Length && glob[i + 1] == '/')
                {
                    i++;
                    regex.Append("(?:.*/)?");
                }
                else
                {
                    regex.Append(".*");
                }
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(System.Text.RegularExpressions.Regex.Escape(c.ToString()));
            }
        }
        return new System.Text.RegularExpressions.Regex(regex.Append('$').ToString(), System.Text.RegularExpressions.RegexOptions.CultureInvariant);
    }
}
