using System.CommandLine;

namespace Loom.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Loom: train, tune, evaluate and serve generative models on your own machine.");
        return root.Parse(args).Invoke();
    }
}
