using System.Data.Common;
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
}
