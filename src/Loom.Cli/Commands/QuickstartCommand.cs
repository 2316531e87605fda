using System.CommandLine;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom quickstart</c>: Loom's main job on embedded defaults — corpus, tokenizer, pretraining, tuning,
/// retrieval index, grounded answers and an HTML report (see <see cref="QuickstartRun"/>).
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
            bool isFast = parseResult.GetValue(fast);
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            double budget = parseResult.GetValue(minutes) ?? (isFast ? 1.5 : 9);
            if (!double.IsFinite(budget) || budget <= 0) throw new ArgumentException($"--minutes must be positive, got {budget}");
            string folder = parseResult.GetValue(output)!;
            if (string.IsNullOrWhiteSpace(folder)) throw new ArgumentException("--out must name a folder");
            string? corpusPath = parseResult.GetValue(corpus);
            if (corpusPath is not null && corpusPath != Loom.Text.DotnetDocs.CorpusName)
                Loom.Text.TextCorpus.Open(corpusPath);
            var options = new QuickstartOptions(folder, corpusPath, isFast, threadCount, budget);
            return await new QuickstartRun(options).RunAsync(cancellationToken);
        }));
        return command;
    }
}
