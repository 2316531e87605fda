namespace Loom.Tests.Text;

/// <summary>Locates the shared reference data (../shared/data relative to the folder holding Loom.sln).</summary>
internal static class TestData
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string SharedData => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "data"));

    public static string TinyShakespeare => Path.Combine(SharedData, "tinyshakespeare.txt");

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Loom.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException($"no Loom.sln above {AppContext.BaseDirectory}");
    }

    public static string NewTemporaryDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "loom-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        return path;
    }
}
