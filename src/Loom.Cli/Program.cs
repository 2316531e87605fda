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
        return root.Parse(args).Invoke();
    }
}
