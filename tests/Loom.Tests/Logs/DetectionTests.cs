using Loom.Logs;

namespace Loom.Tests.Logs;

public class DetectionTests
{
    static ParsedLine Line(long number, int template, string content, Dictionary<string, string>? header = null) =>
        new(number, template, "", [], content, header ?? [], null);

    [Fact]
    public void SessionizersGroupByIdFieldTimeAndCount()
    {
        var lines = new[]
        {
            Line(1, 1, "open blk_1", new() { ["Node"] = "a", ["T"] = "100" }),
            Line(2, 1, "open blk_-2", new() { ["Node"] = "b", ["T"] = "101" }),
            Line(3, 2, "copy blk_1 to blk_-2", new() { ["Node"] = "a", ["T"] = "170" }),
            Line(4, 3, "nothing here", new() { ["Node"] = "a", ["T"] = "171" }),
        };
        var byId = Sessionizer.ByIdentifier(lines, @"blk_-?\d+");
        Assert.Equal(["blk_1", "blk_-2"], byId.Select(s => s.Id));
        Assert.Equal(["1", "2"], byId[0].Events);
        Assert.Equal([2L, 3L], byId[1].Lines);
        var byField = Sessionizer.ByField(lines, "Node");
        Assert.Equal(["1", "2", "3"], byField[0].Events);
        var byTime = Sessionizer.ByTimeWindow(lines, "T", 60, l => l.TemplateId == 3);
        Assert.Equal(2, byTime.Count);
        Assert.Equal([1L, 2L], byTime[0].Lines);
        Assert.Equal([false, true], byTime.Select(s => s.Anomalous!.Value));
        Assert.Equal([2, 2], Sessionizer.ByCount(lines, 2).Select(s => s.Events.Count));
    }

    [Fact]
    public void ReadsPreParsedSessionsWithAndWithoutLabels()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        File.WriteAllText(Path.Combine(folder, "train"), "5 5 22 \n\n1 2 \n");
        File.WriteAllText(Path.Combine(folder, "dev.csv"), "Sequence,label\n5 5,0\n5 9,1\n");
        File.WriteAllText(Path.Combine(folder, "bad.csv"), "Sequence,label\n5 5,x\n");
        var train = Sessionizer.ReadEventSequences(Path.Combine(folder, "train"));
        Assert.Equal([["5", "5", "22"], ["1", "2"]], train.Select(s => s.Events.ToArray()));
        Assert.Null(train[0].Anomalous);
        var dev = Sessionizer.ReadEventSequences(Path.Combine(folder, "dev.csv"));
        Assert.Equal([false, true], dev.Select(s => s.Anomalous!.Value));
        var e = Assert.Throws<InvalidDataException>(() => Sessionizer.ReadEventSequences(Path.Combine(folder, "bad.csv")));
        Assert.Contains("bad.csv:2", e.Message);
    }

    /// <summary>Normal sessions: A B C (D)* E; anomalies break the order or end early.</summary>
    internal static List<LogSession> Synthetic(int count, int seed)
    {
        var random = new Random(seed);
        var sessions = new List<LogSession>();
        for (int i = 0; i < count; i++)
        {
            var events = new List<string> { "A", "B", "C" };
            for (int d = random.Next(1, 4); d > 0; d--) events.Add("D");
            events.Add("E");
            sessions.Add(new LogSession($"s{i}", events, new long[events.Count], false));
        }
        return sessions;
    }

    internal static LogModel TinyModel(IReadOnlyList<LogSession> normal) =>
        LogModel.Train(normal, new LogModelOptions { Dim = 32, Layers = 1, Heads = 2, MaxSeq = 16, Steps = 120, Batch = 16, LearningRate = 1e-2f, ThresholdQuantile = 1.0, ThresholdMargin = 1.5 },
            new Dictionary<string, string> { ["A"] = "open <*>", ["E"] = "close <*>" });

    [Fact]
    public void DetectorFlagsWhereASessionGoesWrongAndSavesLikeACheckpoint()
    {
        var model = TinyModel(Synthetic(200, 1));
        var test = Synthetic(20, 2);
        test.Add(new LogSession("swap", ["A", "C", "B", "D", "E"], [10, 11, 12, 13, 14], true));
        test.Add(new LogSession("cut", ["A", "B", "C", "D"], [20, 21, 22, 23], true));
        test.Add(new LogSession("unknown", ["A", "B", "Z", "D", "E"], [30, 31, 32, 33, 34], true));
        var verdicts = AnomalyDetector.Detect(model, test);
        Assert.All(verdicts.Take(20), v => Assert.False(v.Anomalous, $"{v.SessionId} score {v.Score} > {v.Threshold}"));
        var swap = verdicts[20];
        Assert.True(swap.Anomalous);
        Assert.Equal(1, swap.FirstUnexpectedIndex);
        Assert.Equal(11, swap.FirstUnexpectedLine);
        Assert.Equal("B", swap.Expected[0].Event);
        Assert.True(swap.Expected[0].Probability > 0.5);
        var cut = verdicts[21];
        Assert.True(cut.Anomalous);
        Assert.Equal(4, cut.FirstUnexpectedIndex);
        Assert.Equal(EventVocabulary.EndToken, cut.UnexpectedEvent);
        Assert.Contains(cut.Expected, e => e.Event is "D" or "E");
        Assert.True(verdicts[22].Anomalous);
        Assert.Equal(2, verdicts[22].FirstUnexpectedIndex);
        Assert.Contains("\"first_unexpected_index\":1", swap.ToJson());

        string folder = Text.TestData.NewTemporaryDirectory();
        model.Save(folder);
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        var loaded = LogModel.Load(folder);
        Assert.Equal(model.Threshold, loaded.Threshold);
        Assert.Equal(verdicts.Select(v => v.Score), AnomalyDetector.Detect(loaded, test).Select(v => v.Score));
        Assert.Equal("open <*>", loaded.Vocabulary.Template("A"));
    }

    [Fact]
    public void ThresholdTuningAndMetricsAreExact()
    {
        var (threshold, f1) = AnomalyDetector.TuneThreshold([0.1, 0.2, 0.9, 0.8, 0.3], [false, false, true, true, false]);
        Assert.Equal(1.0, f1);
        Assert.Equal(0.55, threshold, 9);
        var metrics = DetectionMetrics.From([(true, true), (true, false), (false, true), (false, false)]);
        Assert.Equal(0.5, metrics.Precision);
        Assert.Equal(0.5, metrics.Recall);
        Assert.Equal(0.5, metrics.F1);
        var ngram = new NGramModel(Synthetic(50, 3), 2);
        Assert.False(ngram.IsAnomalous(new LogSession("n", ["A", "B", "C", "D", "E"], new long[5])));
        Assert.True(ngram.IsAnomalous(new LogSession("x", ["A", "B", "C", "D"], new long[4])));
    }
}
