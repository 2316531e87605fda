using System.CommandLine;
using Loom.Retrieval;
using Loom.Serving;
using Spectre.Console;

namespace Loom.Cli.Commands;

/// <summary>`loom ask`: retrieves sources, asks the configured generator for an answer citing them, prints answer and cited sources.</summary>
internal static class AskCommand
{
    internal static Command Create()
    {
        var index = new Option<string>("--index") { Description = "Index folder", Required = true };
        var model = new Option<string?>("--model") { Description = "Model checkpoint folder that generates the answer" };
        var gguf = new Option<string?>("--gguf") { Description = "GGUF model file that generates the answer" };
        var mode = new Option<string>("--mode") { Description = "Retrieval: bm25, vector or hybrid", DefaultValueFactory = _ => "hybrid" };
        var top = new Option<int>("--top") { Description = "How many sources go into the prompt", DefaultValueFactory = _ => 5 };
        var tags = new Option<string[]>("--tag") { Description = "Only documents with this tag: key=value (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var postgres = new Option<string?>("--postgres") { Description = "Connection string, when the index lives in PostgreSQL" };
        var threads = SharedOptions.Threads();
        var question = new Argument<string>("question") { Description = "The question" };

        var command = new Command("ask", "Answer a question from an index, citing the sources used");
        foreach (var option in new Option[] { index, model, gguf, mode, top, tags, postgres, threads })
            command.Options.Add(option);
        command.Arguments.Add(question);
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("ask", async () =>
        {
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            var options = new SearchOptions(RetrievalCli.ParseMode(parseResult.GetValue(mode)), parseResult.GetValue(top),
                SearchFilter.From(TagParser.Parse(parseResult.GetValue(tags)), null));
            using var retrievalIndex = await RetrievalIndex.OpenAsync(parseResult.GetValue(index)!, null, parseResult.GetValue(postgres), create: false, cancellationToken);
            await using var generator = GeneratorHandle.Open(parseResult.GetValue(model), parseResult.GetValue(gguf), threadCount);
            using var chatClient = new LoomChatClient(generator.Generator);
            var answer = await new GroundedAnswerer(retrievalIndex.Retriever, chatClient, options).AnswerAsync(parseResult.GetValue(question)!, cancellationToken);
            AnsiConsole.WriteLine(answer.Text);
            // The cited sources; when the model cited none, the sources it was given, so the reader can check.
            bool cited = answer.CitedSources.Count > 0;
            AnsiConsole.MarkupLine(cited ? "[grey]Sources:[/]" : "[grey]Sources given to the model (none cited):[/]");
            foreach (var source in cited ? answer.CitedSources : answer.AllSources)
                AnsiConsole.MarkupLine($"[grey][[{source.Number}]] {Markup.Escape(source.Hit.SourceId)}{(source.Hit.HeadingPath.Length > 0 ? " > " + Markup.Escape(source.Hit.HeadingPath) : "")}[/]");
            return 0;
        }));
        return command;
    }
}
