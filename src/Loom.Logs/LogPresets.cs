namespace Loom.Logs;

/// <summary>A log system's header layout and the miner settings that suit its messages.</summary>
public sealed record LogPreset(string Name, string Layout, TemplateMinerOptions Miner);

/// <summary>
/// Presets for the 12 Loghub systems (header layouts as in logparser's benchmark; similarity, depth and the two
/// options beyond Drain chosen by a sweep on each system's Loghub-2k sample, as Drain's own settings were) and the generic default, which needs no layout: it takes the message after a leading timestamp and
/// level when it can find them, and the whole line otherwise.
/// </summary>
public static class LogPresets
{
    /// <summary>The generic preset's name.</summary>
    public const string GenericName = "generic";

    static readonly string[] Defaults = [.. Masking.Default];

    static TemplateMinerOptions Miner(double similarity, int depth, bool merge = false, bool collapse = false, params string[] extraMasks) =>
        new() { Similarity = similarity, Depth = depth, MergeVariablePositions = merge, CollapseVariables = collapse, Masks = [.. extraMasks, .. Defaults] };

    /// <summary>Every preset by name (case-insensitive): the 12 Loghub systems and <see cref="GenericName"/>.</summary>
    public static IReadOnlyDictionary<string, LogPreset> All { get; } = new Dictionary<string, LogPreset>(StringComparer.OrdinalIgnoreCase)
    {
        ["HDFS"] = new("HDFS", "<Date> <Time> <Pid> <Level> <Component>: <Content>", Miner(0.2, 4, collapse: true, extraMasks: [@"blk_-?\d+"])),
        ["Zookeeper"] = new("Zookeeper", @"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>", Miner(0.2, 6)),
        ["BGL"] = new("BGL", "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>", Miner(0.8, 3, extraMasks: [@"core\.\d+"])),
        ["HPC"] = new("HPC", "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>", Miner(0.2, 5, collapse: true)),
        ["Windows"] = new("Windows", @"<Date> <Time>, <Level>                  <Component>    <Content>", Miner(0.9, 3, merge: true, extraMasks: [@"'[^'\s]*[/\\][^'\s]*'"])),
        ["Linux"] = new("Linux", @"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>", Miner(0.2, 4)),
        ["Android"] = new("Android", "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>", Miner(0.9, 3)),
        ["HealthApp"] = new("HealthApp", @"<Time>\|<Component>\|<Pid>\|<Content>", Miner(0.2, 5)),
        ["Apache"] = new("Apache", @"\[<Time>\] \[<Level>\] <Content>", Miner(0.2, 3)),
        ["Proxifier"] = new("Proxifier", @"\[<Time>\] <Program> - <Content>", Miner(0.8, 3)),
        ["OpenStack"] = new("OpenStack", @"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>", Miner(0.2, 6)),
        ["Mac"] = new("Mac", @"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>", Miner(0.9, 5, merge: true, collapse: true)),
        [GenericName] = new(GenericName, "<Content>", new TemplateMinerOptions()),
    };

    /// <summary>The preset called <paramref name="name"/>; a one-line error lists the known names.</summary>
    public static LogPreset Get(string name) =>
        All.TryGetValue(name, out var preset)
            ? preset
            : throw new ArgumentException($"LogParserOptions.Preset '{name}' is unknown (known: {string.Join(", ", All.Keys)})");
}
