using System.CommandLine;
using Loom.Retrieval;

namespace Loom.Cli.Commands;

/// <summary>`loom search`: BM25, vector or hybrid search over an index, printed as a table or (--json) as one JSON document.</summary>
internal static class SearchCommand
{
    internal static Command Create()
    {
        var index = new Option<string>("--index") { Description = "Index folder", Required = true };
        var mode = new Option<string>("--mode") { Description = "bm25, vector or hybrid (reciprocal-rank fusion, k=60)", DefaultValueFactory = _ => "hybrid" };
        var top = new Option<int>("--top") { Description = "How many results", DefaultValueFactory = _ => 5 };
        var tags = new Option<string[]>("--tag") { Description = "Only documents with this tag: key=value (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var source = new Option<string?>("--source") { Description = "Only documents whose source id starts with this" };
        var postgres = new Option<string?>("--postgres") { Description = "Connection string, when the index lives in PostgreSQL" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (query, mode, hits with rank, score, source, chunk text and stage scores) instead of a table" };
        var query = new Argument<string>("query") { Description = "What to look for" };

        var command = new Command("search", "Search a retrieval index");
        foreach (var option in new Option[] { index, mode, top, tags, source, postgres, json })
            command.Options.Add(option);
        command.Arguments.Add(query);
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("search", async () =>
        {
            var searchMode = RetrievalCli.ParseMode(parseResult.GetValue(mode));
            int count = parseResult.GetValue(top);
            if (count <= 0)
                throw new ArgumentException($"--top must be positive, not {count}");
            var filter = SearchFilter.From(TagParser.Parse(parseResult.GetValue(tags)), parseResult.GetValue(source));
            using var retrievalIndex = await RetrievalIndex.OpenAsync(parseResult.GetValue(index)!, null, parseResult.GetValue(postgres), create: false, cancellationToken);
            string text = parseResult.GetValue(query)!;
            var hits = await retrievalIndex.Retriever.SearchAsync(text, new SearchOptions(searchMode, count, filter), cancellationToken);
            string modeName = searchMode.ToString().ToLowerInvariant();
            if (parseResult.GetValue(json))
                RetrievalCli.WriteJson(writer => WriteResults(writer, text, modeName, hits));
            else
                RetrievalCli.PrintHits(hits, $"{modeName}: {text}");
            return 0;
        }));
        return command;
    }

    /// <summary>{"query", "mode", "hits": [{"rank", "score", "sourceId", "title", "section", "text", "tags", "stages"}]}.</summary>
    static void WriteResults(System.Text.Json.Utf8JsonWriter writer, string query, string mode, IReadOnlyList<SearchHit> hits)
    {
        writer.WriteStartObject();
        writer.WriteString("query", query);
        writer.WriteString("mode", mode);
        writer.WriteStartArray("hits");
        for (int i = 0; i < hits.Count; i++)
        {
            writer.WriteStartObject();
            writer.WriteNumber("rank", i + 1);
            writer.WriteNumber("score", hits[i].Score);
            RetrievalCli.WriteHit(writer, hits[i]);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
