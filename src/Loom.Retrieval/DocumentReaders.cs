using Loom.IO;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AngleSharp.Html.Parser;
using Microsoft.Data.Sqlite;
using Npgsql;
using UglyToad.PdfPig;

namespace Loom.Retrieval;

/// <summary>A reader's answer: a document, or the reason the source was skipped.</summary>
public sealed record ReadResult(SourceDocument? Document, string? SkipReason)
{
    public static ReadResult Skip(string reason) => new(null, reason);
}

/// <summary>Reads files into documents by extension: text, markdown, HTML (AngleSharp), PDF (PdfPig), CSV, JSON, source code.</summary>
public static class FileReader
{
    /// <summary>Files above this are skipped without being read (1 GiB).</summary>
    public const long DefaultMaxBytes = 1L << 30;

    /// <summary>Deepest element nesting an HTML file is parsed into a tree for; a deeper one is read as plain text.</summary>
    public const int MaxHtmlDepth = 512;

    static readonly Dictionary<string, string> KindByExtension = new(StringComparer.OrdinalIgnoreCase)
    {
        [".txt"] = "text", [".text"] = "text", [".log"] = "text", [".rst"] = "text",
        [".md"] = "markdown", [".markdown"] = "markdown",
        [".html"] = "html", [".htm"] = "html",
        [".pdf"] = "pdf",
        [".csv"] = "csv", [".tsv"] = "csv",
        [".json"] = "json", [".jsonl"] = "json",
        [".cs"] = "code", [".fs"] = "code", [".vb"] = "code", [".py"] = "code", [".js"] = "code", [".ts"] = "code",
        [".java"] = "code", [".go"] = "code", [".rs"] = "code", [".c"] = "code", [".h"] = "code", [".cpp"] = "code",
        [".hpp"] = "code", [".sql"] = "code", [".sh"] = "code", [".ps1"] = "code", [".rb"] = "code", [".kt"] = "code",
        [".swift"] = "code", [".xml"] = "code", [".yaml"] = "code", [".yml"] = "code", [".toml"] = "code",
        [".csproj"] = "code", [".props"] = "code",
    };

    /// <summary>Whether the extension is one the reader knows (folders are walked for these only).</summary>
    public static bool IsSupported(string path) => KindByExtension.ContainsKey(Path.GetExtension(path));

