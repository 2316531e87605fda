using System.CommandLine;
using Loom.Cli.Commands;

namespace Loom.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Loom: train, tune, evaluate and serve generative models on your own machine.");
        root.Subcommands.Add(IngestCommand.Create());
        root.Subcommands.Add(SearchCommand.Create());
        root.Subcommands.Add(AskCommand.Create());
        root.Subcommands.Add(TokenizerCommand.Create());
        root.Subcommands.Add(PrepareCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(ImportCommand.Create());
        root.Subcommands.Add(FinetuneCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(ExtractCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(QuickstartCommand.Create());
        root.Subcommands.Add(LogsCommand.Create());
        root.Subcommands.Add(FeedbackCommand.Create());
        root.Subcommands.Add(ImproveCommand.Create());
        root.Subcommands.Add(StudioCommand.Create());
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            // A mistyped command line is a user mistake: one line, not the help page.
            Console.Error.WriteLine($"error: {parseResult.Errors[0].Message} (see --help)");
            return 1;
        }
        return parseResult.Invoke();
    }
}
