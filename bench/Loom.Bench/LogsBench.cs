using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Logs;

namespace Loom.Bench;

/// <summary>
/// <c>Loom.Bench logs</c>: grouping accuracy on every Loghub-2k system beside Drain's published figure; HDFS detection
/// (train on hdfs_train, normal only; P/R/F1 on hdfs_dev.csv with the label-free threshold, the dev-tuned one, and the
/// n-gram floor); BGL over several session definitions with a chronological split. Writes bench/results/logs.json;
/// `logs parse` or `logs bgl` reruns only that table and merges it in.
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
        string data = Data();
        string output = Path.Combine(BenchPaths.ResultsFolder(), "logs.json");
        if (args is ["bgl"] or ["parse"])
        {
            // Only the BGL or the parsing table, merged into the results of the last full run.
            var merged = File.Exists(output) ? JsonNode.Parse(File.ReadAllText(output))!.AsObject() : new JsonObject();
            if (args[0] == "bgl") merged["bgl"] = Bgl(data);
            else merged["parsing"] = Parsing(data);
            AtomicFile.WriteAllText(output, merged.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {output}");
            return 0;
        }
        int steps = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 300;
        var results = new JsonObject();

        results["parsing"] = Parsing(data);

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

        results["bgl"] = Bgl(data);

        AtomicFile.WriteAllText(output, results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    /// <summary>Grouping accuracy and lines/s of each system's preset (and of the generic preset) beside Drain's figure.</summary>
    static JsonObject Parsing(string data)
    {
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
        return new JsonObject { ["systems"] = parsing, ["average"] = Math.Round(sum / Systems.Length, 4), ["drain_average"] = Math.Round(drainSum / Systems.Length, 4), ["at_least_drain"] = atLeast };
    }

    /// <summary>
    /// BGL 2k, chronologically: sessions over the first 1,000 lines train (normal sessions only; labels from the alert
    /// field), sessions over the last 1,000 test. Several session definitions (time windows of 1 min, 1 h, 6 h; windows
    /// of 20 lines) and two event keys (the template; the template with the line's severity Level) are all reported:
    /// none is chosen on the test half (a chronological dev part of the training half holds 2 alert lines, too few to
    /// choose by). Thresholds come from normal training sessions alone: part 1's rule (the largest held-out score,
    /// quantile 1) and a novelty-aware one. In the training half, 4–18% of the normal sessions hold an event that no
    /// other normal session has, so the largest held-out score is an unseen event's surprise and quantile 1 flags almost
    /// nothing new; the novelty-aware quantile is 1 minus that share, measured on the training sessions. Beside each row,
    /// the floor: a session is anomalous when it holds an event no normal training session had.
    /// </summary>
    static JsonObject Bgl(string data)
    {
        string log = Path.Combine(data, "loghub", "BGL", "BGL_2k.log");
        var parser = new LogParser(new LogParserOptions { Preset = "BGL" });
        var lines = parser.ParseFile(log).ToList();
        var templates = parser.Miner.Templates.ToDictionary(t => t.Id, t => t.Text);
        static bool Alert(ParsedLine line) => line.Header["Label"] != "-";
        // Template with Level: each (template, level) pair gets its own id.
        var pairIds = new Dictionary<(int, string), int>();
        var pairTexts = new Dictionary<string, string>();
        var withLevel = lines.Select(l =>
        {
            string level = l.Header.GetValueOrDefault("Level", "");
            if (!pairIds.TryGetValue((l.TemplateId, level), out int id))
            {
                pairIds[(l.TemplateId, level)] = id = pairIds.Count + 1;
                pairTexts[Sessionizer.EventKey(id)] = $"{level} {templates[l.TemplateId]}";
            }
            return l with { TemplateId = id };
        }).ToList();
        var keys = new (string Name, List<ParsedLine> Lines, Dictionary<string, string> Texts)[]
        {
            ("template", lines, templates.ToDictionary(t => Sessionizer.EventKey(t.Key), t => t.Value)),
            ("template+level", withLevel, pairTexts),
        };
        var definitions = new (string Name, Func<List<ParsedLine>, List<LogSession>> Make)[]
        {
            ("time 60 s", l => Sessionizer.ByTimeWindow(l, "Timestamp", 60, Alert)),
            ("time 1 h", l => Sessionizer.ByTimeWindow(l, "Timestamp", 3600, Alert)),
            ("time 6 h", l => Sessionizer.ByTimeWindow(l, "Timestamp", 6 * 3600, Alert)),
            ("count 20", l => Sessionizer.ByCount(l, 20, Alert)),
        };
        long split = lines[lines.Count / 2].LineNumber;
        var rows = new JsonArray();
        Console.WriteLine($"BGL 2k, chronological: sessions starting before line {split} train (normal only), the rest test; thresholds from held-out normal scores");
        Console.WriteLine($"{"sessions",-10} {"events",-15} {"train",5} {"test",5} {"anom",5} {"q",5} {"P",6} {"R",6} {"F1",6}   quantile 1 P/R/F1   floor P/R/F1");
        foreach (var (keyName, keyed, texts) in keys)
            foreach (var (name, make) in definitions)
            {
                var sessions = make(keyed);
                var train = sessions.Where(s => s.Lines[0] < split && s.Anomalous == false).ToList();
                var test = sessions.Where(s => s.Lines[0] >= split).ToList();
                // Novelty: the share of normal training sessions holding an event no other normal training session has.
                var sessionsWith = train.SelectMany(s => s.Events.Distinct()).CountBy(e => e).ToDictionary(p => p.Key, p => p.Value);
                double novelty = (double)train.Count(s => s.Events.Any(e => sessionsWith[e] == 1)) / train.Count;
                double quantile = Math.Max(0.5, 1 - novelty);
                var model = LogModel.Train(train, new LogModelOptions { Steps = 150, ThresholdQuantile = quantile }, texts);
                var metrics = DetectionMetrics.From(AnomalyDetector.Detect(model, test).Select(v => (v.Anomalous, v.Label!.Value)));
                var largest = LogModel.Train(train, new LogModelOptions { Steps = 150, ThresholdQuantile = 1 }, texts);
                var largestMetrics = DetectionMetrics.From(AnomalyDetector.Detect(largest, test).Select(v => (v.Anomalous, v.Label!.Value)));
                var seen = train.SelectMany(s => s.Events).ToHashSet(StringComparer.Ordinal);
                var floor = DetectionMetrics.From(test.Select(s => (s.Events.Any(e => !seen.Contains(e)), s.Anomalous!.Value)));
                int anomalous = test.Count(s => s.Anomalous == true);
                Console.WriteLine($"{name,-10} {keyName,-15} {train.Count,5} {test.Count,5} {anomalous,5} {quantile,5:F3} {metrics.Precision,6:F3} {metrics.Recall,6:F3} {metrics.F1,6:F3}   " +
                    $"{largestMetrics.Precision:F3}/{largestMetrics.Recall:F3}/{largestMetrics.F1:F3}    {floor.Precision:F3}/{floor.Recall:F3}/{floor.F1:F3}");
                rows.Add(new JsonObject
                {
                    ["sessions"] = name, ["events"] = keyName, ["train_sessions"] = train.Count, ["test_sessions"] = test.Count, ["test_anomalous"] = anomalous,
                    ["novelty_quantile"] = Math.Round(quantile, 4), ["metrics"] = Metrics(metrics, model.Threshold),
                    ["quantile_1"] = Metrics(largestMetrics, largest.Threshold), ["unseen_event_floor"] = Metrics(floor, null),
                });
            }
        Console.WriteLine("a 2,000-line sample over 7 months (about one line per 2.5 h; 143 alert lines, 47 in the test half): tens of test sessions, read as a smoke test");
        return new JsonObject { ["split_line"] = split, ["rows"] = rows };
    }

    static JsonObject Metrics(DetectionMetrics m, double? threshold) => new()
    {
        ["precision"] = Math.Round(m.Precision, 4), ["recall"] = Math.Round(m.Recall, 4), ["f1"] = Math.Round(m.F1, 4),
        ["threshold"] = threshold is { } t && double.IsFinite(t) ? Math.Round(t, 4) : null,
        ["tp"] = m.TruePositives, ["fp"] = m.FalsePositives, ["fn"] = m.FalseNegatives, ["tn"] = m.TrueNegatives,
    };
}
