using System.Runtime.CompilerServices;
using Loom.Text;
using Microsoft.Extensions.Logging;

namespace Loom.Serving.Feedback;

/// <summary>How <see cref="ServedVersions"/> loads and watches; null means the default.</summary>
public sealed record ServedVersionsOptions
{
    /// <summary>The model name clients send, the same for every version; default the registry folder's name.</summary>
    public string? ModelName { get; init; }
    /// <summary>How each version is loaded (slots, context, compute).</summary>
    public LoomModelOptions? Model { get; init; }
    /// <summary>How often HOME/current is read besides the file-system watcher's events; default 1 s.</summary>
    public TimeSpan? PollInterval { get; init; }
    /// <summary>Whether HOME/current is watched (default true); false leaves switching to <see cref="ServedVersions.RefreshAsync"/>.</summary>
    public bool Watch { get; init; } = true;
    /// <summary>Where swaps and versions that fail to load are reported.</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>One request's hold on a model version: the version answers it, and stays loaded until the lease is disposed.</summary>
public sealed class VersionLease : IDisposable
{
    readonly ServedVersions.Loaded? loaded;
    int disposed;

    internal VersionLease(string version, ITextGenerator generator, ServedVersions.Loaded? loaded)
    {
        Version = version;
        Generator = generator;
        this.loaded = loaded;
    }

    /// <summary>A lease on a generator that is never swapped (a server without a registry): its version is the model's name.</summary>
    public static VersionLease Fixed(ITextGenerator generator) => new(generator.ModelName, generator, null);

    /// <summary>The version's name (the registry's folder name).</summary>
    public string Version { get; }

    /// <summary>The version's batching engine.</summary>
    public ITextGenerator Generator { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0) loaded?.Release();
    }
}

/// <summary>
/// The versions of a <see cref="ModelRegistry"/> served one after the other, swapped while serving: it serves the version
/// HOME/current names, watches that file (a <see cref="FileSystemWatcher"/>, and a poll as backstop), and when it names
/// another version loads that checkpoint and its engine, then switches atomically. Every request takes one version with
/// <see cref="Acquire"/> at its start and finishes on it; a version is disposed when it is no longer current and its last
/// lease is released, so no request is dropped. A version that fails to load is logged and the old one keeps serving.
/// As an <see cref="ITextGenerator"/> it names the model and counts tokens with the current version, and generates each
/// request on the version current at its start (the versions of one registry share a tokenizer: each is tuned from its
/// parent); the server takes a lease per request instead, so a request's prompt and answer come from one version.
/// </summary>
public sealed class ServedVersions : ITextGenerator, IAsyncDisposable
{
    /// <summary>A loaded version with its reference count: one for being current, one per lease.</summary>
    internal sealed class Loaded(string version, LoomModel model, ServedVersions owner)
    {
        int references = 1;

        public string Version { get; } = version;
        public LoomModel Model { get; } = model;

