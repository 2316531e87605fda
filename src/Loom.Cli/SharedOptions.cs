using System.CommandLine;

namespace Loom.Cli;

/// <summary>Options that several commands declare alike, declared here once.</summary>
internal static class SharedOptions
{
    /// <summary>
    /// A new <c>--threads</c> option for one command: the threads of Loom's kernels (a
    /// <see cref="Loom.Tensors.ComputeContext"/>), and of llama.cpp or MiniLM where the command runs them.
    /// </summary>
    public static Option<int> Threads() =>
        new("--threads") { Description = "Worker threads (1 = bit-reproducible)", DefaultValueFactory = _ => Environment.ProcessorCount };

    /// <summary>The value of <paramref name="threads"/>; a one-line error when it is below 1.</summary>
    public static int ThreadCount(ParseResult parseResult, Option<int> threads)
    {
        int count = parseResult.GetValue(threads);
        if (count < 1) throw new ArgumentException($"--threads must be positive, got {count}");
        return count;
    }
}
