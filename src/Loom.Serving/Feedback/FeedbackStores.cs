using System.Data.Common;
using System.Text.Json;
using Npgsql;

namespace Loom.Serving.Feedback;

/// <summary>Opens the feedback store a location names: a PostgreSQL connection string, or else a SQLite file path.</summary>
public static class FeedbackStores
{
    /// <summary>
    /// "Host=…" (Npgsql keywords) or "postgres://user:password@host:port/database" opens <see cref="PostgresFeedbackStore"/>
    /// in its default schema; anything else is the path of a SQLite file, created when missing.
    /// </summary>
    public static async Task<IFeedbackStore> OpenAsync(string location, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(location))
            throw new ArgumentException("feedback store location must be a SQLite file path or a PostgreSQL connection string", nameof(location));
        if (IsPostgres(location))
            return await PostgresFeedbackStore.OpenAsync(ToNpgsql(location), null, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        return SqliteFeedbackStore.Open(location);
    }

    /// <summary>Whether the location is a PostgreSQL connection string rather than a file path.</summary>
    public static bool IsPostgres(string location) =>
        location.StartsWith("Host=", StringComparison.OrdinalIgnoreCase)
        || location.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
        || location.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Npgsql reads keyword connection strings only: a postgres:// URI becomes Host, Port, Username, Password and
    /// Database (percent-decoded), and its query parameters (sslmode=require …) become keywords as they are.
    /// </summary>
    public static string ToNpgsql(string location)
    {
        if (location.StartsWith("Host=", StringComparison.OrdinalIgnoreCase))
            return location;
        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri) || uri.Host.Length == 0)
            throw new ArgumentException($"PostgreSQL URI '{Redact(location)}' is not postgres://user:password@host:port/database", nameof(location));
        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host };
        if (!uri.IsDefaultPort && uri.Port > 0)
            builder.Port = uri.Port;
        if (uri.UserInfo.Length > 0)
        {
            string[] parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
                builder.Password = Uri.UnescapeDataString(parts[1]);
        }
        string database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
            builder.Database = database;
        foreach (string pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] keyValue = pair.Split('=', 2);
            string key = Uri.UnescapeDataString(keyValue[0]);
            try
            {
                builder[key] = keyValue.Length == 2 ? Uri.UnescapeDataString(keyValue[1]) : "true";
            }
            catch (ArgumentException)
            {
                throw new ArgumentException($"PostgreSQL URI parameter '{key}' is not an Npgsql connection string keyword", nameof(location));
            }
        }
        return builder.ConnectionString;
    }

    static string Redact(string location)
    {
        int at = location.IndexOf('@');
        int scheme = location.IndexOf("://", StringComparison.Ordinal);
        return at > scheme && scheme >= 0 ? location[..(scheme + 3)] + "…" + location[at..] : location;
    }
}

/// <summary>How both stores write records into columns: JSON text for lists, enum names, Unix milliseconds for times.</summary>
static class FeedbackCodec
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string Messages(IReadOnlyList<FeedbackMessage> messages) => JsonSerializer.Serialize(messages, Json);

    public static IReadOnlyList<FeedbackMessage> Messages(string json) => JsonSerializer.Deserialize<FeedbackMessage[]>(json, Json)!;

    public static string Responses(IReadOnlyList<FeedbackResponse> responses) => JsonSerializer.Serialize(responses, Json);

    public static IReadOnlyList<FeedbackResponse> Responses(string json) => JsonSerializer.Deserialize<FeedbackResponse[]>(json, Json)!;

    public static string Ranking(IReadOnlyList<int> ranking) => JsonSerializer.Serialize(ranking, Json);

    public static IReadOnlyList<int> Ranking(string json) => JsonSerializer.Deserialize<int[]>(json, Json)!;

    /// <summary>Times are kept to the millisecond; an unset time (default) means now.</summary>
    public static long Time(DateTimeOffset time) => (time == default ? DateTimeOffset.UtcNow : time).ToUnixTimeMilliseconds();

    public static DateTimeOffset Time(long milliseconds) => DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);

    public static T Parse<T>(string name) where T : struct, Enum => Enum.Parse<T>(name);

    /// <summary>A task row: id, name, kind, guidelines, rubric, overlap, created.</summary>
    public static FeedbackTask Task(DbDataReader reader) => new()
    {
        Id = reader.GetString(0),
        Name = reader.GetString(1),
        Kind = Parse<JudgementKind>(reader.GetString(2)),
        Guidelines = reader.GetString(3),
        Rubric = reader.IsDBNull(4) ? null : reader.GetString(4),
        Overlap = reader.GetInt32(5),
        Created = Time(reader.GetInt64(6)),
    };

    /// <summary>An item row: id, task_id, prompt, responses, source, created.</summary>
    public static FeedbackItem Item(DbDataReader reader) => new()
    {
        Id = reader.GetString(0),
        TaskId = reader.GetString(1),
        Prompt = Messages(reader.GetString(2)),
        Responses = Responses(reader.GetString(3)),
        Source = reader.GetString(4),
        Created = Time(reader.GetInt64(5)),
    };

    /// <summary>
    /// A judgement row: id, task_id, item_id, annotator, kind, at, prompt, shown, choice, ranking, rating, correction,
    /// thumbs_up (an integer in SQLite, a boolean in PostgreSQL: GetBoolean reads both), comment.
    /// </summary>
    public static Judgement Judgement(DbDataReader reader) => new()
    {
        Id = reader.GetInt64(0),
        TaskId = reader.GetString(1),
        ItemId = reader.GetString(2),
        Annotator = reader.GetString(3),
        Kind = Parse<JudgementKind>(reader.GetString(4)),
        At = Time(reader.GetInt64(5)),
        Prompt = Messages(reader.GetString(6)),
        Shown = Responses(reader.GetString(7)),
        Choice = reader.IsDBNull(8) ? null : Parse<PairwiseChoice>(reader.GetString(8)),
        Ranking = reader.IsDBNull(9) ? null : Ranking(reader.GetString(9)),
        Rating = reader.IsDBNull(10) ? null : reader.GetInt32(10),
        Correction = reader.IsDBNull(11) ? null : reader.GetString(11),
        ThumbsUp = reader.IsDBNull(12) ? null : reader.GetBoolean(12),
        Comment = reader.IsDBNull(13) ? null : reader.GetString(13),
    };
}
