using System.CommandLine;
using Loom.Cli.Commands;

namespace Loom.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Loom: train, tune, evaluate and serve generative models on your own machine.");
        root.Subcommands.Add(TokenizerCommand.Create());
        root.Subcommands.Add(PrepareCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        return root.Parse(args).Invoke();
    }
}
