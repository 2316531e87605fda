using System.Text.Json;
using System.Text.Json.Serialization;
using Loom.IO;
using Loom.Models;

namespace Loom.Serving.Feedback;

/// <summary>
/// The versions of one deployed model, in a folder: HOME/versions/NAME/checkpoint (a checkpoint folder),
/// HOME/versions/NAME/lineage.json (parent, data, feedback, evaluation), HOME/current, the name of the version
/// being served, rewritten atomically on promotion or rollback, and HOME/history.jsonl, one line per change of the
/// served version. A running server watches HOME/current.
/// </summary>
public sealed class ModelRegistry(string home)
{
    public const string HistoryFileName = "history.jsonl";
    const string StagingFolderName = ".staging";

    public string Home { get; } = Path.GetFullPath(home);

    /// <summary>The file naming the served version.</summary>
    public string CurrentFile => Path.Combine(Home, "current");

    /// <summary>One JSON line per change of the served version: time, action, from, to, reason.</summary>
    public string HistoryFile => Path.Combine(Home, HistoryFileName);

    /// <summary>The served version's name; null when none was promoted yet.</summary>
    public string? Current => File.Exists(CurrentFile) && File.ReadAllText(CurrentFile).Trim() is { Length: > 0 } name ? name : null;

    public string FolderOf(string version) => Path.Combine(Home, "versions", CheckName(version));

    public string CheckpointOf(string version) => Path.Combine(FolderOf(version), "checkpoint");

    public string LineageFileOf(string version) => Path.Combine(FolderOf(version), VersionLineage.FileName);

    /// <summary>Whether a version of that name is registered.</summary>
    public bool Contains(string version) => Directory.Exists(FolderOf(version));

    /// <summary>Makes <paramref name="version"/> the served one (atomically); its checkpoint must exist.</summary>
    public void SetCurrent(string version)
    {
        if (!File.Exists(Path.Combine(CheckpointOf(version), "config.json")))
            throw new ArgumentException($"{CheckpointOf(version)}: version '{version}' has no checkpoint", nameof(version));
        AtomicFile.WriteAllText(CurrentFile, version + "\n");
    }

    /// <summary>
    /// Starts a registry in <paramref name="home"/>: copies <paramref name="baseCheckpoint"/> in as version <paramref name="name"/>
    /// (method "base"), and makes it current. Refused when HOME already holds versions.
    /// </summary>
    public static ModelRegistry Init(string home, string baseCheckpoint, string name = "v0")
    {
        var registry = new ModelRegistry(home);
        var versions = Path.Combine(registry.Home, "versions");
        if (Directory.Exists(versions) && Directory.EnumerateDirectories(versions).Any())
            throw new ArgumentException($"{registry.Home}: the registry already holds versions", nameof(home));
        string source = Checkpoint.Resolve(baseCheckpoint);
        registry.Add(name, source, new VersionLineage { Version = name, Created = DateTimeOffset.UtcNow, Method = "base", Source = source });
        registry.Promote(name, "init");
        return registry;
    }

