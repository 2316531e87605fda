using System.Diagnostics;
using System.Text.Json;

namespace Loom.Tests.Peers;

/// <summary>
/// Runs tests/Loom.Tests/Peers/torch_llama.py with a Python that imports torch (Debian's python3-torch; .ci/run installs it).
/// Without one the caller skips, except under CI=true, where that is a failure.
/// </summary>
static class TorchPeer
{
    static readonly Lazy<string?> PythonWithTorch = new(FindPython);

    /// <summary>The Python to run; skips the test (fails it under CI) when none imports torch.</summary>
    public static string RequirePython()
    {
        if (PythonWithTorch.Value is string python) return python;
        const string missing = "no python3 that imports torch (apt-get install python3-torch)";
        Assert.False(Environment.GetEnvironmentVariable("CI") == "true", $"PyTorch peer tests cannot run under CI: {missing}");
        Skip.If(true, $"PyTorch peer tests skipped: {missing}");
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Runs `torch_llama.py MODE FOLDER` and parses the JSON file it writes there.</summary>
    public static JsonDocument Run(string python, string mode, string folder, string resultFile)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Script());
        start.ArgumentList.Add(mode);
        start.ArgumentList.Add(folder);
        start.Environment["OMP_NUM_THREADS"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"torch_llama.py {mode} did not finish in 3 minutes");
        }
        Assert.True(process.ExitCode == 0, $"torch_llama.py {mode} exited {process.ExitCode}:\n{errors.Result}\n{output.Result}");
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, resultFile)));
    }

    /// <summary>A JSON array of numbers as doubles.</summary>
    public static double[] Values(JsonElement array) => [.. array.EnumerateArray().Select(v => v.GetDouble())];

    /// <summary>‖actual − expected‖ / ‖expected‖ (the absolute norm when expected is zero).</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double difference = 0, reference = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            reference += expected[i] * expected[i];
        }
        return reference == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / reference);
    }

    static string? FindPython()
    {
        foreach (string candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo(candidate) { ArgumentList = { "-c", "import torch" }, RedirectStandardError = true, UseShellExecute = false })!;
                process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }
        return null;
    }

    /// <summary>tests/Loom.Tests/Peers/torch_llama.py, found by walking up from the test assembly to the repository root.</summary>
    static string Script()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "tests", "Loom.Tests", "Peers", "torch_llama.py");
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException("tests/Loom.Tests/Peers/torch_llama.py not found above " + AppContext.BaseDirectory);
    }
}
