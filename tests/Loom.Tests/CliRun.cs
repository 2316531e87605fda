namespace Loom.Tests;

/// <summary>Runs the `loom` command in-process as a user would, with stdin given and stdout/stderr captured.</summary>
internal static class CliRun
{
    public static (int ExitCode, string Output, string Error) Run(params string[] args) => WithInput("", args);

    public static (int ExitCode, string Output, string Error) WithInput(string input, params string[] args)
    {
        var (originalIn, originalOut, originalError) = (Console.In, Console.Out, Console.Error);
        var output = new StringWriter();
        var error = new StringWriter();
        Console.SetIn(new StringReader(input));
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            return (Loom.Cli.Program.Main(args), output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetIn(originalIn);
            Console.SetOut(originalOut);
            Console.SetError(originalError);
        }
    }
}
