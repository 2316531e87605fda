using System.Text.RegularExpressions;
using Npgsql;

namespace Loom.Serving.Feedback;

/// <summary>
/// The feedback store for many servers: the same tables as <see cref="SqliteFeedbackStore"/> in one PostgreSQL schema
/// (default "loom_feedback"; tests use one schema each). Submissions take a transaction-scoped advisory lock, so ids
/// are handed out in commit order: a reader that saw id N never later finds a new judgement below N (the AfterId of
/// <see cref="JudgementQuery"/> relies on it). A commit returns once PostgreSQL has made it durable
/// (synchronous_commit, on by default).
/// </summary>
public sealed partial class PostgresFeedbackStore : IFeedbackStore
{
    /// <summary>The schema used when none is given.</summary>
    public const string DefaultSchema = "loom_feedback";

    const string UniqueViolation = "23505";

    readonly NpgsqlDataSource dataSource;
    readonly string schema;

    /// <summary>The schema holding this store's tables.</summary>
    public string Schema => schema;

    PostgresFeedbackStore(NpgsqlDataSource dataSource, string schema)
    {
        this.dataSource = dataSource;
        this.schema = schema;
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaPattern();

    /// <summary>
    /// Opens the store in <paramref name="schema"/> (null: <see cref="DefaultSchema"/>), creating the schema and its
    /// tables when missing. A schema that holds other tables, or a newer version of ours, is refused with an
    /// <see cref="InvalidDataException"/> naming it.
    /// </summary>
    public static async Task<PostgresFeedbackStore> OpenAsync(string connectionString, string? schema, CancellationToken cancellationToken)
    {
        schema ??= DefaultSchema;
        CheckSchema(schema);
        var dataSource = NpgsqlDataSource.Create(connectionString);
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            // Two processes creating the same schema at once would race; the lock serialises them until commit.
            await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock(hashtext('loom-feedback-{schema}'))", cancellationToken);
            long tables = await ScalarLongAsync(connection, transaction,
                $"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'", cancellationToken);
            long ours = await ScalarLongAsync(connection, transaction,
                $"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name = 'loom_feedback_schema'", cancellationToken);
            if (tables > 0 && ours == 0)
                throw new InvalidDataException($"PostgreSQL schema {schema}: not a Loom feedback store (it holds other tables)");
            await ExecuteAsync(connection, transaction, $"""
                CREATE SCHEMA IF NOT EXISTS {schema};
                CREATE TABLE IF NOT EXISTS {schema}.loom_feedback_schema(id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);
                CREATE TABLE IF NOT EXISTS {schema}.tasks(
                    id text PRIMARY KEY, name text NOT NULL, kind text NOT NULL, guidelines text NOT NULL, rubric text,
                    overlap int NOT NULL, created bigint NOT NULL);
                CREATE TABLE IF NOT EXISTS {schema}.items(
                    seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, task_id text NOT NULL REFERENCES {schema}.tasks(id),
                    prompt text NOT NULL, responses text NOT NULL, source text NOT NULL, created bigint NOT NULL);
                CREATE INDEX IF NOT EXISTS items_task ON {schema}.items(task_id, created, seq);
                CREATE TABLE IF NOT EXISTS {schema}.judgements(
                    id bigserial PRIMARY KEY, task_id text NOT NULL, item_id text NOT NULL REFERENCES {schema}.items(id),
                    annotator text NOT NULL, kind text NOT NULL, at bigint NOT NULL, prompt text NOT NULL, shown text NOT NULL,
                    choice text, ranking text, rating int, correction text, thumbs_up boolean, comment text,
                    UNIQUE(item_id, annotator));
                CREATE INDEX IF NOT EXISTS judgements_task ON {schema}.judgements(task_id, id);
                CREATE INDEX IF NOT EXISTS judgements_annotator ON {schema}.judgements(annotator, id);
                CREATE TABLE IF NOT EXISTS {schema}.annotators(name text PRIMARY KEY, role text NOT NULL, password_hash text NOT NULL);
                CREATE TABLE IF NOT EXISTS {schema}.versions(
                    version text PRIMARY KEY, parent text, path text NOT NULL, created bigint NOT NULL, lineage text NOT NULL);
                INSERT INTO {schema}.loom_feedback_schema(id, version) VALUES (1, {SqliteFeedbackStore.SchemaVersion}) ON CONFLICT (id) DO NOTHING;
                """, cancellationToken);
            long version = await ScalarLongAsync(connection, transaction, $"SELECT version FROM {schema}.loom_feedback_schema WHERE id = 1", cancellationToken);
            if (version != SqliteFeedbackStore.SchemaVersion)
                throw new InvalidDataException($"PostgreSQL schema {schema}: feedback store schema version {version}, this Loom reads version {SqliteFeedbackStore.SchemaVersion}");
            await transaction.CommitAsync(cancellationToken);
            return new PostgresFeedbackStore(dataSource, schema);
        }
        catch
        {
            await dataSource.DisposeAsync();
            throw;
        }
    }

