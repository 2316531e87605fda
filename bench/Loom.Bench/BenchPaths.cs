namespace Loom.Bench;

/// <summary>Where benchmarks find the repository, the shared reference data, and where they write results.</summary>
public static class BenchPaths
{
    /// <summary>The folder holding Loom.sln, searched upwards from the working directory and from the binary.</summary>
    public static string RepositoryRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
                if (File.Exists(Path.Combine(directory.FullName, "Loom.sln"))) return directory.FullName;
        throw new DirectoryNotFoundException($"Loom.sln not found above {Directory.GetCurrentDirectory()} or {AppContext.BaseDirectory}");
    }

    /// <summary>bench/results, created if missing.</summary>
    public static string ResultsFolder() => Directory.CreateDirectory(Path.Combine(RepositoryRoot(), "bench", "results")).FullName;

    /// <summary>A file of the shared reference data (../shared/data beside the checkout).</summary>
    public static string SharedData(string name) => Path.Combine(RepositoryRoot(), "..", "shared", "data", name);

    /// <summary>The CPU model from /proc/cpuinfo ("unknown" when it cannot be read).</summary>
    public static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return "unknown";
    }
}
