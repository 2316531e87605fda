using System.Text;
using Loom.Logs;

namespace Loom.Tests.Logs;

public class WatchTests
{
    /// <summary>Raw lines of one normal session: A B C D E around block blk_{id}.</summary>
    internal static IEnumerable<string> SessionLines(long id, params string[] events) =>
        events.Select(e => e switch
        {
            "A" => $"INFO allocate block blk_{id} size 512",
            "B" => $"INFO receiving block blk_{id} from 10.0.0.{id % 200}",
            "C" => $"INFO received block blk_{id} of 512 bytes",
            "D" => $"INFO verified block blk_{id} checksum ok",
            "E" => $"INFO closed block blk_{id}",
            _ => $"ERROR exception while serving block blk_{id} to peer",
        });

    internal static LogModel TrainOnRawLines(string folder)
    {
        string train = Path.Combine(folder, "train.log");
        var random = new Random(5);
        File.WriteAllLines(train, Enumerable.Range(1, 200).SelectMany(i =>
            SessionLines(i, ["A", "B", "C", .. Enumerable.Repeat("D", random.Next(1, 3)), "E"])));
        var parser = new LogParser();
        var lines = parser.ParseFile(train).ToList();
        var sessions = Sessionizer.ByIdentifier(lines, @"blk_-?\d+");
        return LogModel.Train(sessions, new LogModelOptions { Dim = 32, Layers = 1, Heads = 2, MaxSeq = 16, Steps = 120, Batch = 16, LearningRate = 1e-2f, ThresholdQuantile = 1.0, ThresholdMargin = 1.5 },
            parser.Miner.Templates.ToDictionary(t => Sessionizer.EventKey(t.Id), t => t.Text));
    }

    [Fact]
    public async Task FlagsAnInjectedSessionWithinASecondAndSurvivesTruncationAndRotation()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        var model = TrainOnRawLines(folder);
        string log = Path.Combine(folder, "live.log");
        File.WriteAllText(log, "");
        var watcher = new LogWatcher(model, new LogWatchOptions { SessionTimeout = TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(20) });
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var reports = new List<WatchEvent>();
        var flagged = new Dictionary<string, TaskCompletionSource<WatchEvent>>();
        TaskCompletionSource<WatchEvent> Expect(string id) => flagged[id] = new TaskCompletionSource<WatchEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        var notes = new List<string>();
        var watching = Task.Run(async () =>
        {
            await foreach (var report in watcher.WatchAsync(log, cancel.Token))
            {
                lock (reports) reports.Add(report);
                if (report.Note is { } note) lock (notes) notes.Add(note);
                if (report.Verdict is { } v && flagged.TryGetValue(v.SessionId, out var waiter)) waiter.TrySetResult(report);
            }
        });

        void Append(IEnumerable<string> lines)
        {
            using var writer = new StreamWriter(log, append: true, Encoding.UTF8);
            foreach (string line in lines) writer.WriteLine(line);
        }

        async Task<WatchEvent> InjectAndWait(long id)
        {
            var waiter = Expect($"blk_{id}");
            Append(SessionLines(id, "A", "B", "X"));
            var done = await Task.WhenAny(waiter.Task, Task.Delay(TimeSpan.FromSeconds(10)));
            Assert.True(done == waiter.Task, $"blk_{id} was not flagged");
            return await waiter.Task;
        }

        // Normal traffic, then an anomalous session: flagged at its third line ("X"), with the latency measured.
        Append(Enumerable.Range(1000, 5).SelectMany(i => SessionLines(i, "A", "B", "C", "D", "E")));
        var first = await InjectAndWait(7001);
        Assert.Equal(2, first.Verdict!.FirstUnexpectedIndex);
        Assert.True(first.Latency < TimeSpan.FromSeconds(1), $"latency {first.Latency}");

        // Truncation in place: the watcher reads on from the new start.
        await using (new FileStream(log, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite)) { }
        await Task.Delay(200);
        var second = await InjectAndWait(7002);
        Assert.True(second.Latency < TimeSpan.FromSeconds(1));

        // Rotation: the file is renamed away and a new one takes its name.
        File.Move(log, log + ".1");
        File.WriteAllLines(log, SessionLines(3000, "A", "B", "C", "D", "E"));
        await Task.Delay(200);
        var third = await InjectAndWait(7003);
        Assert.True(third.Latency < TimeSpan.FromSeconds(1));

        cancel.Cancel();
        await watching;
        lock (notes)
        {
            Assert.Contains(notes, n => n.Contains("truncated"));
            Assert.Contains(notes, n => n.Contains("rotated"));
        }
        lock (reports) Assert.DoesNotContain(reports, r => r.Verdict is { } v && v.SessionId.StartsWith("blk_100", StringComparison.Ordinal));
    }
}
