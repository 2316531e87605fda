using System.Diagnostics;

namespace Loom.Tests;

/// <summary>The `loom` command in a child process, as a user runs it: its exit code (a signal shows as 128 + its number) and output.</summary>
internal static class LoomProcess
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(typeof(Loom.Cli.Program).Assembly.Location);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, await output, $"still running after {timeout.TotalSeconds:0} s; stderr: {await error}");
        }
        return (process.ExitCode, await output, await error);
    }
}