        public bool TryAddReference()
        {
            int count = Volatile.Read(ref references);
            while (count > 0)
            {
                int seen = Interlocked.CompareExchange(ref references, count + 1, count);
                if (seen == count) return true;
                count = seen;
            }
            return false;
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref references) == 0) owner.Retire(this);
        }
    }

    readonly ModelRegistry registry;
    readonly ServedVersionsOptions options;
    readonly ILogger? logger;
    readonly FileSystemWatcher? watcher;
    readonly SemaphoreSlim changed = new(0);
    readonly SemaphoreSlim swapGate = new(1);
    readonly CancellationTokenSource stopping = new();
    readonly List<Task> retiring = [];
    readonly Task watching;
    Loaded current;
    string? failedVersion;
    long swaps, loadFailures;
    int disposed;

    ServedVersions(ModelRegistry registry, ServedVersionsOptions options, string version, LoomModel model)
    {
        this.registry = registry;
        this.options = options;
        logger = options.Logger;
        current = new Loaded(version, model, this);
        ModelName = model.Name;
        if (!options.Watch)
        {
            watching = Task.CompletedTask;
            return;
        }
        watcher = new FileSystemWatcher(registry.Home) { Filter = Path.GetFileName(registry.CurrentFile), IncludeSubdirectories = false };
        watcher.Changed += (_, _) => Signal();
        watcher.Created += (_, _) => Signal();
        watcher.Renamed += (_, _) => Signal();
        watcher.EnableRaisingEvents = true;
        watching = WatchAsync(stopping.Token);
    }

    /// <summary>Loads the version HOME/current names and starts watching. Throws when the registry has no current version or it does not load.</summary>
    public static Task<ServedVersions> StartAsync(ModelRegistry registry, ServedVersionsOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registry);
        options ??= new ServedVersionsOptions();
        if (options.PollInterval is { } poll && poll <= TimeSpan.Zero)
            throw new ArgumentException($"ServedVersionsOptions.PollInterval must be positive, got {poll}", nameof(options));
        string version = registry.Current
            ?? throw new ArgumentException($"{registry.CurrentFile}: the registry names no current version (ModelRegistry.SetCurrent promotes one)", nameof(registry));
        string modelName = options.ModelName ?? Path.GetFileName(registry.Home.TrimEnd(Path.DirectorySeparatorChar));
        return Task.Run(() => new ServedVersions(registry, options, version, Load(registry, version, modelName, options.Model)), cancellationToken);
    }

    /// <summary>The model name clients send (the same for every version).</summary>
    public string ModelName { get; }

    /// <summary>The version serving new requests.</summary>
    public string Current => Volatile.Read(ref current).Version;

    /// <summary>Times a new version was switched to.</summary>
    public long Swaps => Interlocked.Read(ref swaps);

    /// <summary>Versions that HOME/current named but that failed to load.</summary>
    public long LoadFailures => Interlocked.Read(ref loadFailures);

    /// <summary>Raised after a switch, with the new version's name.</summary>
    public event Action<string>? Swapped;

    /// <summary>The current version, held until the lease is disposed.</summary>
    public VersionLease Acquire()
    {
        while (true)
        {
            var version = Volatile.Read(ref current);
            if (version.TryAddReference()) return new VersionLease(version.Version, version.Model.Engine, version);
        }
    }

    /// <summary>
    /// Reads HOME/current now and, when it names another version, loads and switches to it. Returns whether it switched;
    /// a version that fails to load is logged, counted and not tried again until HOME/current names another.
    /// </summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await swapGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string? wanted;
            try { wanted = registry.Current; }
            catch (IOException) { return false; }
            if (wanted is null || wanted == Current || wanted == failedVersion) return false;
            LoomModel model;
            try
            {
                model = await Task.Run(() => Load(registry, wanted, ModelName, options.Model), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failedVersion = wanted;
                Interlocked.Increment(ref loadFailures);
                logger?.LogError("version '{Version}' failed to load, '{Current}' keeps serving: {Message}", wanted, Current, e.Message);
                return false;
            }
            failedVersion = null;
            var previous = Interlocked.Exchange(ref current, new Loaded(wanted, model, this));
            Interlocked.Increment(ref swaps);
            logger?.LogInformation("serving version '{Version}' (was '{Previous}')", wanted, previous.Version);
            previous.Release();
            Swapped?.Invoke(wanted);
            return true;
        }
        finally { swapGate.Release(); }
    }

    void Signal()
    {
        if (changed.CurrentCount == 0) changed.Release();
    }

    async Task WatchAsync(CancellationToken cancellationToken)
    {
        var poll = options.PollInterval ?? TimeSpan.FromSeconds(1);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await changed.WaitAsync(poll, cancellationToken).ConfigureAwait(false);
                await RefreshAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                logger?.LogError(e, "watching {CurrentFile} failed: {Message}", registry.CurrentFile, e.Message);
            }
        }
    }

    /// <summary>Disposes a version no request holds any more (off the releasing request's path).</summary>
    internal void Retire(Loaded version)
    {
        lock (retiring) retiring.Add(Task.Run(async () => await version.Model.DisposeAsync().ConfigureAwait(false)));
    }

    static LoomModel Load(ModelRegistry registry, string version, string modelName, LoomModelOptions? modelOptions) =>
        LoomModel.Load(registry.CheckpointOf(version), modelOptions, modelName);

    int ITextGenerator.ContextLength => Volatile.Read(ref current).Model.Engine.ContextLength;

    int ITextGenerator.ActiveSequences => Volatile.Read(ref current).Model.Engine.ActiveSequences;

    int ITextGenerator.CountTokens(string text) => Volatile.Read(ref current).Model.Engine.CountTokens(text);

    int[] ITextGenerator.EncodeChat(IReadOnlyList<ChatTurn> turns) => Volatile.Read(ref current).Model.Engine.EncodeChat(turns);

    IChatFormat ITextGenerator.ChatFormat => Volatile.Read(ref current).Model.Engine.ChatFormat;

    async IAsyncEnumerable<GenerationUpdate> ITextGenerator.GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var lease = Acquire();
        await foreach (var update in lease.Generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
            yield return update;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        watcher?.Dispose();
        await stopping.CancelAsync().ConfigureAwait(false);
        try { await watching.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        Volatile.Read(ref current).Release();
        Task[] pending;
        lock (retiring) pending = [.. retiring];
        await Task.WhenAll(pending).ConfigureAwait(false);
        stopping.Dispose();
        changed.Dispose();
        swapGate.Dispose();
    }
}