    /// <summary>Drops the schema and everything in it (tests and "start over").</summary>
    public static async Task DropAsync(string connectionString, string schema, CancellationToken cancellationToken)
    {
        CheckSchema(schema);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS {schema} CASCADE");
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    static void CheckSchema(string schema)
    {
        if (!SchemaPattern().IsMatch(schema))
            throw new ArgumentException($"PostgreSQL schema '{schema}' must be 1–63 lower-case letters, digits and underscores, not starting with a digit", nameof(schema));
    }

    public async Task SaveTaskAsync(FeedbackTask task, CancellationToken cancellationToken)
    {
        JudgementRules.CheckTask(task);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, $"SELECT 1 FROM {schema}.tasks WHERE id = $1 FOR UPDATE", cancellationToken, task.Id);
        if (await ReadTaskAsync(connection, transaction, task.Id, cancellationToken) is { } stored)
            JudgementRules.CheckTaskUpdate(stored, task);
        await ExecuteAsync(connection, transaction, $"""
            INSERT INTO {schema}.tasks(id, name, kind, guidelines, rubric, overlap, created) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, guidelines = excluded.guidelines, rubric = excluded.rubric, overlap = excluded.overlap
            """, cancellationToken, task.Id, task.Name, task.Kind.ToString(), task.Guidelines, task.Rubric, task.Overlap, FeedbackCodec.Time(task.Created));
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<FeedbackTask?> GetTaskAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadTaskAsync(connection, null, id, cancellationToken);
    }

