using Loom.Evaluation;
using Loom.Logs;
using Loom.Tests.Models;

namespace Loom.Tests.Evaluation;

/// <summary>The logs task kind: anomaly precision, recall and F1 of a log model checkpoint on the shipped HDFS dev slice.</summary>
public sealed class LogsTaskTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-eval-logs-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void CountsMatchTheDefinitionAndTheIntervalsHoldTheValue()
    {
        var sessions = new List<EvalTasks.LogSessionItem>();
        var flagged = new List<bool>();
        // 6 true positives, 2 false positives, 3 false negatives, 9 true negatives.
        foreach (var (flag, label, count) in new[] { (true, true, 6), (true, false, 2), (false, true, 3), (false, false, 9) })
            for (int i = 0; i < count; i++)
            {
                sessions.Add(new($"s{sessions.Count}", ["1"], label));
                flagged.Add(flag);
            }
        var metrics = EvalTasks.AnomalyDetection(sessions, flagged, new EvalTaskOptions());
        Assert.Equal(6 / 8.0, metrics["anomaly_precision"].Value, 12);
        Assert.Equal(6 / 9.0, metrics["anomaly_recall"].Value, 12);
        Assert.Equal(2 * 6 / (2 * 6 + 2 + 3.0), metrics["anomaly_f1"].Value, 12);
        foreach (var value in metrics.Values)
        {
            Assert.Equal(20, value.N);
            Assert.InRange(value.Value, value.Low!.Value, value.High!.Value);
            Assert.True(value.High > value.Low);
        }
    }

    [Fact]
    public void TheShippedHdfsSliceRunsThroughTheCliAndMatchesTheDetector()
    {
        var task = EvalTask.Load(Path.Combine(GgufReference.RepoRoot(), "eval", "hdfs-dev.json"));
        var sessions = EvalTasks.ReadSessions(task);
        Assert.Equal(313, sessions.Count);
        Assert.Equal(198, sessions.Count(s => s.Anomalous));

        var normal = Sessionizer.ReadEventSequences(Path.Combine(GgufReference.RepoRoot(), "..", "shared", "data", "hdfs", "hdfs_train")).Take(400).ToList();
        var model = LogModel.Train(normal, new LogModelOptions { Dim = 32, Layers = 1, Heads = 2, MaxSeq = 64, Steps = 60, Batch = 16, LearningRate = 1e-2f });
        string folder = Path.Combine(root, "log-model");
        model.Save(folder);

        string results = Path.Combine(root, "run.json");
        var run = CliRun.Run("eval", "--task", Path.Combine(GgufReference.RepoRoot(), "eval", "hdfs-dev.json"), "--log-model", folder, "--out", results, "--threads", "1");
        Assert.True(run.ExitCode == 0, run.Error);
        var metrics = Assert.Single(EvalRun.Load(results).Tasks).Metrics;

        var verdicts = AnomalyDetector.Detect(LogModel.Load(folder), [.. sessions.Select(s => new LogSession(s.Id, s.Events, new long[s.Events.Count], s.Anomalous))]);
        var expected = DetectionMetrics.From(verdicts.Select((v, i) => (v.Anomalous, sessions[i].Anomalous)));
        Assert.Equal(expected.Precision, metrics["anomaly_precision"].Value, 12);
        Assert.Equal(expected.Recall, metrics["anomaly_recall"].Value, 12);
        Assert.Equal(expected.F1, metrics["anomaly_f1"].Value, 12);
        Assert.Equal(313, metrics["anomaly_f1"].N);
    }
}
