namespace Loom.Tests.Logs;

/// <summary>The shared log data: the first folder named shared/data above the repository.</summary>
internal static class LogData
{
    public static string SharedData { get; } = Find();

    static string Find()
    {
        for (var directory = new DirectoryInfo(Text.TestData.RepositoryRoot); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "shared", "data");
            if (Directory.Exists(Path.Combine(candidate, "loghub"))) return candidate;
        }
        throw new DirectoryNotFoundException($"no shared/data/loghub above {Text.TestData.RepositoryRoot}");
    }

    public static string Loghub(string system) => Path.Combine(SharedData, "loghub", system, $"{system}_2k.log");
}
