using System.CommandLine;
using System.Diagnostics;
using Loom.Serving;

namespace Loom.Cli.Commands;

/// <summary><c>loom generate</c>: continue a prompt, streaming the new text to stdout as it is sampled.</summary>
internal static class GenerateCommand
{
    internal static Command Create()
    {
        var arguments = new GenerationArguments();
        var prompt = new Argument<string>("prompt") { Description = "The text to continue" };
        var command = new Command("generate", "Continue a prompt with a model, streaming the text as it is generated.") { prompt };
        arguments.AddTo(command);
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var sampling = arguments.Sampling(parseResult);
            int? maxTokens = arguments.MaxTokensOrNull(parseResult);
            var request = new GenerationRequest
            {
                Prompt = parseResult.GetValue(prompt)!,
                MaxTokens = maxTokens,
                Sampling = sampling,
                Stop = parseResult.GetValue(arguments.Stop),
            };
            var handle = arguments.Open(parseResult);
            try
            {
                return Stream(handle.Generator, request);
            }
            finally
            {
                handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }));
        return command;
    }

    static int Stream(ITextGenerator generator, GenerationRequest request)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var watch = Stopwatch.StartNew();
            var last = StreamTo(Console.Out, generator, request, cancel.Token).GetAwaiter().GetResult();
            Console.Out.WriteLine();
            if (last is not null)
                Console.Error.WriteLine($"[{last.PromptTokens} prompt tokens, {last.CompletionTokens} generated in {watch.Elapsed.TotalSeconds:F2} s, {last.CompletionTokens / Math.Max(watch.Elapsed.TotalSeconds, 1e-9):F1} tokens/s, finish: {last.FinishReason?.ToString().ToLowerInvariant() ?? "cancelled"}]");
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Out.WriteLine();
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>Writes each piece of text as it arrives; returns the last update (null if none came).</summary>
    internal static async Task<GenerationUpdate?> StreamTo(TextWriter output, ITextGenerator generator, GenerationRequest request, CancellationToken cancellationToken)
    {
        GenerationUpdate? last = null;
        await foreach (var update in generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            output.Write(update.Text);
            output.Flush();
            last = update;
        }
        return last;
    }
}
