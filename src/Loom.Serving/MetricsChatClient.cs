using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>A point-in-time copy of <see cref="ChatMetrics"/>.</summary>
public sealed record ChatMetricsSnapshot(long Requests, long Failures, long Active, long PromptTokens, long CompletionTokens, double Seconds);

/// <summary>Counters of the chat pipeline: requests, failures, tokens and time spent answering. Thread-safe.</summary>
public sealed class ChatMetrics
{
    long requests, failures, active, promptTokens, completionTokens, ticks;

    public ChatMetricsSnapshot Snapshot() => new(
        Interlocked.Read(ref requests), Interlocked.Read(ref failures), Interlocked.Read(ref active),
        Interlocked.Read(ref promptTokens), Interlocked.Read(ref completionTokens),
        TimeSpan.FromTicks(Interlocked.Read(ref ticks)).TotalSeconds);

    /// <summary>Counts one non-streaming call.</summary>
    public async Task<ChatResponse> ObserveAsync(Func<Task<ChatResponse>> call)
    {
        long started = Start();
        bool failed = true;
        try
        {
            var response = await call().ConfigureAwait(false);
            Tokens(response.Usage);
            failed = false;
            return response;
        }
        finally { Finish(started, failed); }
    }

    /// <summary>Counts one streamed call as it is read: the usage it reports and the time to its last update.</summary>
    public async IAsyncEnumerable<ChatResponseUpdate> ObserveAsync(IAsyncEnumerable<ChatResponseUpdate> updates,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long started = Start();
        bool failed = true;
        try
        {
            await foreach (var update in updates.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                foreach (var usage in update.Contents.OfType<UsageContent>()) Tokens(usage.Details);
                yield return update;
            }
            failed = false;
        }
        finally { Finish(started, failed); }
    }

    long Start()
    {
        Interlocked.Increment(ref requests);
        Interlocked.Increment(ref active);
        return Stopwatch.GetTimestamp();
    }

    void Finish(long started, bool failed)
    {
        Interlocked.Decrement(ref active);
        if (failed) Interlocked.Increment(ref failures);
        Interlocked.Add(ref ticks, Stopwatch.GetElapsedTime(started).Ticks);
    }

    void Tokens(UsageDetails? usage)
    {
        if (usage is null) return;
        Interlocked.Add(ref promptTokens, usage.InputTokenCount ?? 0);
        Interlocked.Add(ref completionTokens, usage.OutputTokenCount ?? 0);
    }
}

/// <summary>Counts every request that passes through into <see cref="ChatMetrics"/> (the server's /metrics reads them).</summary>
public sealed class MetricsChatClient(IChatClient innerClient, ChatMetrics metrics) : DelegatingChatClient(innerClient)
{
    public ChatMetrics Metrics => metrics;

    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        metrics.ObserveAsync(() => base.GetResponseAsync(messages, options, cancellationToken));

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        metrics.ObserveAsync(base.GetStreamingResponseAsync(messages, options, cancellationToken), cancellationToken);

    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(ChatMetrics) ? metrics : base.GetService(serviceType, serviceKey);
}
