using System.Diagnostics;

namespace Loom.Tests.Server;

/// <summary>`loom serve` as a user runs it: a separate process, started with the given arguments, whose address is read from its first line.</summary>
sealed class ServeProcess : IDisposable
{
    readonly Process process;

    ServeProcess(Process process, Uri address)
    {
        this.process = process;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<ServeProcess> StartAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { typeof(Loom.Cli.Program).Assembly.Location, "serve" }.Concat(arguments))
            start.ArgumentList.Add(arg);
        var process = new Process { StartInfo = start };
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            int at = e.Data?.IndexOf("listening on ", StringComparison.Ordinal) ?? -1;
            if (at >= 0) listening.TrySetResult(e.Data![(at + "listening on ".Length)..].Split(',')[0].Trim());
        };
        process.ErrorDataReceived += (_, e) => { lock (errors) errors.AppendLine(e.Data); };
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("loom serve exited: " + errors));
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return new ServeProcess(process, new Uri(await listening.Task.WaitAsync(TimeSpan.FromSeconds(90))));
        }
        catch
        {
            Stop(process);
            throw;
        }
    }

    public void Dispose() => Stop(process);

    static void Stop(Process process)
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.WaitForExit(10_000);
        process.Dispose();
    }
}
