using System.CommandLine;
using Loom.Retrieval;
using Loom.Serving;
using Microsoft.Extensions.AI;

namespace Loom.Cli.Commands;

/// <summary>`loom ask`: the server's NAME+rag pipeline, in the terminal: prints the greedy answer and its sources (or, with --json, one JSON document).</summary>
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
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most (0 = up to the end of the context)" };
        var answerTokensOption = new Option<int>("--answer-tokens") { Description = "Tokens kept free for the answer (sources are shortened or dropped to leave them); 0 = a quarter of the context" };
        var threads = SharedOptions.Threads();
        var json = new Option<bool>("--json") { Description = "Print one JSON document (question, answer, every source given with whether it was cited, token usage)" };
        var question = new Argument<string>("question") { Description = "The question" };

        var command = new Command("ask", "Answer a question from an index, citing the sources used");
        foreach (var option in new Option[] { index, model, gguf, mode, top, tags, postgres, maxTokens, answerTokensOption, threads, json })
            command.Options.Add(option);
        command.Arguments.Add(question);
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("ask", async () =>
        {
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            var search = new SearchOptions(RetrievalCli.ParseMode(parseResult.GetValue(mode)), parseResult.GetValue(top),
                SearchFilter.From(TagParser.Parse(parseResult.GetValue(tags)), null));
            int answerTokens = parseResult.GetValue(maxTokens);
            if (answerTokens < 0) throw new ArgumentException($"--max-tokens must be >= 0, got {answerTokens}");
            int answerBudget = parseResult.GetValue(answerTokensOption);
            if (answerBudget < 0) throw new ArgumentException($"--answer-tokens must be >= 0, got {answerBudget}");
            using var retrievalIndex = await RetrievalIndex.OpenAsync(parseResult.GetValue(index)!, null, parseResult.GetValue(postgres), create: false, cancellationToken);
            await using var generator = GeneratorHandle.Open(parseResult.GetValue(model), parseResult.GetValue(gguf), threadCount);
            using var chat = LoomPipeline.Build(generator.Generator, new LoomPipelineOptions
            {
                Limits = new ChatLimits(),
                Retriever = retrievalIndex.Retriever,
                Retrieval = new RetrievalChatOptions { Search = search, AnswerTokens = answerBudget == 0 ? generator.Generator.ContextLength / 4 : answerBudget },
            });
            string asked = parseResult.GetValue(question)!;
            var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, asked)],
                new ChatOptions { Temperature = 0, MaxOutputTokens = answerTokens == 0 ? null : answerTokens }, cancellationToken);
            var sources = response.GetSources()!;
            if (parseResult.GetValue(json))
            {
                RetrievalCli.WriteJson(writer => WriteAnswer(writer, asked, response, sources));
                return 0;
            }
            // Plain lines, unwrapped: the answer exactly as generated, then the cited sources (when the model cited none,
            // the sources it was given, so the reader can check).
            Console.Out.WriteLine(response.Text);
            bool cited = sources.Cited.Count > 0;
            Console.Out.WriteLine(cited ? "Sources:" : "Sources given to the model (none cited):");
            foreach (var source in cited ? sources.Cited : sources.Given)
                Console.Out.WriteLine($"[{source.Number}] {source.Hit.SourceId}{(source.Hit.HeadingPath.Length > 0 ? " > " + source.Hit.HeadingPath : "")}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// {"question", "answer", "finishReason", "sources": [{"number", "cited", "score", "sourceId", "title", "section", "text", "tags", "stages"}],
    /// "usage": {"inputTokens", "outputTokens", "totalTokens"}}; sources are every source given to the model, in prompt order.
    /// </summary>
    static void WriteAnswer(System.Text.Json.Utf8JsonWriter writer, string question, ChatResponse response, GroundingSources sources)
    {
        var cited = sources.Cited.Select(source => source.Number).ToHashSet();
        writer.WriteStartObject();
        writer.WriteString("question", question);
        writer.WriteString("answer", response.Text);
        writer.WriteString("finishReason", response.FinishReason?.Value);
        writer.WriteStartArray("sources");
        foreach (var source in sources.Given)
        {
            writer.WriteStartObject();
            writer.WriteNumber("number", source.Number);
            writer.WriteBoolean("cited", cited.Contains(source.Number));
            writer.WriteNumber("score", source.Hit.Score);
            RetrievalCli.WriteHit(writer, source.Hit);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteStartObject("usage");
        WriteCount(writer, "inputTokens", response.Usage?.InputTokenCount);
        WriteCount(writer, "outputTokens", response.Usage?.OutputTokenCount);
        WriteCount(writer, "totalTokens", response.Usage?.TotalTokenCount);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    static void WriteCount(System.Text.Json.Utf8JsonWriter writer, string name, long? count)
    {
        if (count is { } value)
            writer.WriteNumber(name, value);
        else
            writer.WriteNull(name);
    }
}