    public async Task<IReadOnlyList<FeedbackTask>> ListTasksAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAllAsync(connection, null, $"{TaskColumns} ORDER BY created, id", FeedbackCodec.Task, cancellationToken);
    }

    public async Task<int> AddItemsAsync(IReadOnlyList<FeedbackItem> items, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        foreach (var item in items)
            JudgementRules.CheckItem(item);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var tasks = new Dictionary<string, FeedbackTask>();
        foreach (var item in items)
        {
            if (!tasks.TryGetValue(item.TaskId, out var task))
                tasks[item.TaskId] = task = await ReadTaskAsync(connection, transaction, item.TaskId, cancellationToken)
                    ?? throw new ArgumentException($"FeedbackItem.TaskId '{item.TaskId}' is not a stored task");
            JudgementRules.CheckItemFitsTask(item, task);
        }
        int added = 0;
        foreach (var item in items)
        {
            added += await ExecuteAsync(connection, transaction, $"""
                INSERT INTO {schema}.items(id, task_id, prompt, responses, source, created) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (id) DO NOTHING
                """, cancellationToken, item.Id, item.TaskId, FeedbackCodec.Messages(item.Prompt), FeedbackCodec.Responses(item.Responses), item.Source,
                FeedbackCodec.Time(item.Created));
        }
        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    public async Task<FeedbackItem?> GetItemAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadItemAsync(connection, null, id, cancellationToken);
    }

    public async Task<IReadOnlyList<FeedbackItem>> ListItemsAsync(string taskId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAllAsync(connection, null, $"{ItemColumns} WHERE task_id = $1 ORDER BY created, seq", FeedbackCodec.Item, cancellationToken, taskId);
    }

    public async Task<FeedbackItem?> NextItemAsync(string taskId, string annotator, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var items = await ReadAllAsync(connection, null, $"""
            {ItemColumns} i WHERE i.task_id = $1
            AND NOT EXISTS (SELECT 1 FROM {schema}.judgements j WHERE j.item_id = i.id AND j.annotator = $2)
            AND (SELECT count(*) FROM {schema}.judgements j WHERE j.item_id = i.id) < (SELECT overlap FROM {schema}.tasks WHERE id = $1)
            ORDER BY i.created, i.seq LIMIT 1
            """, FeedbackCodec.Item, cancellationToken, taskId, annotator);
        return items.Count == 0 ? null : items[0];
    }

    public async Task<long> SubmitAsync(Judgement judgement, CancellationToken cancellationToken)
    {
        JudgementRules.CheckJudgement(judgement);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // One submitter at a time per store, until commit: ids are taken and made visible in the same order.
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock(hashtext('loom-feedback-submit-{schema}'))", cancellationToken);
        JudgementRules.CheckJudgementTarget(judgement,
            await ReadTaskAsync(connection, transaction, judgement.TaskId, cancellationToken),
            await ReadItemAsync(connection, transaction, judgement.ItemId, cancellationToken));
        long existing = await ScalarLongAsync(connection, transaction,
            $"SELECT count(*) FROM {schema}.judgements WHERE item_id = $1 AND annotator = $2", cancellationToken, judgement.ItemId, judgement.Annotator);
        if (existing > 0)
            throw JudgementRules.AlreadyJudged(judgement);
        long id;
        try
        {
            id = await ScalarLongAsync(connection, transaction, $"""
                INSERT INTO {schema}.judgements(task_id, item_id, annotator, kind, at, prompt, shown, choice, ranking, rating, correction, thumbs_up, comment)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                RETURNING id
                """, cancellationToken,
                judgement.TaskId, judgement.ItemId, judgement.Annotator, judgement.Kind.ToString(), FeedbackCodec.Time(judgement.At),
                FeedbackCodec.Messages(judgement.Prompt), FeedbackCodec.Responses(judgement.Shown), judgement.Choice?.ToString(),
                judgement.Ranking is null ? null : FeedbackCodec.Ranking(judgement.Ranking), judgement.Rating, judgement.Correction,
                judgement.ThumbsUp, judgement.Comment);
        }
        catch (PostgresException exception) when (exception.SqlState == UniqueViolation)
        {
            throw JudgementRules.AlreadyJudged(judgement);
        }
        await transaction.CommitAsync(cancellationToken);
        return id;
    }

    public async Task<IReadOnlyList<Judgement>> ListJudgementsAsync(JudgementQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAllAsync(connection, null, $"""
            SELECT id, task_id, item_id, annotator, kind, at, prompt, shown, choice, ranking, rating, correction, thumbs_up, comment
            FROM {schema}.judgements
            WHERE id > $1 AND ($2::text IS NULL OR task_id = $2) AND ($3::text IS NULL OR item_id = $3) AND ($4::text IS NULL OR annotator = $4)
            ORDER BY id
            """, FeedbackCodec.Judgement, cancellationToken, query.AfterId, query.TaskId, query.ItemId, query.Annotator);
    }

    public async Task SaveAnnotatorAsync(Annotator annotator, string passwordHash, CancellationToken cancellationToken)
    {
        JudgementRules.CheckAnnotator(annotator, passwordHash);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, null, $"""
            INSERT INTO {schema}.annotators(name, role, password_hash) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash
            """, cancellationToken, annotator.Name, annotator.Role.ToString(), passwordHash);
    }

    public async Task<(Annotator Annotator, string PasswordHash)?> GetAnnotatorAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var found = await ReadAllAsync(connection, null, $"SELECT name, role, password_hash FROM {schema}.annotators WHERE name = $1",
            reader => (new Annotator(reader.GetString(0), FeedbackCodec.Parse<AnnotatorRole>(reader.GetString(1))), reader.GetString(2)), cancellationToken, name);
        return found.Count == 0 ? null : found[0];
    }

    public async Task<IReadOnlyList<Annotator>> ListAnnotatorsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // COLLATE "C" sorts by code point, as SQLite does.
        return await ReadAllAsync(connection, null, $"SELECT name, role FROM {schema}.annotators ORDER BY name COLLATE \"C\"",
            reader => new Annotator(reader.GetString(0), FeedbackCodec.Parse<AnnotatorRole>(reader.GetString(1))), cancellationToken);
    }

    public async Task SaveVersionAsync(ModelVersionEntry version, CancellationToken cancellationToken)
    {
        JudgementRules.CheckVersion(version);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, null, $"""
            INSERT INTO {schema}.versions(version, parent, path, created, lineage) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (version) DO UPDATE SET parent = excluded.parent, path = excluded.path, created = excluded.created, lineage = excluded.lineage
            """, cancellationToken, version.Version, version.Parent, version.Path, FeedbackCodec.Time(version.Created), version.LineageJson);
    }

    public async Task<IReadOnlyList<ModelVersionEntry>> ListVersionsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAllAsync(connection, null, $"SELECT version, parent, path, created, lineage FROM {schema}.versions ORDER BY created, version COLLATE \"C\"",
            reader => new ModelVersionEntry(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2),
                FeedbackCodec.Time(reader.GetInt64(3)), reader.GetString(4)), cancellationToken);
    }

    public void Dispose() => dataSource.Dispose();

    string TaskColumns => $"SELECT id, name, kind, guidelines, rubric, overlap, created FROM {schema}.tasks";
    string ItemColumns => $"SELECT id, task_id, prompt, responses, source, created FROM {schema}.items";

    async Task<FeedbackTask?> ReadTaskAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string id, CancellationToken cancellationToken)
    {
        var tasks = await ReadAllAsync(connection, transaction, $"{TaskColumns} WHERE id = $1", FeedbackCodec.Task, cancellationToken, id);
        return tasks.Count == 0 ? null : tasks[0];
    }

    async Task<FeedbackItem?> ReadItemAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string id, CancellationToken cancellationToken)
    {
        var items = await ReadAllAsync(connection, transaction, $"{ItemColumns} WHERE id = $1", FeedbackCodec.Item, cancellationToken, id);
        return items.Count == 0 ? null : items[0];
    }

    static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (object? parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter ?? DBNull.Value });
        return command;
    }

    static async Task<List<T>> ReadAllAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, Func<NpgsqlDataReader, T> read,
        CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var result = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
            result.Add(read(reader));
        return result;
    }

    static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    static async Task<long> ScalarLongAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken));
    }
}
