using System.Diagnostics;

namespace Loom.Serving.Pipeline;

/// <summary>What a pipeline event says: a stage began, a stage reported something, or a stage ended.</summary>
public enum PipelineEventKind
{
    StageStarted,
    Message,
    StageCompleted,
}

/// <summary>One event of a pipeline run, as a caller shows it (a status line, a log, a progress bar).</summary>
/// <param name="Kind">Started, message or completed.</param>
/// <param name="StageNumber">1 for the first stage, counting up.</param>
/// <param name="Stage">The stage's name ("pretrain").</param>
/// <param name="Message">What the stage reported; empty for started and completed.</param>
/// <param name="StageElapsed">Time spent in the stage so far (its whole time when completed).</param>
/// <param name="TotalElapsed">Time since the run began.</param>
public sealed record PipelineProgress(PipelineEventKind Kind, int StageNumber, string Stage, string Message, TimeSpan StageElapsed, TimeSpan TotalElapsed);

/// <summary>How long one stage took.</summary>
public sealed record StageTiming(string Stage, TimeSpan Elapsed);

/// <summary>Runs named stages in order: numbers them, times them and turns each stage's messages into <see cref="PipelineProgress"/> events.</summary>
internal sealed class StageRunner(IProgress<PipelineProgress>? progress)
{
    readonly Stopwatch total = Stopwatch.StartNew();
    readonly List<StageTiming> timings = [];
    int stageNumber;

    public IReadOnlyList<StageTiming> Timings => timings;

    public TimeSpan Elapsed => total.Elapsed;

    public T Run<T>(string name, Func<IProgress<string>, T> body)
    {
        var (log, stopwatch) = Start(name);
        T result = body(log);
        End(name, stopwatch);
        return result;
    }

    public async Task<T> RunAsync<T>(string name, Func<IProgress<string>, Task<T>> body)
    {
        var (log, stopwatch) = Start(name);
        T result = await body(log);
        End(name, stopwatch);
        return result;
    }

    (IProgress<string> Log, Stopwatch Stopwatch) Start(string name)
    {
        int number = ++stageNumber;
        var stopwatch = Stopwatch.StartNew();
        progress?.Report(new PipelineProgress(PipelineEventKind.StageStarted, number, name, "", TimeSpan.Zero, total.Elapsed));
        return (new MessageSink(message =>
            progress?.Report(new PipelineProgress(PipelineEventKind.Message, number, name, message, stopwatch.Elapsed, total.Elapsed))), stopwatch);
    }

    void End(string name, Stopwatch stopwatch)
    {
        timings.Add(new StageTiming(name, stopwatch.Elapsed));
        progress?.Report(new PipelineProgress(PipelineEventKind.StageCompleted, stageNumber, name, "", stopwatch.Elapsed, total.Elapsed));
    }

    /// <summary>Reports synchronously, in order (<see cref="Progress{T}"/> would post to the thread pool and reorder lines).</summary>
    sealed class MessageSink(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
