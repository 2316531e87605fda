using System.CommandLine;
using System.Diagnostics;
using Loom.Serving;
using Loom.Tensors;

namespace Loom.Cli.Commands;

/// <summary><c>loom generate</c>: continue a prompt, streaming the new text to stdout as it is sampled.</summary>
internal static class GenerateCommand
{
    internal static Command Create()
    {
        var arguments = new GenerationArguments();
        var prompt = new Argument<string>("prompt") { Description = "The text to continue" };
        var bestOf = new Option<int>("--best-of") { Description = "Sample N continuations and print the one the reward model scores highest (needs --reward-model)", DefaultValueFactory = _ => 1 };
        var rewardModel = new Option<string?>("--reward-model") { Description = "Reward-model folder from `loom finetune reward` (for --best-of)" };
        var command = new Command("generate", "Continue a prompt with a model, streaming the text as it is generated.") { prompt, bestOf, rewardModel };
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
            int n = parseResult.GetValue(bestOf);
            if (n < 1) throw new ArgumentException($"--best-of must be positive, got {n}");
            if (n > 1 && parseResult.GetValue(rewardModel) is null) throw new ArgumentException("--best-of needs --reward-model");
            var handle = arguments.Open(parseResult);
            try
            {
                if (n > 1) return BestOf(handle.Generator, request, n, parseResult.GetValue(rewardModel)!, SharedOptions.ThreadCount(parseResult, arguments.Threads));
                return Stream(handle.Generator, request);
            }
            finally
            {
                handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }));
        return command;
    }

    /// <summary>Best-of-n: n continuations (seeds seed, seed+1, … when a seed is given), ranked by the reward model; the best is printed, every score goes to stderr.</summary>
    static int BestOf(ITextGenerator generator, GenerationRequest request, int n, string rewardModelFolder, int threads)
    {
        var reward = Loom.Training.Tuning.RewardModel.Load(rewardModelFolder);
        var tokenizer = Loom.Text.Tokenizer.Load(Loom.Models.Checkpoint.Resolve(rewardModelFolder));
        var continuations = new List<string>();
        for (int i = 0; i < n; i++)
        {
            var sampling = request.Sampling is { Seed: int seed } s ? s with { Seed = seed + i } : request.Sampling;
            var text = new StringWriter();
            StreamTo(text, generator, request with { Sampling = sampling }, CancellationToken.None).GetAwaiter().GetResult();
            continuations.Add(text.ToString());
        }
        using var compute = new ComputeContext(threads);
        var ranked = Loom.Training.Tuning.BestOfN.Rank(reward, tokenizer, request.Prompt, continuations, compute);
        Console.Out.WriteLine(ranked[0].Response);
        foreach (var (response, score) in ranked) Console.Error.WriteLine($"reward {score:F3}: {response.ReplaceLineEndings(" ")}");
        return 0;
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
