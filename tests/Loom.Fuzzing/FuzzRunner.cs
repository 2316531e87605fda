using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Loom.Fuzzing;

/// <summary>How long a run lasts and where its findings go; null means the default.</summary>
public sealed record FuzzOptions
{
    /// <summary>Executions per target (the seeds, unmutated, come first).</summary>
    public long Executions { get; init; } = 1000;

    /// <summary>Run seed: the same seed gives the same inputs in the same order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>An execution longer than this (measured twice, so a stalled machine is not blamed on the parser) is a hang.</summary>
    public TimeSpan HangLimit { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>An execution still running after this is abandoned on its thread and the run goes on with a new worker.</summary>
    public TimeSpan StuckLimit { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest mutated input.</summary>
    public int MaxInputBytes { get; init; } = 256 << 10;

    /// <summary>Where crashing and hanging inputs are saved (CRASH/target/kind-hash.bin), or null to keep them in memory only.</summary>
    public string? CrashFolder { get; init; }
}

/// <summary>A crash or a hang: the execution that found it, why, and the input.</summary>
public sealed record FuzzFinding(string Target, long Execution, string Kind, string Reason, string Signature, byte[] Input, string? SavedPath)
{
    /// <summary>The input as printable text: ASCII kept, other bytes as \xNN, cut at <paramref name="maxBytes"/>.</summary>
    public string Preview(int maxBytes = 240)
    {
        var text = new StringBuilder();
        foreach (byte b in Input.AsSpan(0, Math.Min(Input.Length, maxBytes)))
            text.Append(b is >= 0x20 and < 0x7f and not (byte)'\\' ? ((char)b).ToString() : $"\\x{b:x2}");
        if (Input.Length > maxBytes) text.Append($"... ({Input.Length} bytes)");
        return text.ToString();
    }
}

/// <summary>What one target's run did.</summary>
public sealed record FuzzReport(string Target, long Executions, long Accepted, long Rejected, long SeedsAccepted, int SeedCount, TimeSpan Elapsed, IReadOnlyList<FuzzFinding> Findings)
{
    public double ExecutionsPerSecond => Executions / Math.Max(Elapsed.TotalSeconds, 1e-9);
    public int Crashes => Findings.Count(f => f.Kind == "crash");
    public int Hangs => Findings.Count(f => f.Kind == "hang");

    /// <summary>Distinct bugs: findings with different signatures.</summary>
    public int DistinctFindings => Findings.Select(f => f.Signature).Distinct().Count();
}

/// <summary>
/// Runs a target in process on mutated seeds. Executions run on a worker thread; the calling thread is
/// the watchdog: an execution stuck past <see cref="FuzzOptions.StuckLimit"/> is recorded as a hang,
/// its thread abandoned, and a fresh worker carries on with the next execution. Each execution's
/// input depends only on (seed, target, execution number), so any finding can be replayed alone.
/// </summary>
public static class FuzzRunner
{
    /// <summary>The input of execution <paramref name="execution"/>: seed number i for i below the seed count, else a mutation.</summary>
    public static byte[] Input(FuzzTarget target, IReadOnlyList<byte[]> seeds, FuzzOptions options, long execution) =>
        execution < seeds.Count
            ? seeds[(int)execution]
            : Mutator.Mutate(FuzzRandom.ForExecution(options.Seed, target.Name, execution), seeds, target, options.MaxInputBytes);

    public static FuzzReport Run(FuzzTarget target, IReadOnlyList<byte[]> seeds, FuzzOptions? options = null, Action<FuzzFinding>? found = null)
    {
        options ??= new FuzzOptions();
        if (seeds.Count == 0) throw new ArgumentException($"FuzzRunner.Run: target '{target.Name}' has no seeds");
        var state = new RunState(target, seeds, options, found);
        var clock = Stopwatch.StartNew();
        long next = 0;
        while (next < options.Executions)
        {
            var worker = new Worker(state, next);
            worker.Start();
            while (!worker.Thread.Join(100))
            {
                long started = Volatile.Read(ref worker.StartedAt);
                if (started != 0 && Stopwatch.GetElapsedTime(started) > options.StuckLimit)
                    break;
            }
            if (worker.Thread.IsAlive)
            {
                // Abandoned: the thread is a background thread and is never joined again.
                worker.Abandoned = true;
                long stuck = Volatile.Read(ref worker.Current);
                state.Record(stuck, "hang", $"still running after {options.StuckLimit.TotalSeconds:F0} s", "hang", Input(target, seeds, options, stuck));
                next = stuck + 1;
            }
            else
            {
                next = options.Executions;
            }
        }
        return new FuzzReport(target.Name, options.Executions, state.Accepted, state.Rejected, state.SeedsAccepted, seeds.Count, clock.Elapsed, state.Findings);
    }

    sealed class RunState(FuzzTarget target, IReadOnlyList<byte[]> seeds, FuzzOptions options, Action<FuzzFinding>? found)
    {
        readonly HashSet<string> savedSignatures = [];
        public readonly FuzzTarget Target = target;
        public readonly IReadOnlyList<byte[]> Seeds = seeds;
        public readonly FuzzOptions Options = options;
        public long Accepted, Rejected, SeedsAccepted;
        public readonly List<FuzzFinding> Findings = [];

        /// <summary>Records a finding; the first of each signature is saved and reported, later ones are only counted.</summary>
        public void Record(long execution, string kind, string reason, string signature, byte[] input)
        {
            lock (Findings)
            {
                string? saved = null;
                bool first = savedSignatures.Add(signature);
                if (first && Options.CrashFolder is not null)
                {
                    string hash = Convert.ToHexStringLower(SHA256.HashData(input))[..16];
                    string folder = Directory.CreateDirectory(Path.Combine(Options.CrashFolder, Target.Name)).FullName;
                    saved = Path.Combine(folder, $"{kind}-{hash}.bin");
                    File.WriteAllBytes(saved, input);
                    File.WriteAllText(Path.ChangeExtension(saved, ".txt"), $"{Target.Name} execution {execution} seed {Options.Seed}: {kind}: {reason}\n");
                }
                var finding = new FuzzFinding(Target.Name, execution, kind, reason, signature, input, saved);
                Findings.Add(finding);
                if (first) found?.Invoke(finding);
            }
        }
    }

    sealed class Worker
    {
        readonly RunState state;
        readonly long first;
        public readonly Thread Thread;
        public long Current;
        public long StartedAt;
        public volatile bool Abandoned;

        public Worker(RunState state, long first)
        {
            this.state = state;
            this.first = first;
            Current = first;
            Thread = new Thread(Loop) { IsBackground = true, Name = $"fuzz {state.Target.Name}" };
        }

        public void Start() => Thread.Start();

        void Loop()
        {
            using var scratch = new FuzzScratch();
            var options = state.Options;
            for (long i = first; i < options.Executions && !Abandoned; i++)
            {
                var input = Input(state.Target, state.Seeds, options, i);
                Volatile.Write(ref Current, i);
                Volatile.Write(ref StartedAt, Stopwatch.GetTimestamp());
                var (error, elapsed) = Execute(input, scratch);
                if (elapsed > options.HangLimit)
                {
                    // Measured again: a busy machine can stall one execution, a parser that is slow on this input is slow twice.
                    Volatile.Write(ref StartedAt, Stopwatch.GetTimestamp());
                    (error, var again) = Execute(input, scratch);
                    if (again > options.HangLimit)
                        state.Record(i, "hang", $"took {Math.Min(elapsed.TotalSeconds, again.TotalSeconds):F2} s", "hang", input);
                }
                Volatile.Write(ref StartedAt, 0);
                if (Abandoned) return;
                string? crash = state.Target.Judge(error);
                if (crash is not null) state.Record(i, "crash", crash, FuzzTarget.Signature(error!), input);
                else if (error is null)
                {
                    Interlocked.Increment(ref state.Accepted);
                    if (i < state.Seeds.Count) Interlocked.Increment(ref state.SeedsAccepted);
                }
                else Interlocked.Increment(ref state.Rejected);
            }
        }

        (Exception? Error, TimeSpan Elapsed) Execute(byte[] input, FuzzScratch scratch)
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                state.Target.Run(input, scratch);
                return (null, Stopwatch.GetElapsedTime(start));
            }
            catch (Exception e)
            {
                return (e, Stopwatch.GetElapsedTime(start));
            }
        }
    }
}
