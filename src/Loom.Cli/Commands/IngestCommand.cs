using System.CommandLine;
using Loom.Retrieval;
using Loom.Text;
using Spectre.Console;

namespace Loom.Cli.Commands;

/// <summary>`loom ingest`: brings an index in step with files, folders and SQL query rows.</summary>
internal static class IngestCommand
{
    internal static Command Create()
    {
        var index = new Option<string>("--index") { Description = "Index folder (created when missing)", Required = true };
        var tags = new Option<string[]>("--tag") { Description = "Tag every document: key=value (repeatable)", AllowMultipleArgumentsPerToken = false, Arity = ArgumentArity.ZeroOrMore };
        var embedder = new Option<string?>("--embedder") { Description = "Embedder for a new index: minilm (default, all-MiniLM-L6-v2) or hashing (fast, lexical)" };
        var postgres = new Option<string?>("--postgres") { Description = "Keep the index in PostgreSQL (connection string) instead of SQLite in the folder" };
        var sql = new Option<string?>("--sql") { Description = "Ingest the rows of this SQL query (one document per row)" };
        var connection = new Option<string?>("--connection") { Description = "Connection string for --sql (e.g. \"Data Source=x.db\")" };
        var provider = new Option<string>("--provider") { Description = "Database for --sql: sqlite (default) or postgres", DefaultValueFactory = _ => SqlReader.Sqlite };
        var maxBytes = new Option<long>("--max-file-bytes") { Description = "Skip files larger than this, unread", DefaultValueFactory = _ => FileReader.DefaultMaxBytes };
        var chunkTokens = new Option<int>("--chunk-tokens") { Description = "Maximum tokens per chunk (cl100k_base count)", DefaultValueFactory = _ => new ChunkerOptions().MaxTokens };
        var overlapTokens = new Option<int>("--overlap-tokens") { Description = "Tokens repeated from the previous chunk", DefaultValueFactory = _ => new ChunkerOptions().OverlapTokens };
        var watch = new Option<bool>("--watch") { Description = "Keep watching the files and folders and re-ingest on change until Ctrl-C" };
        var verbose = new Option<bool>("--verbose") { Description = "List every document, not only skipped and removed ones" };
        var sources = new Argument<string[]>("source") { Description = $"Files and folders to ingest, or {DotnetDocs.CorpusName} (every documented member of the installed .NET SDK)", Arity = ArgumentArity.ZeroOrMore };

        var command = new Command("ingest", "Ingest files, folders and SQL rows into a retrieval index (only changed content is re-embedded)");
        foreach (var option in new Option[] { index, tags, embedder, postgres, sql, connection, provider, maxBytes, chunkTokens, overlapTokens, watch, verbose })
            command.Options.Add(option);
        command.Arguments.Add(sources);
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("ingest", async () =>
        {
            string[] given = parseResult.GetValue(sources) ?? [];
            bool dotnetDocs = given.Contains(DotnetDocs.CorpusName);
            string[] paths = given.Where(source => source != DotnetDocs.CorpusName).ToArray();
            string? query = parseResult.GetValue(sql);
            string? connectionString = parseResult.GetValue(connection);
            if (given.Length == 0 && query is null)
                throw new ArgumentException($"nothing to ingest: give files or folders, {DotnetDocs.CorpusName}, or --sql with --connection");
            if (query is not null && string.IsNullOrWhiteSpace(connectionString))
                throw new ArgumentException("--sql needs --connection");
            var tagValues = TagParser.Parse(parseResult.GetValue(tags));
            var progress = new IngestProgressPrinter(Console.Out, terminal: !Console.IsOutputRedirected);
            var options = new IngestOptions(new ChunkerOptions(parseResult.GetValue(chunkTokens), parseResult.GetValue(overlapTokens)), parseResult.GetValue(maxBytes),
                Progress: progress);

            using var retrievalIndex = await RetrievalIndex.OpenAsync(parseResult.GetValue(index)!, parseResult.GetValue(embedder), parseResult.GetValue(postgres), create: true, cancellationToken);
            var ingestor = new Ingestor(retrievalIndex.Store, retrievalIndex.Embedder, options);
            bool verboseOutput = parseResult.GetValue(verbose);

            async Task<IngestReport> RunOnceAsync(CancellationToken token)
            {
                var parts = new List<IngestReport>();
                if (paths.Length > 0)
                    parts.Add(await progress.RunAsync(() => ingestor.IngestPathsAsync(paths, tagValues, token)));
                if (dotnetDocs)
                    parts.Add(await progress.RunAsync(() => ingestor.IngestDocumentsAsync(DotnetDocsReader.ReadAll(tagValues).ToList(), token)));
                if (query is not null)
                    parts.Add(await progress.RunAsync(() => ingestor.IngestSqlAsync(new SqlSource(parseResult.GetValue(provider)!, connectionString!, query), tagValues, token)));
                Print(parts, verboseOutput);
                return IngestReport.Combine(parts);
            }

            var first = await RunOnceAsync(cancellationToken);
            var counts = await retrievalIndex.Store.CountAsync(null, cancellationToken);
            AnsiConsole.MarkupLine($"index: {counts.Documents} documents, {counts.Chunks} chunks");
            if (parseResult.GetValue(watch))
            {
                await WatchAsync(paths, RunOnceAsync, cancellationToken);
                return 0;
            }
            return first.AnythingDone ? 0 : 1;
        }));
        return command;
    }

    static void Print(List<IngestReport> parts, bool verbose)
    {
        foreach (var report in parts)
        {
            var shown = report.Entries.Where(entry => verbose || entry.Outcome is IngestOutcome.Skipped or IngestOutcome.Removed).ToList();
            if (shown.Count > 0)
            {
                var table = new Table().AddColumns("outcome", "source", "chunks", "reason");
                foreach (var entry in shown)
                    table.AddRow(entry.Outcome.ToString().ToLowerInvariant(), Markup.Escape(entry.Source), entry.Chunks.ToString(), Markup.Escape(entry.Reason ?? ""));
                AnsiConsole.Write(table);
            }
            AnsiConsole.MarkupLine(Markup.Escape("ingest: " + report));
        }
    }

    /// <summary>Re-runs ingestion once changes under the watched paths settle, until Ctrl-C.</summary>
    static async Task WatchAsync(string[] paths, Func<CancellationToken, Task<IngestReport>> runOnce, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, eventArgs) => { eventArgs.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            await IndexWatcher.WatchAsync(new IndexWatchOptions { Paths = paths }, runOnce, new ConsoleLines(), stop.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>Prints the watcher's messages as they come; the first (watching started) with how to stop.</summary>
    sealed class ConsoleLines : IProgress<string>
    {
        bool first = true;

        public void Report(string value)
        {
            AnsiConsole.MarkupLine(Markup.Escape(first ? value + " (Ctrl-C to stop)" : value));
            first = false;
        }
    }
}

/// <summary>
/// Ingest progress for people: on a terminal one line that updates in place (about 5 times a second); otherwise a
/// plain line every <see cref="PlainInterval"/> ("ingest: 1,200/45,000 documents, 44.1/s, ETA 16m 33s"), so logs show it.
/// </summary>
internal sealed class IngestProgressPrinter(TextWriter writer, bool terminal) : IProgress<IngestProgress>
{
    /// <summary>How often a plain line is written when the output is not a terminal.</summary>
    internal TimeSpan PlainInterval { get; init; } = TimeSpan.FromSeconds(5);

    static readonly TimeSpan TerminalInterval = TimeSpan.FromMilliseconds(200);
    TimeSpan lastPrinted;
    int lineLength;

    public void Report(IngestProgress value)
    {
        bool last = value.Total == value.Done;
        if (value.Elapsed - lastPrinted < (terminal ? TerminalInterval : PlainInterval) && !(terminal && last))
            return;
        lastPrinted = value.Elapsed;
        string line = Format(value);
        if (terminal)
        {
            writer.Write("\r" + line.PadRight(lineLength));
            lineLength = line.Length;
        }
        else
        {
            writer.WriteLine(line);
        }
    }

    /// <summary>Runs one ingestion, then ends the updating line so the summary starts on its own.</summary>
    public async Task<IngestReport> RunAsync(Func<Task<IngestReport>> ingest)
    {
        lastPrinted = TimeSpan.Zero;
        try
        {
            return await ingest();
        }
        finally
        {
            if (terminal && lineLength > 0)
                writer.WriteLine();
            lineLength = 0;
        }
    }

    /// <summary>"ingest: 1,200/45,000 documents, 44.1/s, ETA 16m 33s"; without a total: "ingest: 1,200 documents, 44.1/s".</summary>
    internal static string Format(IngestProgress value)
    {
        var culture = System.Globalization.CultureInfo.InvariantCulture;
        string done = value.Total is { } total
            ? string.Format(culture, "{0:N0}/{1:N0}", value.Done, total)
            : value.Done.ToString("N0", culture);
        string line = string.Format(culture, "ingest: {0} documents, {1:F1}/s", done, value.Rate);
        return value.Remaining is { } remaining ? line + ", ETA " + Duration(remaining) : line;
    }

    static string Duration(TimeSpan span) =>
        span.TotalHours >= 1 ? $"{(int)span.TotalHours}h {span.Minutes:D2}m"
        : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m {span.Seconds:D2}s"
        : $"{(int)Math.Ceiling(span.TotalSeconds)}s";
}
