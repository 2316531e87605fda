using System.Data.Common;
using System.Text.Encodings.Web;
using System.Text.Json;
using Loom.Retrieval;
using Spectre.Console;

namespace Loom.Cli.Commands;

/// <summary>What ingest, search and ask share: option parsing helpers, the error policy, and the chat client registry.</summary>
internal static class RetrievalCli
{
    /// <summary>Runs a command body; user mistakes print one line (no stack trace) and exit 1.</summary>
    internal static async Task<int> RunAsync(string command, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"loom {command}: cancelled");
            return 130;
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidDataException or FileNotFoundException
            or DirectoryNotFoundException or IOException or UnauthorizedAccessException or DbException or InvalidOperationException)
        {
            Console.Error.WriteLine($"loom {command}: {FlagNames.Rephrase(exception.Message.ReplaceLineEndings(" "))}");
            return 1;
        }
    }

    internal static SearchMode ParseMode(string? mode) => mode?.ToLowerInvariant() switch
    {
        null or "hybrid" => SearchMode.Hybrid,
        "bm25" => SearchMode.Bm25,
        "vector" => SearchMode.Vector,
        _ => throw new ArgumentException($"--mode must be bm25, vector or hybrid, not '{mode}'"),
    };

    /// <summary>Prints hits as a table: rank, score, source, heading, text excerpt.</summary>
    internal static void PrintHits(IReadOnlyList<SearchHit> hits, string title)
    {
        var table = new Table().Title(Markup.Escape(title)).AddColumns("#", "score", "source", "section", "text");
        table.Columns[4].Width(70);
        for (int i = 0; i < hits.Count; i++)
        {
            var hit = hits[i];
            string excerpt = hit.Text.ReplaceLineEndings(" ");
            if (excerpt.Length > 200)
                excerpt = excerpt[..200] + "...";
            table.AddRow((i + 1).ToString(), hit.Score.ToString("G4"), Markup.Escape(hit.SourceId), Markup.Escape(hit.HeadingPath), Markup.Escape(excerpt));
        }
        AnsiConsole.Write(table);
    }

    /// <summary>Writes one indented JSON document to standard output, then a newline.</summary>
    internal static void WriteJson(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            write(writer);
        Console.Out.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    /// <summary>
    /// One hit as JSON: its source id, title, section (heading path), chunk text, tags and the stages that ranked it
    /// (stage name, rank from 1, score there), after the given leading properties.
    /// </summary>
    internal static void WriteHit(Utf8JsonWriter writer, SearchHit hit)
    {
        writer.WriteString("sourceId", hit.SourceId);
        writer.WriteString("title", hit.Title);
        writer.WriteString("section", hit.HeadingPath);
        writer.WriteString("text", hit.Text);
        writer.WriteStartObject("tags");
        foreach (var (key, value) in hit.Tags.OrderBy(pair => pair.Key, StringComparer.Ordinal))
            writer.WriteString(key, value);
        writer.WriteEndObject();
        writer.WriteStartArray("stages");
        foreach (var stage in hit.Stages)
        {
            writer.WriteStartObject();
            writer.WriteString("stage", stage.Stage);
            writer.WriteNumber("rank", stage.Rank);
            writer.WriteNumber("score", stage.Score);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }
}
