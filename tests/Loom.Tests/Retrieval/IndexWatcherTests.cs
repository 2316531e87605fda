using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

/// <summary>The watch loop as a library call: a change under a watched folder re-ingests it, cancellation ends the watch quietly.</summary>
public sealed class IndexWatcherTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-watch-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task ChangesAreIngestedUntilCancelled()
    {
        string notes = Directory.CreateDirectory(Path.Combine(folder, "notes")).FullName;
        File.WriteAllText(Path.Combine(notes, "a.md"), "# A\n\nThe first note.");
        using var index = await RetrievalIndex.OpenAsync(Path.Combine(folder, "index"), Embedders.Hashing, null, create: true, default);
        var ingestor = new Ingestor(index.Store, index.Embedder);
        var none = new Dictionary<string, string>();
        await ingestor.IngestPathsAsync([notes], none, default);
        Assert.Equal(1, (await index.Store.CountAsync(null, default)).Documents);

        var messages = new List<string>();
        var reports = new List<IngestReport>();
        var reingested = new TaskCompletionSource();
        using var stop = new CancellationTokenSource();
        var watch = IndexWatcher.WatchAsync(new IndexWatchOptions { Paths = [notes], Debounce = TimeSpan.FromMilliseconds(50) }, async token =>
        {
            var report = await ingestor.IngestPathsAsync([notes], none, token);
            lock (reports) reports.Add(report);
            if (report.Count(IngestOutcome.Added) > 0) reingested.TrySetResult();
        }, new Recorder(messages), stop.Token);

        await WaitForAsync(() => messages.Any(m => m == "watching for changes under 1 path(s)"));
        File.WriteAllText(Path.Combine(notes, "b.md"), "# B\n\nA second note, added while watching.");
        await reingested.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, (await index.Store.CountAsync(null, default)).Documents);
        var hits = await index.Retriever.SearchAsync("second note added while watching", new SearchOptions(SearchMode.Bm25, 1), default);
        Assert.EndsWith("b.md", hits[0].SourceId);

        stop.Cancel();
        await watch.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(watch.IsCompletedSuccessfully);
        Assert.Equal("stopped watching", messages[^1]);
    }

    [Fact]
    public async Task NegativeDebounceNamesTheProperty()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            IndexWatcher.WatchAsync(new IndexWatchOptions { Paths = [folder], Debounce = TimeSpan.FromSeconds(-1) }, _ => Task.CompletedTask));
        Assert.StartsWith("IndexWatchOptions.Debounce must be ≥ 0", error.Message);
    }

    static async Task WaitForAsync(Func<bool> condition)
    {
        for (int i = 0; i < 600 && !condition(); i++)
            await Task.Delay(50);
        Assert.True(condition());
    }

    /// <summary>Keeps messages in order, synchronously.</summary>
    sealed class Recorder(List<string> messages) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (messages) messages.Add(value);
        }
    }
}
