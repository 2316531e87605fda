using System.CommandLine;
using Loom.Serving;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom chat</c>: a conversation on the terminal. Reads one message per line from stdin (so it
/// also works with piped input), keeps the conversation, formats it with the model's chat format (its
/// tokenizer_config.json template, or Loom's) and
/// streams each answer. <c>/exit</c> or end of input quits; <c>/reset</c> forgets the conversation.
/// When the conversation outgrows the context the oldest exchanges are dropped.
/// </summary>
internal static class ChatCommand
{
    internal static Command Create()
    {
        var arguments = new GenerationArguments();
        var system = new Option<string?>("--system") { Description = "A system message that starts the conversation" };
        var command = new Command("chat", "Chat with a model on the terminal (one message per line; /exit quits).") { system };
        arguments.AddTo(command);
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var sampling = arguments.Sampling(parseResult);
            int? maxTokens = arguments.MaxTokensOrNull(parseResult);
            var handle = arguments.Open(parseResult);
            string[] stops = [.. parseResult.GetValue(arguments.Stop) ?? [], .. handle.Generator.ChatFormat.StopSequences];
            try
            {
                return Run(handle.Generator, parseResult.GetValue(system), sampling, maxTokens, stops);
            }
            finally
            {
                handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }));
        return command;
    }

    static int Run(ITextGenerator generator, string? system, Models.SamplingOptions sampling, int? maxTokens, string[] stops)
    {
        bool interactive = !Console.IsInputRedirected;
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(system)) turns.Add(new ChatTurn("system", system));
        int systemTurns = turns.Count;
        int exitCode = 0;
        if (interactive) Console.Error.WriteLine($"chatting with {generator.ModelName}; /exit quits, /reset forgets the conversation");
        while (true)
        {
            if (interactive) Console.Out.Write("> ");
            string? line = Console.In.ReadLine();
            if (line is null) break;
            line = line.Trim();
            if (line.Length == 0) continue;
            if (line == "/exit") break;
            if (line == "/reset")
            {
                turns.RemoveRange(systemTurns, turns.Count - systemTurns);
                continue;
            }
            turns.Add(new ChatTurn("user", line));
            int[] prompt = Fit(generator, turns, systemTurns);
            if (prompt.Length >= generator.ContextLength)
            {
                Console.Error.WriteLine($"error: the message needs {prompt.Length} tokens with the chat format; the context holds {generator.ContextLength}");
                turns.RemoveAt(turns.Count - 1);
                exitCode = 1;
                continue;
            }
            var request = new GenerationRequest
            {
                PromptTokens = prompt, AddBos = generator.ChatFormat is LoomChatFormat, MaxTokens = maxTokens, Sampling = sampling, Stop = stops,
            };
            var answer = new StringWriter();
            using var both = new TeeWriter(Console.Out, answer);
            try
            {
                GenerateCommand.StreamTo(both, generator, request, CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message.Split('\n')[0]}");
                turns.RemoveAt(turns.Count - 1);
                exitCode = 1;
                continue;
            }
            Console.Out.WriteLine();
            turns.Add(new ChatTurn("assistant", answer.ToString()));
        }
        return exitCode;
    }

    /// <summary>The conversation's prompt, dropping the oldest exchanges (after the system turn) until it leaves room to answer.</summary>
    static int[] Fit(ITextGenerator generator, List<ChatTurn> turns, int systemTurns)
    {
        while (true)
        {
            int[] prompt = generator.EncodeChat(turns);
            if (prompt.Length < generator.ContextLength || turns.Count - systemTurns <= 1) return prompt;
            int drop = turns.Count - systemTurns >= 2 ? 2 : 1; // a user message and its answer
            turns.RemoveRange(systemTurns, drop);
        }
    }

    /// <summary>Writes to two writers at once (the terminal and the transcript).</summary>
    sealed class TeeWriter(TextWriter first, TextWriter second) : TextWriter
    {
        public override System.Text.Encoding Encoding => first.Encoding;
        public override void Write(char value) { first.Write(value); second.Write(value); }
        public override void Write(string? value) { first.Write(value); second.Write(value); }
        public override void Flush() { first.Flush(); second.Flush(); }
    }
}
