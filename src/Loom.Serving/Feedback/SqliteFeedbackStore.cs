using Microsoft.Data.Sqlite;

namespace Loom.Serving.Feedback;

/// <summary>
/// The default feedback store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a judgement whose
/// <see cref="SubmitAsync"/> returned is on disk and survives kill -9 or a power cut. One connection per store,
/// used by one caller at a time (the server submits from many requests at once); other processes on the same file
/// wait on its lock (busy_timeout) rather than fail. Lists (prompts, shown responses, rankings) are JSON text,
/// times are Unix milliseconds.
/// </summary>
public sealed class SqliteFeedbackStore : IFeedbackStore
{
    /// <summary>The schema this code reads and writes, kept in the one-row table loom_feedback_schema.</summary>
    public const int SchemaVersion = 1;

    const int SqliteNotADatabase = 26;
    const int SqliteConstraint = 19;

    readonly SqliteConnection connection;
    readonly SemaphoreSlim gate = new(1, 1);

    /// <summary>Where the database lives (full path).</summary>
    public string DatabasePath { get; }

    SqliteFeedbackStore(string databasePath, SqliteConnection connection)
    {
        DatabasePath = databasePath;
        this.connection = connection;
    }

    /// <summary>
    /// Opens the database, creating it (and its folder) when missing. A file that is not a Loom feedback database (not
    /// SQLite, or SQLite holding other tables, or a newer schema) is refused with an <see cref="InvalidDataException"/>
    /// naming the file; one that cannot be opened (a folder, no permission) gives an <see cref="IOException"/> naming it.
    /// </summary>
    public static SqliteFeedbackStore Open(string databasePath)
    {
        if (string.IsNullOrWhiteSpace(databasePath))
            throw new ArgumentException("feedback database path must not be empty", nameof(databasePath));
        string path = Path.GetFullPath(databasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString());
        try
        {
            connection.Open();
            Execute(connection, "PRAGMA busy_timeout=30000;");
            // Look before writing anything: a foreign SQLite file must not be switched to WAL or given our tables.
            long tables = ScalarLong(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
            long ours = ScalarLong(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'loom_feedback_schema'");
            if (tables > 0 && ours == 0)
                throw new InvalidDataException($"{path}: not a Loom feedback database (it holds other tables)");
            // WAL with synchronous=FULL syncs the log on every commit: an acknowledged judgement is durable.
            Execute(connection, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
            using (var transaction = connection.BeginTransaction(deferred: false))
            {
                Execute(connection, """
                    CREATE TABLE IF NOT EXISTS loom_feedback_schema(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS tasks(
                        id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, guidelines TEXT NOT NULL, rubric TEXT,
                        overlap INTEGER NOT NULL, created INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS items(
                        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, task_id TEXT NOT NULL REFERENCES tasks(id),
                        prompt TEXT NOT NULL, responses TEXT NOT NULL, source TEXT NOT NULL, created INTEGER NOT NULL);
                    CREATE INDEX IF NOT EXISTS items_task ON items(task_id, created, seq);
                    CREATE TABLE IF NOT EXISTS judgements(
                        id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, item_id TEXT NOT NULL REFERENCES items(id),
                        annotator TEXT NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL, prompt TEXT NOT NULL, shown TEXT NOT NULL,
                        choice TEXT, ranking TEXT, rating INTEGER, correction TEXT, thumbs_up INTEGER, comment TEXT,
                        UNIQUE(item_id, annotator));
                    CREATE INDEX IF NOT EXISTS judgements_task ON judgements(task_id, id);
                    CREATE INDEX IF NOT EXISTS judgements_annotator ON judgements(annotator, id);
                    CREATE TABLE IF NOT EXISTS annotators(name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS versions(
                        version TEXT PRIMARY KEY, parent TEXT, path TEXT NOT NULL, created INTEGER NOT NULL, lineage TEXT NOT NULL);
                    """, transaction);
                Execute(connection, $"INSERT OR IGNORE INTO loom_feedback_schema(id, version) VALUES (1, {SchemaVersion});", transaction);
                using var command = connection.CreateCommand();
                command.Transaction = transaction;
                command.CommandText = "SELECT version FROM loom_feedback_schema WHERE id = 1";
                long version = Convert.ToInt64(command.ExecuteScalar());
                if (version != SchemaVersion)
                    throw new InvalidDataException($"{path}: feedback database schema version {version}, this Loom reads version {SchemaVersion}");
                transaction.Commit();
            }
            return new SqliteFeedbackStore(path, connection);
        }
        catch (SqliteException exception) when (exception.SqliteErrorCode == SqliteNotADatabase)
        {
            connection.Dispose();
            throw new InvalidDataException($"{path}: not a Loom feedback database (not a SQLite file)", exception);
        }
        catch (SqliteException exception)
        {
            connection.Dispose();
            throw new IOException($"{path}: {exception.Message}", exception);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>A pragma's value on this store's connection (tests check durability settings with it).</summary>
    internal string Pragma(string name)
    {
        gate.Wait();
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"PRAGMA {name}";
            return Convert.ToString(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture)!;
        }
        finally { gate.Release(); }
    }

    public Task SaveTaskAsync(FeedbackTask task, CancellationToken cancellationToken)
    {
        JudgementRules.CheckTask(task);
        return WithGateAsync(() =>
        {
            using var transaction = connection.BeginTransaction(deferred: false);
            if (ReadTask(task.Id, transaction) is { } stored)
                JudgementRules.CheckTaskUpdate(stored, task);
            using var command = Command("""
                INSERT INTO tasks(id, name, kind, guidelines, rubric, overlap, created) VALUES ($id, $name, $kind, $guidelines, $rubric, $overlap, $created)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, guidelines = excluded.guidelines, rubric = excluded.rubric, overlap = excluded.overlap
                """, transaction);
            command.Parameters.AddWithValue("$id", task.Id);
            command.Parameters.AddWithValue("$name", task.Name);
            command.Parameters.AddWithValue("$kind", task.Kind.ToString());
            command.Parameters.AddWithValue("$guidelines", task.Guidelines);
            command.Parameters.AddWithValue("$rubric", (object?)task.Rubric ?? DBNull.Value);
            command.Parameters.AddWithValue("$overlap", task.Overlap);
            command.Parameters.AddWithValue("$created", FeedbackCodec.Time(task.Created));
            command.ExecuteNonQuery();
            transaction.Commit();
            return true;
        }, cancellationToken);
    }

    public Task<FeedbackTask?> GetTaskAsync(string id, CancellationToken cancellationToken) =>
        WithGateAsync(() => ReadTask(id, null), cancellationToken);

    public Task<IReadOnlyList<FeedbackTask>> ListTasksAsync(CancellationToken cancellationToken) =>
        WithGateAsync<IReadOnlyList<FeedbackTask>>(() =>
        {
            using var command = Command($"{TaskColumns} ORDER BY created, id", null);
            return ReadAll(command, FeedbackCodec.Task);
        }, cancellationToken);

    public Task<int> AddItemsAsync(IReadOnlyList<FeedbackItem> items, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        foreach (var item in items)
            JudgementRules.CheckItem(item);
        return WithGateAsync(() =>
        {
            using var transaction = connection.BeginTransaction(deferred: false);
            var tasks = new Dictionary<string, FeedbackTask>();
            foreach (var item in items)
            {
                if (!tasks.TryGetValue(item.TaskId, out var task))
                    tasks[item.TaskId] = task = ReadTask(item.TaskId, transaction) ?? throw new ArgumentException($"FeedbackItem.TaskId '{item.TaskId}' is not a stored task");
                JudgementRules.CheckItemFitsTask(item, task);
            }
            using var command = Command("""
                INSERT INTO items(id, task_id, prompt, responses, source, created) VALUES ($id, $task, $prompt, $responses, $source, $created)
                ON CONFLICT(id) DO NOTHING
                """, transaction);
            var id = command.Parameters.Add("$id", SqliteType.Text);
            var taskId = command.Parameters.Add("$task", SqliteType.Text);
            var prompt = command.Parameters.Add("$prompt", SqliteType.Text);
            var responses = command.Parameters.Add("$responses", SqliteType.Text);
            var source = command.Parameters.Add("$source", SqliteType.Text);
            var created = command.Parameters.Add("$created", SqliteType.Integer);
            int added = 0;
            foreach (var item in items)
            {
                id.Value = item.Id;
                taskId.Value = item.TaskId;
                prompt.Value = FeedbackCodec.Messages(item.Prompt);
                responses.Value = FeedbackCodec.Responses(item.Responses);
                source.Value = item.Source;
                created.Value = FeedbackCodec.Time(item.Created);
                added += command.ExecuteNonQuery();
            }
            transaction.Commit();
            return added;
        }, cancellationToken);
    }

    public Task<FeedbackItem?> GetItemAsync(string id, CancellationToken cancellationToken) =>
        WithGateAsync(() => ReadItem(id, null), cancellationToken);

    public Task<IReadOnlyList<FeedbackItem>> ListItemsAsync(string taskId, CancellationToken cancellationToken) =>
        WithGateAsync<IReadOnlyList<FeedbackItem>>(() =>
        {
            using var command = Command($"{ItemColumns} WHERE task_id = $task ORDER BY created, seq", null);
            command.Parameters.AddWithValue("$task", taskId);
            return ReadAll(command, FeedbackCodec.Item);
        }, cancellationToken);

    public Task<FeedbackItem?> NextItemAsync(string taskId, string annotator, CancellationToken cancellationToken) =>
        WithGateAsync(() =>
        {
            using var command = Command($"""
                {ItemColumns} i WHERE i.task_id = $task
                AND NOT EXISTS (SELECT 1 FROM judgements j WHERE j.item_id = i.id AND j.annotator = $annotator)
                AND (SELECT count(*) FROM judgements j WHERE j.item_id = i.id) < (SELECT overlap FROM tasks WHERE id = $task)
                ORDER BY i.created, i.seq LIMIT 1
                """, null);
            command.Parameters.AddWithValue("$task", taskId);
            command.Parameters.AddWithValue("$annotator", annotator);
            using var reader = command.ExecuteReader();
            return reader.Read() ? FeedbackCodec.Item(reader) : null;
        }, cancellationToken);

    public Task<long> SubmitAsync(Judgement judgement, CancellationToken cancellationToken)
    {
        JudgementRules.CheckJudgement(judgement);
        return WithGateAsync(() =>
        {
            using var transaction = connection.BeginTransaction(deferred: false);
            JudgementRules.CheckJudgementTarget(judgement, ReadTask(judgement.TaskId, transaction), ReadItem(judgement.ItemId, transaction));
            using (var exists = Command("SELECT count(*) FROM judgements WHERE item_id = $item AND annotator = $annotator", transaction))
            {
                exists.Parameters.AddWithValue("$item", judgement.ItemId);
                exists.Parameters.AddWithValue("$annotator", judgement.Annotator);
                if (Convert.ToInt64(exists.ExecuteScalar()) > 0)
                    throw JudgementRules.AlreadyJudged(judgement);
            }
            using var command = Command("""
                INSERT INTO judgements(task_id, item_id, annotator, kind, at, prompt, shown, choice, ranking, rating, correction, thumbs_up, comment)
                VALUES ($task, $item, $annotator, $kind, $at, $prompt, $shown, $choice, $ranking, $rating, $correction, $thumbs, $comment)
                RETURNING id
                """, transaction);
            command.Parameters.AddWithValue("$task", judgement.TaskId);
            command.Parameters.AddWithValue("$item", judgement.ItemId);
            command.Parameters.AddWithValue("$annotator", judgement.Annotator);
            command.Parameters.AddWithValue("$kind", judgement.Kind.ToString());
            command.Parameters.AddWithValue("$at", FeedbackCodec.Time(judgement.At));
            command.Parameters.AddWithValue("$prompt", FeedbackCodec.Messages(judgement.Prompt));
            command.Parameters.AddWithValue("$shown", FeedbackCodec.Responses(judgement.Shown));
            command.Parameters.AddWithValue("$choice", (object?)judgement.Choice?.ToString() ?? DBNull.Value);
            command.Parameters.AddWithValue("$ranking", judgement.Ranking is null ? DBNull.Value : FeedbackCodec.Ranking(judgement.Ranking));
            command.Parameters.AddWithValue("$rating", (object?)judgement.Rating ?? DBNull.Value);
            command.Parameters.AddWithValue("$correction", (object?)judgement.Correction ?? DBNull.Value);
            command.Parameters.AddWithValue("$thumbs", judgement.ThumbsUp is { } up ? (up ? 1 : 0) : DBNull.Value);
            command.Parameters.AddWithValue("$comment", (object?)judgement.Comment ?? DBNull.Value);
            long id;
            try
            {
                id = Convert.ToInt64(command.ExecuteScalar());
            }
            catch (SqliteException exception) when (exception.SqliteErrorCode == SqliteConstraint)
            {
                throw JudgementRules.AlreadyJudged(judgement);
            }
            transaction.Commit();
            return id;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<Judgement>> ListJudgementsAsync(JudgementQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        return WithGateAsync<IReadOnlyList<Judgement>>(() =>
        {
            using var command = Command("""
                SELECT id, task_id, item_id, annotator, kind, at, prompt, shown, choice, ranking, rating, correction, thumbs_up, comment
                FROM judgements
                WHERE id > $after AND ($task IS NULL OR task_id = $task) AND ($item IS NULL OR item_id = $item)
                AND ($annotator IS NULL OR annotator = $annotator)
                ORDER BY id
                """, null);
            command.Parameters.AddWithValue("$after", query.AfterId);
            command.Parameters.AddWithValue("$task", (object?)query.TaskId ?? DBNull.Value);
            command.Parameters.AddWithValue("$item", (object?)query.ItemId ?? DBNull.Value);
            command.Parameters.AddWithValue("$annotator", (object?)query.Annotator ?? DBNull.Value);
            return ReadAll(command, FeedbackCodec.Judgement);
        }, cancellationToken);
    }

    public Task SaveAnnotatorAsync(Annotator annotator, string passwordHash, CancellationToken cancellationToken)
    {
        JudgementRules.CheckAnnotator(annotator, passwordHash);
        return WithGateAsync(() =>
        {
            using var command = Command("""
                INSERT INTO annotators(name, role, password_hash) VALUES ($name, $role, $hash)
                ON CONFLICT(name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash
                """, null);
            command.Parameters.AddWithValue("$name", annotator.Name);
            command.Parameters.AddWithValue("$role", annotator.Role.ToString());
            command.Parameters.AddWithValue("$hash", passwordHash);
            command.ExecuteNonQuery();
            return true;
        }, cancellationToken);
    }

    public Task<(Annotator Annotator, string PasswordHash)?> GetAnnotatorAsync(string name, CancellationToken cancellationToken) =>
        WithGateAsync<(Annotator, string)?>(() =>
        {
            using var command = Command("SELECT name, role, password_hash FROM annotators WHERE name = $name", null);
            command.Parameters.AddWithValue("$name", name);
            using var reader = command.ExecuteReader();
            return reader.Read() ? (new Annotator(reader.GetString(0), FeedbackCodec.Parse<AnnotatorRole>(reader.GetString(1))), reader.GetString(2)) : null;
        }, cancellationToken);

    public Task<IReadOnlyList<Annotator>> ListAnnotatorsAsync(CancellationToken cancellationToken) =>
        WithGateAsync<IReadOnlyList<Annotator>>(() =>
        {
            using var command = Command("SELECT name, role FROM annotators ORDER BY name", null);
            return ReadAll(command, reader => new Annotator(reader.GetString(0), FeedbackCodec.Parse<AnnotatorRole>(reader.GetString(1))));
        }, cancellationToken);

    public Task SaveVersionAsync(ModelVersionEntry version, CancellationToken cancellationToken)
    {
        JudgementRules.CheckVersion(version);
        return WithGateAsync(() =>
        {
            using var command = Command("""
                INSERT INTO versions(version, parent, path, created, lineage) VALUES ($version, $parent, $path, $created, $lineage)
                ON CONFLICT(version) DO UPDATE SET parent = excluded.parent, path = excluded.path, created = excluded.created, lineage = excluded.lineage
                """, null);
            command.Parameters.AddWithValue("$version", version.Version);
            command.Parameters.AddWithValue("$parent", (object?)version.Parent ?? DBNull.Value);
            command.Parameters.AddWithValue("$path", version.Path);
            command.Parameters.AddWithValue("$created", FeedbackCodec.Time(version.Created));
            command.Parameters.AddWithValue("$lineage", version.LineageJson);
            command.ExecuteNonQuery();
            return true;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<ModelVersionEntry>> ListVersionsAsync(CancellationToken cancellationToken) =>
        WithGateAsync<IReadOnlyList<ModelVersionEntry>>(() =>
        {
            using var command = Command("SELECT version, parent, path, created, lineage FROM versions ORDER BY created, version", null);
            return ReadAll(command, reader => new ModelVersionEntry(
                reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), FeedbackCodec.Time(reader.GetInt64(3)), reader.GetString(4)));
        }, cancellationToken);

    public void Dispose()
    {
        connection.Dispose();
        gate.Dispose();
    }

    const string TaskColumns = "SELECT id, name, kind, guidelines, rubric, overlap, created FROM tasks";
    const string ItemColumns = "SELECT id, task_id, prompt, responses, source, created FROM items";

    FeedbackTask? ReadTask(string id, SqliteTransaction? transaction)
    {
        using var command = Command($"{TaskColumns} WHERE id = $id", transaction);
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        return reader.Read() ? FeedbackCodec.Task(reader) : null;
    }

    FeedbackItem? ReadItem(string id, SqliteTransaction? transaction)
    {
        using var command = Command($"{ItemColumns} WHERE id = $id", transaction);
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        return reader.Read() ? FeedbackCodec.Item(reader) : null;
    }

    static List<T> ReadAll<T>(SqliteCommand command, Func<SqliteDataReader, T> read)
    {
        using var reader = command.ExecuteReader();
        var result = new List<T>();
        while (reader.Read())
            result.Add(read(reader));
        return result;
    }

    SqliteCommand Command(string sql, SqliteTransaction? transaction)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    /// <summary>
    /// Runs work on the one connection, one caller at a time. Microsoft.Data.Sqlite's async methods complete
    /// synchronously, so the work is plain synchronous ADO.NET under an async gate.
    /// </summary>
    async Task<T> WithGateAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            return work();
        }
        finally { gate.Release(); }
    }

    static void Execute(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    static long ScalarLong(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar());
    }
}
