using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Logs;

namespace Loom.Bench;

/// <summary>
/// <c>Loom.Bench logs</c>: grouping accuracy on every Loghub-2k system beside Drain's published figure; HDFS detection
/// (train on hdfs_train, normal only; P/R/F1 on hdfs_dev.csv with the label-free threshold, the dev-tuned one, and the
/// n-gram floor); BGL with time-window sessions and a chronological split. Writes bench/results/logs.json.
/// </summary>
public static class LogsBench
{
    static readonly (string System, double Drain)[] Systems =
    [
        ("HDFS", 0.9975), ("Zookeeper", 0.9665), ("BGL", 0.9625), ("HPC", 0.887), ("Windows", 0.997), ("Linux", 0.69),
        ("Android", 0.911), ("HealthApp", 0.78), ("Apache", 1.0), ("Proxifier", 0.5265), ("OpenStack", 0.7325), ("Mac", 0.7865),
    ];

    static string Data()
    {
        for (var directory = new DirectoryInfo(BenchPaths.RepositoryRoot()); directory is not null; directory = directory.Parent)
            if (Directory.Exists(Path.Combine(directory.FullName, "shared", "data", "loghub"))) return Path.Combine(directory.FullName, "shared", "data");
        throw new DirectoryNotFoundException("no shared/data/loghub above the repository");
    }

