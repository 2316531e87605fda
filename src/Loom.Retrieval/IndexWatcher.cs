namespace Loom.Retrieval;

/// <summary>What <see cref="IndexWatcher.WatchAsync"/> watches; null means the default.</summary>
public sealed record IndexWatchOptions
{
    /// <summary>Files and folders (folders recursively) whose changes trigger re-ingestion; missing ones are not watched.</summary>
    public IReadOnlyList<string> Paths { get; init; } = [];
    /// <summary>Quiet time after the last change before re-ingesting; null: 500 ms.</summary>
    public TimeSpan? Debounce { get; init; }
}

/// <summary>Keeps an index in step with files: re-runs ingestion once changes under the watched paths settle.</summary>
public static class IndexWatcher
{
    /// <summary>
    /// Calls <paramref name="ingest"/> each time the watched paths change and then stay quiet for the debounce time, until
    /// <paramref name="cancellationToken"/> is cancelled; returns then, without throwing. <paramref name="progress"/> hears
    /// when watching starts (every change from then on is seen) and when it stops.
    /// </summary>
    public static async Task WatchAsync(IndexWatchOptions options, Func<CancellationToken, Task> ingest, IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var debounce = options.Debounce ?? TimeSpan.FromMilliseconds(500);
        if (debounce < TimeSpan.Zero) throw new ArgumentException($"IndexWatchOptions.Debounce must be ≥ 0, got {debounce}");
        using var changed = new SemaphoreSlim(0);
        var watchers = new List<FileSystemWatcher>();
        try
        {
            foreach (string path in options.Paths.Select(Path.GetFullPath))
            {
                bool isFolder = Directory.Exists(path);
                string folder = isFolder ? path : Path.GetDirectoryName(path)!;
                if (!Directory.Exists(folder))
                    continue;
                var watcher = new FileSystemWatcher(folder)
                {
                    IncludeSubdirectories = isFolder,
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
                };
                if (!isFolder)
                    watcher.Filter = Path.GetFileName(path);
                FileSystemEventHandler signal = (_, _) => changed.Release();
                watcher.Changed += signal;
                watcher.Created += signal;
                watcher.Deleted += signal;
                watcher.Renamed += (_, _) => changed.Release();
                watcher.EnableRaisingEvents = true;
                watchers.Add(watcher);
            }
            progress?.Report($"watching for changes under {watchers.Count} path(s)");
            while (!cancellationToken.IsCancellationRequested)
            {
                await changed.WaitAsync(cancellationToken);
                // Debounce: wait until the quiet time passes with no further change.
                while (await changed.WaitAsync(debounce, cancellationToken))
                {
                }
                await ingest(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var watcher in watchers)
                watcher.Dispose();
        }
        progress?.Report("stopped watching");
    }
}