    public static ReadResult Read(string path, IReadOnlyDictionary<string, string> tags, long maxBytes = DefaultMaxBytes)
    {
        string fullPath = Path.GetFullPath(path);
        var info = new FileInfo(fullPath);
        if (!info.Exists)
            return ReadResult.Skip(fullPath.Contains('\uFFFD')
                ? "its name is not valid UTF-8 (U+FFFD marks the bad bytes), so it cannot be opened by name; rename it"
                : "file not found");
        if (!FileWalker.IsRegularFile(fullPath))
            return ReadResult.Skip("not a regular file (a FIFO, device or socket)");
        if (!KindByExtension.TryGetValue(info.Extension, out string? kind))
            return ReadResult.Skip($"unsupported file type '{info.Extension}'");
        if (info.Length > maxBytes)
            return ReadResult.Skip($"file is {info.Length:N0} bytes, over the {maxBytes:N0}-byte limit");
        var metadata = new Dictionary<string, string>
        {
            ["path"] = fullPath,
            ["bytes"] = info.Length.ToString(CultureInfo.InvariantCulture),
            ["modified"] = info.LastWriteTimeUtc.ToString("O"),
        };
        try
        {
            string text;
            if (kind == "pdf")
            {
                text = ReadPdf(fullPath, metadata);
            }
            else
            {
                byte[] bytes = File.ReadAllBytes(fullPath);
                if (LooksBinary(bytes))
                    return ReadResult.Skip("binary content (NUL bytes) in a text file");
                string raw;
                try
                {
                    raw = new UTF8Encoding(false, true).GetString(bytes).TrimStart('\uFEFF');
                }
                catch (DecoderFallbackException)
                {
                    return ReadResult.Skip("not valid UTF-8 text");
                }
                text = kind switch
                {
                    "html" => ReadHtml(raw, metadata),
                    "csv" => ReadCsv(raw, info.Extension.Equals(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',', metadata),
                    "json" => ReadJson(raw, info.Extension.Equals(".jsonl", StringComparison.OrdinalIgnoreCase)),
                    "code" => "```" + info.Extension.TrimStart('.') + "\n" + raw.TrimEnd() + "\n```",
                    _ => raw,
                };
            }
            if (string.IsNullOrWhiteSpace(text))
                return ReadResult.Skip("no text content");
            string title = metadata.TryGetValue("title", out string? found) && found.Length > 0 ? found : info.Name;
            return new ReadResult(new SourceDocument(fullPath, title, kind, text, tags, metadata), null);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return ReadResult.Skip($"unreadable: {exception.Message}");
        }
        catch (Exception exception) when (exception is JsonException or FormatException)
        {
            return ReadResult.Skip($"malformed {kind}: {OneLine(exception.Message)}");
        }
        catch (Exception exception) when (kind == "pdf")
        {
            // PdfPig throws several exception types for damaged files; any of them means "not a readable PDF".
            return ReadResult.Skip($"unreadable PDF: {OneLine(exception.Message)}");
        }
    }

    static string OneLine(string message) => message.ReplaceLineEndings(" ");

    static bool LooksBinary(byte[] bytes)
    {
        int length = Math.Min(bytes.Length, 8192);
        return Array.IndexOf(bytes, (byte)0, 0, length) >= 0;
    }

    static string ReadPdf(string path, Dictionary<string, string> metadata)
    {
        using var pdf = PdfDocument.Open(path);
        metadata["pages"] = pdf.NumberOfPages.ToString(CultureInfo.InvariantCulture);
        if (!string.IsNullOrWhiteSpace(pdf.Information.Title))
            metadata["title"] = pdf.Information.Title;
        var text = new StringBuilder();
        foreach (var page in pdf.GetPages())
        {
            string pageText = string.Join(' ', page.GetWords().Select(word => word.Text));
            if (pageText.Length > 0)
                text.Append(pageText).Append("\n\n");
        }
        return text.ToString();
    }

    /// <summary>
    /// HTML to markdown-like text: headings become "#" lines so the chunker keeps them as heading paths. HTML nested past
    /// <see cref="MaxHtmlDepth"/> is read as plain text by one linear pass (<see cref="HtmlScan"/>), noted in the "html" metadata.
    /// </summary>
    static string ReadHtml(string html, Dictionary<string, string> metadata)
    {
        int depth = HtmlScan.Scan(html, null, out _);
        if (depth > MaxHtmlDepth)
        {
            var plain = new StringBuilder();
            HtmlScan.Scan(html, plain, out string? plainTitle);
            if (!string.IsNullOrWhiteSpace(plainTitle)) metadata["title"] = plainTitle;
            metadata["html"] = $"nested {depth:N0} levels, over the {MaxHtmlDepth:N0}-level limit: read as plain text";
            return Collapse(plain.ToString());
        }
        var document = new HtmlParser().ParseDocument(html);
        if (!string.IsNullOrWhiteSpace(document.Title))
            metadata["title"] = document.Title.Trim();
        foreach (var element in document.QuerySelectorAll("script, style, noscript, template").ToList())
            element.Remove();
        var text = new StringBuilder();
        var root = document.Body ?? document.DocumentElement;
        foreach (var element in root.QuerySelectorAll("h1, h2, h3, h4, h5, h6, p, li, pre, td, th, blockquote, dt, dd"))
        {
            // Only innermost blocks, so nested ones are not repeated.
            if (element.QuerySelector("p, li, pre, h1, h2, h3, h4, h5, h6, blockquote, td") is not null && element.LocalName != "pre")
                continue;
            string content = element.LocalName == "pre" ? element.TextContent.TrimEnd() : Collapse(element.TextContent);
            if (content.Length == 0)
                continue;
            switch (element.LocalName)
            {
                case "pre":
                    text.Append("```\n").Append(content).Append("\n```\n\n");
                    break;
                case ['h', char level]:
                    text.Append('#', level - '0').Append(' ').Append(content).Append("\n\n");
                    break;
                default:
                    text.Append(content).Append("\n\n");
                    break;
            }
        }
        if (text.Length == 0)
            text.Append(Collapse(root.TextContent));
        return text.ToString();
    }

    static string Collapse(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>CSV rows as "column: value" lines, one paragraph per row, so chunks keep whole rows.</summary>
    static string ReadCsv(string raw, char separator, Dictionary<string, string> metadata)
    {
        var rows = CsvRows(raw, separator).ToList();
        if (rows.Count == 0)
            return "";
        var header = rows[0];
        metadata["columns"] = string.Join(",", header);
        metadata["rows"] = (rows.Count - 1).ToString(CultureInfo.InvariantCulture);
        var text = new StringBuilder();
        for (int row = 1; row < rows.Count; row++)
        {
            for (int column = 0; column < rows[row].Count; column++)
            {
                string name = column < header.Count ? header[column] : $"column{column + 1}";
                text.Append(name).Append(": ").Append(rows[row][column]).Append('\n');
            }
            text.Append('\n');
        }
        return text.ToString();
    }

    /// <summary>RFC 4180 rows: quoted fields may hold separators, quotes ("") and newlines.</summary>
    public static IEnumerable<List<string>> CsvRows(string raw, char separator)
    {
        var row = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        int line = 1;
        for (int i = 0; i < raw.Length; i++)
        {
            char c = raw[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < raw.Length && raw[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else { if (c == '\n') line++; field.Append(c); }
                continue;
            }
            if (c == '"' && field.Length == 0) quoted = true;
            else if (c == separator) { row.Add(field.ToString()); field.Clear(); }
            else if (c == '\r') continue;
            else if (c == '\n')
            {
                line++;
                row.Add(field.ToString());
                field.Clear();
                if (row.Count > 1 || row[0].Length > 0)
                    yield return row;
                row = [];
            }
            else field.Append(c);
        }
        if (quoted)
            throw new FormatException($"line {line}: unterminated quoted field");
        if (field.Length > 0 || row.Count > 0)
        {
            row.Add(field.ToString());
            yield return row;
        }
    }

    /// <summary>JSON flattened to "path: value" lines (validates the JSON on the way).</summary>
    static string ReadJson(string raw, bool lines)
    {
        try
        {
            return FlattenJson(raw, lines);
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json decodes strings lazily: an escaped lone surrogate (\ud800) surfaces while flattening.
            throw new FormatException("a string is not valid text (an unpaired UTF-16 surrogate escape)");
        }
    }

    static string FlattenJson(string raw, bool lines)
    {
        var text = new StringBuilder();
        if (lines)
        {
            int number = 0;
            foreach (string line in raw.Split('\n'))
            {
                number++;
                if (line.Trim().Length == 0)
                    continue;
                try
                {
                    using var document = JsonDocument.Parse(line);
                    Flatten(document.RootElement, "", text);
                }
                catch (JsonException exception)
                {
                    throw new JsonException($"line {number}: {exception.Message}");
                }
                text.Append('\n');
            }
            return text.ToString();
        }
        using (var document = JsonDocument.Parse(raw))
            Flatten(document.RootElement, "", text);
        return text.ToString();
    }

    static void Flatten(JsonElement element, string path, StringBuilder text)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    Flatten(property.Value, path.Length == 0 ? property.Name : path + "." + property.Name, text);
                break;
            case JsonValueKind.Array:
                int index = 0;
                foreach (var item in element.EnumerateArray())
                    Flatten(item, $"{path}[{index++}]", text);
                break;
            default:
                text.Append(path.Length == 0 ? "value" : path).Append(": ").Append(element.ValueKind == JsonValueKind.String ? element.GetString() : element.GetRawText()).Append('\n');
                break;
        }
    }
}

/// <summary>Rows of a SQL query over ADO.NET (SQLite or PostgreSQL), one document per row.</summary>
public static class SqlReader
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";

