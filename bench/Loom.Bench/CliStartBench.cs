using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;

namespace Loom.Bench;

/// <summary>
/// `cli-start`: wall time of whole `loom` processes, as a person at a terminal meets them: `loom search` on an existing
/// index (docs/*.md ingested with MiniLM into a temporary folder) against `loom --version`, the floor (process
/// start, runtime, command-line parsing). One warm-up call each (the first search may write MiniLM's model cache), then
/// the two alternate; medians printed with the CPU model and the load average, and written to bench/results/cli-start.json.
/// Runs the Release build of src/Loom.Cli as the README does (dotnet src/Loom.Cli/bin/Release/net10.0/Loom.Cli.dll).
/// </summary>
internal static class CliStartBench
{
    const int DefaultSamples = 10;

    /// <summary>Options: --samples N (calls of each command, median reported).</summary>
    public static int Run(string[] args)
    {
        int samples = DefaultSamples;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--samples" && i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n >= 1) { samples = n; i++; }
            else
            {
                Console.Error.WriteLine($"cli-start: unknown or invalid option '{args[i]}' (options: --samples N)");
                return 2;
            }
        }
        string root = BenchPaths.RepositoryRoot();
        string cli = Path.Combine(root, "src", "Loom.Cli", "bin", "Release", "net10.0", "Loom.Cli.dll");
        if (!File.Exists(cli))
        {
            Console.Error.WriteLine($"cli-start: {cli} not found (run dotnet build -c Release Loom.sln first)");
            return 1;
        }
        string folder = Directory.CreateTempSubdirectory("loom-bench-cli-start-").FullName;
        try
        {
            string documents = Directory.CreateDirectory(Path.Combine(folder, "docs")).FullName;
            var files = Directory.GetFiles(Path.Combine(root, "docs"), "*.md");
            foreach (string file in files)
                File.Copy(file, Path.Combine(documents, Path.GetFileName(file)));
            string index = Path.Combine(folder, "kb");
            Call(cli, ["ingest", "--index", index, documents]);
            string[] search = ["search", "--index", index, "how are inputs bounded"];
            string[] version = ["--version"];
            Call(cli, search);
            Call(cli, version);
            var searchSeconds = new List<double>();
            var versionSeconds = new List<double>();
            for (int i = 0; i < samples; i++)
            {
                searchSeconds.Add(Call(cli, search));
                versionSeconds.Add(Call(cli, version));
            }
            double searchMedian = Median(searchSeconds), versionMedian = Median(versionSeconds);
            string load = File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
            Console.WriteLine($"CPU: {BenchPaths.CpuModel()}, {Environment.ProcessorCount} logical processors; load average {load}; {samples} calls of each, alternating");
            Console.WriteLine($"loom search (hybrid, MiniLM, {files.Length} documents): median {searchMedian:F2} s wall (min {searchSeconds.Min():F2}, max {searchSeconds.Max():F2})");
            Console.WriteLine($"loom --version (the floor):            median {versionMedian:F2} s wall (min {versionSeconds.Min():F2}, max {versionSeconds.Max():F2})");
            var json = new JsonObject
            {
                ["cpu"] = BenchPaths.CpuModel(),
                ["logicalProcessors"] = Environment.ProcessorCount,
                ["loadAverage"] = load,
                ["samples"] = samples,
                ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd"),
                ["searchMedianSeconds"] = Math.Round(searchMedian, 3),
                ["versionMedianSeconds"] = Math.Round(versionMedian, 3),
                ["searchSeconds"] = JsonSerializer.SerializeToNode(searchSeconds.Select(s => Math.Round(s, 3))),
                ["versionSeconds"] = JsonSerializer.SerializeToNode(versionSeconds.Select(s => Math.Round(s, 3))),
            };
            string path = Path.Combine(BenchPaths.ResultsFolder(), "cli-start.json");
            AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {path}");
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Runs `dotnet Loom.Cli.dll ARGS` to its end; returns the wall seconds. A failing call stops the bench.</summary>
    static double Call(string cli, string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(cli);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        long begin = Stopwatch.GetTimestamp();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        double seconds = Stopwatch.GetElapsedTime(begin).TotalSeconds;
        if (process.ExitCode != 0) throw new InvalidOperationException($"loom {string.Join(' ', args)} exited {process.ExitCode}: {errors}{output.Result}");
        return seconds;
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