    public static int Run(string[] args)
    {
        int steps = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 300;
        string data = Data();
        var results = new JsonObject();

        Console.WriteLine($"{"system",-10} {"Loom",7} {"Drain",7} {"templates",9} {"lines/s",9}");
        var parsing = new JsonArray();
        double sum = 0, drainSum = 0;
        int atLeast = 0;
        foreach (var (system, drain) in Systems)
        {
            string log = Path.Combine(data, "loghub", system, $"{system}_2k.log");
            var parser = new LogParser(new LogParserOptions { Preset = system });
            var stopwatch = Stopwatch.StartNew();
            var ids = parser.ParseFile(log).Select(p => p.TemplateId).ToList();
            double seconds = stopwatch.Elapsed.TotalSeconds;
            double accuracy = GroupingAccuracy.Compute(GroupingAccuracy.ReadLoghubTruth(log + "_structured.csv"), ids);
            var generic = new LogParser();
            double genericAccuracy = GroupingAccuracy.Compute(GroupingAccuracy.ReadLoghubTruth(log + "_structured.csv"), [.. generic.ParseFile(log).Select(p => p.TemplateId)]);
            sum += accuracy;
            drainSum += drain;
            if (accuracy >= drain) atLeast++;
            Console.WriteLine($"{system,-10} {accuracy,7:F4} {drain,7:F4} {parser.Miner.Templates.Count,9} {ids.Count / seconds,9:F0}   generic preset {genericAccuracy:F4}");
            parsing.Add(new JsonObject
            {
                ["system"] = system, ["accuracy"] = Math.Round(accuracy, 4), ["drain"] = drain, ["generic_accuracy"] = Math.Round(genericAccuracy, 4),
                ["templates"] = parser.Miner.Templates.Count, ["lines_per_second"] = Math.Round(ids.Count / seconds),
            });
        }
        Console.WriteLine($"average {sum / Systems.Length:F4} (Drain {drainSum / Systems.Length:F4}); at least Drain on {atLeast} of {Systems.Length}");
        results["parsing"] = new JsonObject { ["systems"] = parsing, ["average"] = Math.Round(sum / Systems.Length, 4), ["drain_average"] = Math.Round(drainSum / Systems.Length, 4), ["at_least_drain"] = atLeast };

        // HDFS: semi-supervised, normal sessions only; the threshold comes from held-out normal sessions.
        var train = Sessionizer.ReadEventSequences(Path.Combine(data, "hdfs", "hdfs_train"));
        var dev = Sessionizer.ReadEventSequences(Path.Combine(data, "hdfs", "hdfs_dev.csv"));
        var clock = Stopwatch.StartNew();
        var model = LogModel.Train(train, new LogModelOptions { Steps = steps }, progress: Console.WriteLine);
        double trainSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var verdicts = AnomalyDetector.Detect(model, dev);
        double sessionsPerSecond = dev.Count / clock.Elapsed.TotalSeconds;
        var labels = dev.Select(s => s.Anomalous!.Value).ToList();
        var labelFree = DetectionMetrics.From(verdicts.Select(v => (v.Anomalous, v.Label!.Value)));
        var (tuned, _) = AnomalyDetector.TuneThreshold(verdicts.Select(v => v.Score).ToList(), labels);
        var devTuned = DetectionMetrics.From(verdicts.Select(v => (v.Score > tuned, v.Label!.Value)));
        var ngram = new NGramModel(train, 2);
        var floor = DetectionMetrics.From(dev.Select(s => (ngram.IsAnomalous(s), s.Anomalous!.Value)));
        Console.WriteLine($"HDFS dev ({dev.Count} sessions): label-free threshold {model.Threshold:F3}: P {labelFree.Precision:F4} R {labelFree.Recall:F4} F1 {labelFree.F1:F4}");
        Console.WriteLine($"                 dev-tuned threshold {tuned:F3}: P {devTuned.Precision:F4} R {devTuned.Recall:F4} F1 {devTuned.F1:F4}");
        Console.WriteLine($"                 bigram floor: P {floor.Precision:F4} R {floor.Recall:F4} F1 {floor.F1:F4}; trained in {trainSeconds:F1} s; {sessionsPerSecond:F0} sessions/s scored");
        results["hdfs"] = new JsonObject
        {
            ["train_sessions"] = train.Count, ["dev_sessions"] = dev.Count, ["steps"] = steps, ["train_seconds"] = Math.Round(trainSeconds, 1),
            ["sessions_per_second"] = Math.Round(sessionsPerSecond),
            ["label_free"] = Metrics(labelFree, model.Threshold), ["dev_tuned"] = Metrics(devTuned, tuned), ["ngram_floor"] = Metrics(floor, null),
        };

        // BGL: 60-second windows over the 2,000-line sample, first half of the windows to train (normal ones only), second half to test.
        string bgl = Path.Combine(data, "loghub", "BGL", "BGL_2k.log");
        var bglParser = new LogParser(new LogParserOptions { Preset = "BGL" });
        var windows = Sessionizer.ByTimeWindow(bglParser.ParseFile(bgl).ToList(), "Timestamp", 60, l => l.Header["Label"] != "-");
        int half = windows.Count / 2;
        var bglTrain = windows.Take(half).Where(w => w.Anomalous == false).ToList();
        var bglTest = windows.Skip(half).ToList();
        var bglModel = LogModel.Train(bglTrain, new LogModelOptions { Steps = 150, ThresholdQuantile = 1.0 },
            bglParser.Miner.Templates.ToDictionary(t => Sessionizer.EventKey(t.Id), t => t.Text));
        var bglMetrics = DetectionMetrics.From(AnomalyDetector.Detect(bglModel, bglTest).Select(v => (v.Anomalous, v.Label!.Value)));
        Console.WriteLine($"BGL 2k, 60 s windows: {windows.Count} windows, {bglTrain.Count} normal to train, {bglTest.Count} to test ({bglTest.Count(w => w.Anomalous == true)} anomalous): " +
            $"P {bglMetrics.Precision:F4} R {bglMetrics.Recall:F4} F1 {bglMetrics.F1:F4} — a tiny sample, read it as a smoke test");
        results["bgl"] = new JsonObject
        {
            ["window_seconds"] = 60, ["windows"] = windows.Count, ["train_windows"] = bglTrain.Count, ["test_windows"] = bglTest.Count,
            ["test_anomalous"] = bglTest.Count(w => w.Anomalous == true), ["metrics"] = Metrics(bglMetrics, bglModel.Threshold),
        };

        string output = Path.Combine(BenchPaths.ResultsFolder(), "logs.json");
        AtomicFile.WriteAllText(output, results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    static JsonObject Metrics(DetectionMetrics m, double? threshold) => new()
    {
        ["precision"] = Math.Round(m.Precision, 4), ["recall"] = Math.Round(m.Recall, 4), ["f1"] = Math.Round(m.F1, 4),
        ["threshold"] = threshold is { } t && double.IsFinite(t) ? Math.Round(t, 4) : null,
        ["tp"] = m.TruePositives, ["fp"] = m.FalsePositives, ["fn"] = m.FalseNegatives, ["tn"] = m.TrueNegatives,
    };
}
