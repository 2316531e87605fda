using Loom.Models;
using Loom.Serving.Feedback;
using Loom.Text;

namespace Loom.Tests.Feedback;

/// <summary>The model registry: versions with lineage, promotion, rollback and its history, atomic registration.</summary>
public sealed class ModelRegistryTests : IDisposable
{
    readonly string directory = Path.Combine(Path.GetTempPath(), "loom-registry-" + Guid.NewGuid().ToString("N"));

    public ModelRegistryTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    /// <summary>A tiny checkpoint whose weights depend on <paramref name="seed"/>.</summary>
    string Checkpoint(string name, ulong seed)
    {
        var tokenizer = CharTokenizer.Train(["abc def"]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 8, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 16, MaxSeq = 16 };
        string folder = Path.Combine(directory, name);
        Loom.Models.Checkpoint.Save(folder, new Transformer(config, seed), tokenizer.Save);
        return folder;
    }

    static VersionLineage Lineage(string name, string parent, long last) =>
        new() { Version = name, Parent = parent, Created = DateTimeOffset.UtcNow, Method = "sft+dpo", JudgementIds = [last - 1, last], LastJudgementId = last };

    [Fact]
    public void InitAddPromoteAndRollBackKeepEveryVersionAndTheHistory()
    {
        string home = Path.Combine(directory, "home");
        var registry = ModelRegistry.Init(home, Checkpoint("base", 1));
        Assert.Equal("v0", registry.Current);
        Assert.Equal(File.ReadAllBytes(Path.Combine(directory, "base", SafeTensors.ModelFileName)),
            File.ReadAllBytes(Path.Combine(registry.CheckpointOf("v0"), SafeTensors.ModelFileName)));
        var v0 = registry.Lineage("v0");
        Assert.Equal(("base", null, true), (v0.Method, v0.Parent, v0.Promoted));
        Assert.Equal("v1", registry.NextName());

        registry.Add("v1", Checkpoint("one", 2), Lineage("v1", "v0", 7));
        registry.Add("v2", Checkpoint("two", 3), Lineage("v2", "v1", 12));
        Assert.Equal("v0", registry.Current);
        Assert.False(registry.Lineage("v1").Promoted);
        Assert.Equal([6L, 7L], registry.Lineage("v1").JudgementIds);

        registry.Promote("v1", "won 0.80");
        registry.Promote("v2", "won 0.70");
        Assert.Equal("v2", registry.Current);
        Assert.True(registry.Lineage("v2").Promoted);

        // Rollback with no target goes back one promotion at a time: v2 → v1 → v0.
        Assert.Equal("v1", registry.Rollback());
        Assert.Equal("v1", new ModelRegistry(home).Current);
        Assert.Equal("v0", registry.Rollback());
        var error = Assert.Throws<ArgumentException>(() => registry.Rollback());
        Assert.Contains("no version was served before 'v0'", error.Message);
        Assert.Equal("v2", registry.Rollback(to: "v2"));

        var history = registry.History();
        Assert.Equal(["init", "promote", "promote", "rollback", "rollback", "rollback"], history.Select(e => e.Action));
        Assert.Equal([(null, "v0"), ("v0", "v1"), ("v1", "v2"), ("v2", "v1"), ("v1", "v0"), ("v0", "v2")], history.Select(e => (e.From, e.To)));
        Assert.Equal("won 0.80", history[1].Reason);
        Assert.Equal(6, File.ReadAllLines(registry.HistoryFile).Length);

        var versions = registry.Versions();
        Assert.Equal(["v0", "v1", "v2"], versions.Select(v => v.Name));
        Assert.Equal([false, false, true], versions.Select(v => v.Current));
        Assert.All(versions, v => Assert.True(v.Promoted));
        Assert.Equal("v3", registry.NextName());
    }

    [Fact]
    public void AddRefusesAnExistingNameBadNamesAndAMismatchedLineage()
    {
        var registry = ModelRegistry.Init(Path.Combine(directory, "home"), Checkpoint("base", 1));
        string other = Checkpoint("other", 2);
        Assert.Contains("already exists", Assert.Throws<ArgumentException>(() => registry.Add("v0", other, Lineage("v0", "v0", 1))).Message);
        foreach (var bad in new[] { "", ".hidden", "a/b", "..", "sp ace", new string('x', 65) })
            Assert.Contains("must be 1–64 letters", Assert.Throws<ArgumentException>(() => registry.Add(bad, other, Lineage(bad, "v0", 1))).Message);
        Assert.Contains("VersionLineage.Version", Assert.Throws<ArgumentException>(() => registry.Add("v1", other, Lineage("v9", "v0", 1))).Message);
        Assert.Contains("not a checkpoint folder", Assert.Throws<FileNotFoundException>(() => registry.Add("v1", directory, Lineage("v1", "v0", 1))).Message);
        Assert.Contains("already holds versions", Assert.Throws<ArgumentException>(() => ModelRegistry.Init(registry.Home, other)).Message);
        Assert.Throws<ArgumentException>(() => registry.Promote("v5", "no such version"));
        Assert.Equal(["v0"], registry.Versions().Select(v => v.Name));
    }

    [Fact]
    public void AFailedCopyLeavesNoHalfVersion()
    {
        var registry = ModelRegistry.Init(Path.Combine(directory, "home"), Checkpoint("base", 1));
        string broken = Checkpoint("broken", 2);
        // A link to nothing: copying it fails partway through the folder.
        File.CreateSymbolicLink(Path.Combine(broken, "zz-missing.bin"), Path.Combine(directory, "nowhere"));
        Assert.Throws<FileNotFoundException>(() => registry.Add("v1", broken, Lineage("v1", "v0", 3)));
        Assert.False(registry.Contains("v1"));
        Assert.False(Directory.Exists(Path.Combine(registry.Home, ".staging")) && Directory.EnumerateFileSystemEntries(Path.Combine(registry.Home, ".staging")).Any());
        Assert.Equal(["v0"], registry.Versions().Select(v => v.Name));

        File.Delete(Path.Combine(broken, "zz-missing.bin"));
        registry.Add("v1", broken, Lineage("v1", "v0", 3));
        Assert.True(File.Exists(Path.Combine(registry.CheckpointOf("v1"), "config.json")));
    }
}
