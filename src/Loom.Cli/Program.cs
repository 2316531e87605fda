using System.CommandLine;

namespace Loom.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Loom: train, tune, evaluate and serve generative models on your own machine.");
        root.Subcommands.Add(Commands.IngestCommand.Create());
        root.Subcommands.Add(Commands.SearchCommand.Create());
        root.Subcommands.Add(Commands.AskCommand.Create());
        return root.Parse(args).Invoke();
    }
}
