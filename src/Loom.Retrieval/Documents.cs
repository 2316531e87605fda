using System.Security.Cryptography;
using System.Text;

namespace Loom.Retrieval;

/// <summary>A document read from a source, before chunking.</summary>
/// <param name="SourceId">Stable identity: a full file path, a SQL row key, a member id.</param>
/// <param name="Title">A short human title (file name, row key).</param>
/// <param name="Kind">What the reader saw: "markdown", "text", "html", "pdf", "csv", "json", "code", "sql".</param>
/// <param name="Text">Plain text (markdown kept as markdown so the chunker sees headings).</param>
/// <param name="Tags">User tags (k=v); filters match them exactly.</param>
/// <param name="Metadata">Reader facts (path, size, modified time, page count, columns).</param>
public sealed record SourceDocument(
    string SourceId,
    string Title,
    string Kind,
    string Text,
    IReadOnlyDictionary<string, string> Tags,
    IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>SHA-256 over kind, text and tags: any change that alters chunks or filters re-ingests.</summary>
    public string ContentHash { get; } = ComputeHash(Kind, Text, Tags);

    static string ComputeHash(string kind, string text, IReadOnlyDictionary<string, string> tags)
    {
        var builder = new StringBuilder(kind.Length + text.Length + 64);
        builder.Append(kind).Append('\0');
        foreach (var (key, value) in tags.OrderBy(pair => pair.Key, StringComparer.Ordinal))
            builder.Append(key).Append('=').Append(value).Append('\0');
        builder.Append(text);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(builder.ToString())));
    }
}

/// <summary>One piece of a document, ready to embed and store.</summary>
/// <param name="Ordinal">Position in the document, from 0.</param>
/// <param name="HeadingPath">Markdown headings above the chunk, joined with " > "; empty when none.</param>
/// <param name="Text">The chunk text (with overlap from the previous chunk, if any).</param>
/// <param name="TokenCount">Tokens in Text by the chunker's counter.</param>
public sealed record TextChunk(int Ordinal, string HeadingPath, string Text, int TokenCount)
{
    /// <summary>What is embedded: the heading path gives a chunk its context.</summary>
    public string EmbeddingText => HeadingPath.Length == 0 ? Text : HeadingPath + "\n" + Text;
}

/// <summary>A chunk with its embedding, as handed to a store.</summary>
public sealed record EmbeddedChunk(TextChunk Chunk, ReadOnlyMemory<float> Embedding);

/// <summary>Restricts a search: every tag must match, and the source id must start with SourcePrefix.</summary>
public sealed record SearchFilter(IReadOnlyDictionary<string, string>? Tags = null, string? SourcePrefix = null)
{
    public bool IsEmpty => (Tags is null || Tags.Count == 0) && string.IsNullOrEmpty(SourcePrefix);

    public static SearchFilter? From(IEnumerable<KeyValuePair<string, string>>? tags, string? sourcePrefix)
    {
        var dictionary = tags?.ToDictionary(pair => pair.Key, pair => pair.Value, StringComparer.Ordinal);
        var filter = new SearchFilter(dictionary, sourcePrefix);
        return filter.IsEmpty ? null : filter;
    }
}

/// <summary>Where a hit stood in one stage of the retriever: the stage ("bm25", "vector"), its rank there (from 1) and its score there.</summary>
public sealed record StageScore(string Stage, int Rank, double Score);

/// <summary>One result of a search; Score is higher-is-better within one result list.</summary>
public sealed record SearchHit(
    long ChunkId,
    string SourceId,
    string Title,
    string HeadingPath,
    string Text,
    double Score,
    IReadOnlyDictionary<string, string> Tags)
{
    /// <summary>The stages that ranked this hit (empty for a hit straight from a store), in the order the retriever ran them.</summary>
    public IReadOnlyList<StageScore> Stages { get; init; } = [];

    /// <summary>
    /// A hit from a store's result row: chunk id, source id, title, heading, text and the tags as JSON,
    /// in that order (both stores select these columns first).
    /// </summary>
    internal static SearchHit Read(System.Data.Common.DbDataReader reader, double score) => new(
        reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), score,
        System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(reader.GetString(5)) ?? []);
}

/// <summary>A stored document's identity and content hash.</summary>
public sealed record StoredDocument(string SourceId, string ContentHash);

/// <summary>How many documents and chunks a store (or a filtered part of it) holds.</summary>
public sealed record StoreCounts(long Documents, long Chunks);

/// <summary>Parses "k=v" strings into pairs; a malformed tag is a one-line error.</summary>
public static class TagParser
{
    public static Dictionary<string, string> Parse(IEnumerable<string>? tags)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags ?? [])
        {
            int equals = tag.IndexOf('=');
            if (equals <= 0)
                throw new FormatException($"tag '{tag}' is not of the form key=value");
            result[tag[..equals].Trim()] = tag[(equals + 1)..].Trim();
        }
        return result;
    }
}