    /// <summary>
    /// Registers a version: copies <paramref name="checkpointFolder"/> and writes <paramref name="lineage"/> into a staging
    /// folder inside HOME, then renames it into place, so a failed copy leaves nothing behind. Refuses a name in use.
    /// Does not change the served version.
    /// </summary>
    public void Add(string name, string checkpointFolder, VersionLineage lineage)
    {
        string target = FolderOf(name);
        if (lineage.Version != name) throw new ArgumentException($"VersionLineage.Version is '{lineage.Version}', the version is named '{name}'", nameof(lineage));
        if (Directory.Exists(target)) throw new ArgumentException($"{target}: version '{name}' already exists", nameof(name));
        string source = Checkpoint.Resolve(checkpointFolder);
        string staging = Path.Combine(Home, StagingFolderName, $"{name}.{Guid.NewGuid():N}");
        try
        {
            CopyFolder(source, Path.Combine(staging, "checkpoint"));
            lineage.Save(Path.Combine(staging, VersionLineage.FileName));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            Directory.Move(staging, target);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>The lineage of a registered version.</summary>
    public VersionLineage Lineage(string version)
    {
        if (!Contains(version)) throw new ArgumentException($"{FolderOf(version)}: no version '{version}'", nameof(version));
        return VersionLineage.Load(LineageFileOf(version));
    }

    /// <summary>Rewrites a version's lineage (atomically), e.g. to add its evaluation.</summary>
    public void UpdateLineage(VersionLineage lineage)
    {
        if (!Contains(lineage.Version)) throw new ArgumentException($"{FolderOf(lineage.Version)}: no version '{lineage.Version}'", nameof(lineage));
        lineage.Save(LineageFileOf(lineage.Version));
    }

    /// <summary>Serves <paramref name="version"/> from now on, marks its lineage promoted, and records the change in the history.</summary>
    public void Promote(string version, string reason)
    {
        var lineage = Lineage(version);
        string? from = Current;
        SetCurrent(version);
        if (!lineage.Promoted) UpdateLineage(lineage with { Promoted = true, PromotedAt = DateTimeOffset.UtcNow });
        Record(new RegistryEvent(DateTimeOffset.UtcNow, from is null ? "init" : "promote", from, version, reason));
    }

    /// <summary>
    /// Serves an earlier version again: <paramref name="to"/>, or (null) the one that was served before the current one was
    /// promoted. Recorded in the history; returns the version now served.
    /// </summary>
    public string Rollback(string? to = null, string reason = "rollback")
    {
        string current = Current ?? throw new ArgumentException($"{CurrentFile}: no version is served, nothing to roll back", nameof(to));
        string target = to ?? History().LastOrDefault(e => e.Action is "promote" && e.To == current)?.From
            ?? throw new ArgumentException($"{HistoryFile}: no version was served before '{current}'; name the version to roll back to", nameof(to));
        if (target == current) throw new ArgumentException($"version '{target}' is already served", nameof(to));
        Lineage(target);
        SetCurrent(target);
        Record(new RegistryEvent(DateTimeOffset.UtcNow, "rollback", current, target, reason));
        return target;
    }

    /// <summary>Every registered version with its lineage, oldest first.</summary>
    public IReadOnlyList<RegisteredVersion> Versions()
    {
        string versions = Path.Combine(Home, "versions");
        if (!Directory.Exists(versions)) return [];
        string? current = Current;
        return [.. Directory.EnumerateDirectories(versions)
            .Select(folder => Path.GetFileName(folder))
            .Select(name => new RegisteredVersion(name, VersionLineage.Load(LineageFileOf(name)), name == current))
            .OrderBy(v => v.Lineage.Created).ThenBy(v => v.Name, StringComparer.Ordinal)];
    }

    /// <summary>The next free name "vN" (one past the largest N in use).</summary>
    public string NextName()
    {
        int next = Versions().Select(v => v.Name.StartsWith('v') && int.TryParse(v.Name.AsSpan(1), out int n) ? n + 1 : 0).DefaultIfEmpty(0).Max();
        return $"v{next}";
    }

    /// <summary>The changes of the served version, oldest first.</summary>
    public IReadOnlyList<RegistryEvent> History()
    {
        if (!File.Exists(HistoryFile)) return [];
        int line = 0;
        var events = new List<RegistryEvent>();
        foreach (var text in File.ReadLines(HistoryFile))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            try
            {
                events.Add(JsonSerializer.Deserialize<RegistryEvent>(text, Json) ?? throw new InvalidDataException($"{HistoryFile}:{line}: empty entry"));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{HistoryFile}:{line}: not a history entry ({e.Message.ReplaceLineEndings(" ")})", e);
            }
        }
        return events;
    }

    /// <summary>Records every version (name, parent, checkpoint, lineage) in a feedback store, replacing earlier entries.</summary>
    public async Task MirrorAsync(IFeedbackStore store, CancellationToken cancellationToken)
    {
        foreach (var version in Versions())
            await store.SaveVersionAsync(new ModelVersionEntry(version.Name, version.Lineage.Parent, CheckpointOf(version.Name), version.Lineage.Created,
                version.Lineage.ToJson()), cancellationToken);
    }

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>Appends one history line; the whole file is rewritten atomically, so a crash never leaves half a line.</summary>
    void Record(RegistryEvent entry)
    {
        string before = File.Exists(HistoryFile) ? File.ReadAllText(HistoryFile) : "";
        AtomicFile.WriteAllText(HistoryFile, before + JsonSerializer.Serialize(entry, Json) + "\n");
    }

    static void CopyFolder(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        foreach (var folder in Directory.EnumerateDirectories(source)) CopyFolder(folder, Path.Combine(target, Path.GetFileName(folder)));
    }

    static string CheckName(string version) =>
        version.Length is > 0 and <= 64 && version.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && version[0] != '.'
            ? version
            : throw new ArgumentException($"version name '{version}' must be 1–64 letters, digits, '-', '_' or '.'", nameof(version));
}

/// <summary>A registered version: its name, its lineage, and whether it is the one served now.</summary>
public sealed record RegisteredVersion(string Name, VersionLineage Lineage, bool Current)
{
    public bool Promoted => Lineage.Promoted;
}

/// <summary>One change of the served version: "init", "promote" or "rollback", from one version to another, and why.</summary>
public sealed record RegistryEvent(DateTimeOffset Time, string Action, string? From, string To, string Reason);