    /// <summary>The source id prefix of every row of this query on this connection (so rows that vanish can be removed).</summary>
    public static string SourcePrefix(string provider, string connectionString, string query) =>
        $"sql:{provider}:{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(connectionString + "\n" + query)))[..16]}/";

    /// <summary>
    /// Runs the query; each row becomes a document whose source id is the prefix plus the row's "id"
    /// column (or its first column) and whose text is "column: value" lines.
    /// Throws <see cref="DbException"/> or <see cref="ArgumentException"/> for a bad query or connection.
    /// </summary>
    public static async IAsyncEnumerable<SourceDocument> ReadAsync(
        string provider, string connectionString, string query, IReadOnlyDictionary<string, string> tags,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using DbConnection connection = provider switch
        {
            Sqlite => new SqliteConnection(SqliteReadOnly(connectionString)),
            Postgres => new NpgsqlConnection(connectionString),
            _ => throw new ArgumentException($"unknown SQL provider '{provider}' (known: {Sqlite}, {Postgres})"),
        };
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = query;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToArray();
        int keyColumn = Math.Max(0, Array.FindIndex(columns, name => name.Equals("id", StringComparison.OrdinalIgnoreCase)));
        string prefix = SourcePrefix(provider, connectionString, query);
        int rowNumber = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            rowNumber++;
            var text = new StringBuilder();
            for (int column = 0; column < columns.Length; column++)
            {
                object value = reader.GetValue(column);
                text.Append(columns[column]).Append(": ").Append(value is DBNull ? "" : Convert.ToString(value, CultureInfo.InvariantCulture)).Append('\n');
            }
            object keyValue = reader.GetValue(keyColumn);
            string key = keyValue is DBNull ? $"row{rowNumber}" : Convert.ToString(keyValue, CultureInfo.InvariantCulture)!;
            var metadata = new Dictionary<string, string> { ["provider"] = provider, ["query"] = query, ["key"] = key };
            yield return new SourceDocument(prefix + key, $"{columns[keyColumn]}={key}", "sql", text.ToString(), tags, metadata);
        }
    }

    /// <summary>SQLite sources are opened read-only so a mistyped path is an error, not a new empty database.</summary>
    static string SqliteReadOnly(string connectionString) =>
        new SqliteConnectionStringBuilder(connectionString) { Mode = SqliteOpenMode.ReadOnly }.ToString();
}

/// <summary>The built-in corpus dotnet-docs as retrieval documents: one per documented member of the installed .NET SDK.</summary>
public static class DotnetDocsReader
{
    /// <summary>
    /// The member's document: source id = documentation id (<c>M:System.String.Trim</c>, what citations show),
    /// text = its readable name on the first line, then its documentation (the name is what people search for).
    /// </summary>
    public static SourceDocument ToDocument(Loom.Text.DocMember member, IReadOnlyDictionary<string, string>? tags = null) =>
        new(member.Id, member.Title, "text", member.Title + "\n" + member.Text, tags ?? new Dictionary<string, string>(),
            new Dictionary<string, string> { ["file"] = Path.GetFileName(member.SourceFile) });

    /// <summary>
    /// Every member of the SDK's public API found by <see cref="Loom.Text.DotnetDocs.FindFiles"/> (reference packs only),
    /// in file order: internal types documented in the same XML files (MessagePack, generated regex classes) are left out.
    /// </summary>
    public static IEnumerable<SourceDocument> ReadAll(IReadOnlyDictionary<string, string>? tags = null) =>
        Loom.Text.DotnetDocs.ReadAll(publicSurfaceOnly: true).Select(member => ToDocument(member, tags));
}
