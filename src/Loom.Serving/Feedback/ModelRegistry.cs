using Loom.IO;

namespace Loom.Serving.Feedback;

/// <summary>
/// The versions of one deployed model, in a folder: HOME/versions/NAME/checkpoint (a checkpoint folder),
/// HOME/versions/NAME/lineage.json (parent, data, feedback, evaluation), and HOME/current, the name of the version
/// being served, rewritten atomically on promotion or rollback. A running server watches HOME/current.
/// </summary>
public sealed class ModelRegistry(string home)
{
    public string Home { get; } = Path.GetFullPath(home);

    /// <summary>The file naming the served version.</summary>
    public string CurrentFile => Path.Combine(Home, "current");

    /// <summary>The served version's name; null when none was promoted yet.</summary>
    public string? Current => File.Exists(CurrentFile) && File.ReadAllText(CurrentFile).Trim() is { Length: > 0 } name ? name : null;

    public string FolderOf(string version) => Path.Combine(Home, "versions", CheckName(version));

    public string CheckpointOf(string version) => Path.Combine(FolderOf(version), "checkpoint");

    /// <summary>Makes <paramref name="version"/> the served one (atomically); its checkpoint must exist.</summary>
    public void SetCurrent(string version)
    {
        if (!File.Exists(Path.Combine(CheckpointOf(version), "config.json")))
            throw new ArgumentException($"{CheckpointOf(version)}: version '{version}' has no checkpoint", nameof(version));
        AtomicFile.WriteAllText(CurrentFile, version + "\n");
    }

    static string CheckName(string version) =>
        version.Length is > 0 and <= 64 && version.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && version[0] != '.'
            ? version
            : throw new ArgumentException($"version name '{version}' must be 1–64 letters, digits, '-', '_' or '.'", nameof(version));
}
