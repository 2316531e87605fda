using System.CommandLine;
using Loom.Serving.Pipeline;
using Spectre.Console;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom quickstart</c>: Loom's main job on embedded defaults — corpus, tokenizer, pretraining, tuning,
/// retrieval index, grounded answers and an HTML report. The run is <see cref="Quickstart.RunAsync"/>; this command
/// parses flags into <see cref="QuickstartOptions"/> and shows the progress.
/// </summary>
internal static class QuickstartCommand
{
    internal static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder (empty, new, or a previous quickstart run)", DefaultValueFactory = _ => "quickstart-run" };
        var corpus = new Option<string?>("--corpus") { Description = "Pretraining corpus: a file, folder or glob (default: a sample of the .NET API docs)" };
        var fast = new Option<bool>("--fast") { Description = "A tiny run that finishes end to end in well under 2 minutes" };
        var threads = SharedOptions.Threads();
        var minutes = new Option<double?>("--minutes") { Description = "Overall time budget in minutes (default 9, or 1.5 with --fast)" };

        var command = new Command("quickstart", "Build a corpus, train a tokenizer, pretrain and tune a small model, index the docs, answer with citations, write a report.")
        {
            output, corpus, fast, threads, minutes,
        };
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("quickstart", async () =>
        {
            var options = new QuickstartOptions
            {
                OutputFolder = parseResult.GetValue(output)!,
                Corpus = parseResult.GetValue(corpus),
                Fast = parseResult.GetValue(fast),
                Threads = parseResult.GetValue(threads),
                Minutes = parseResult.GetValue(minutes),
            }.Validate();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var console = new QuickstartConsole();
            console.Line($"loom quickstart{(options.Fast ? " --fast" : "")}: writing to {Path.GetFullPath(options.OutputFolder)}, " +
                $"budget {options.MinutesOrDefault:F1} min, {options.ThreadsOrDefault} threads");
            var result = await console.RunAsync(progress => Quickstart.RunAsync(options, progress, cancellationToken));
            foreach (var answer in result.Answers)
            {
                console.Line($"Q: {answer.Question}");
                console.Line($"A: {answer.Answer.Text.ReplaceLineEndings(" ")}");
                bool cited = answer.Answer.CitedSources.Count > 0;
                console.Line(cited ? "   Sources:" : "   Sources given to the model (none cited):");
                foreach (var source in cited ? answer.Answer.CitedSources : answer.Answer.AllSources)
                    console.Line($"   [{source.Number}] {source.Hit.SourceId}");
            }
            console.Line($"report: {Path.GetFullPath(result.ReportPath)}");
            console.Line($"done in {clock.Elapsed.TotalSeconds:F0} s");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Shows pipeline events: on a terminal a live status line (stage: latest message) above which messages scroll;
    /// when redirected, plain lines.
    /// </summary>
    sealed class QuickstartConsole : IProgress<PipelineProgress>
    {
        readonly bool interactive = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        StatusContext? status;

        public async Task<T> RunAsync<T>(Func<IProgress<PipelineProgress>, Task<T>> body)
        {
            if (!interactive) return await body(this);
            return await AnsiConsole.Status().StartAsync("starting", async context =>
            {
                status = context;
                try
                {
                    return await body(this);
                }
                finally
                {
                    status = null;
                }
            });
        }

        public void Report(PipelineProgress value)
        {
            string header = $"[{value.StageNumber}] {value.Stage}";
            switch (value.Kind)
            {
                case PipelineEventKind.StageStarted:
                    Line($"{header}...");
                    status?.Status(Markup.Escape(header));
                    break;
                case PipelineEventKind.Message:
                    status?.Status(Markup.Escape($"{header}: {value.Message}"));
                    if (interactive) AnsiConsole.MarkupLine($"[grey]  {Markup.Escape(value.Message)}[/]");
                    else Console.WriteLine("  " + value.Message);
                    break;
                case PipelineEventKind.StageCompleted:
                    Line($"    {value.Stage}: {value.StageElapsed.TotalSeconds:F1} s (total {value.TotalElapsed.TotalSeconds:F0} s)");
                    status?.Status(Markup.Escape($"{header}: done"));
                    break;
            }
        }

        public void Line(string text)
        {
            if (interactive) AnsiConsole.MarkupLine(Markup.Escape(text));
            else Console.WriteLine(text);
        }
    }
}
