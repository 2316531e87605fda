using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loom.Fuzzing;
using Loom.IO;

namespace Loom.Bench;

/// <summary>
/// The long fuzzing run: every target of <see cref="FuzzTargets"/> (or one) on mutations of its seeds in
/// tests/fuzz-corpus, the total executions shared by <see cref="FuzzTarget.Weight"/> (fast parsers get more). Prints executions, exec/s,
/// crashes and hangs per target, saves each new crash or hang input under the crash folder, and writes
/// the summary to bench/results/fuzz-DATE.txt.
/// Usage: fuzz [--executions N] [--target NAME] [--seed N] [--crashes DIR] [--write-seeds] [--target NAME --replay FILE]
/// </summary>
public static class FuzzBench
{
    public static int Run(string[] args)
    {
        long executions = 1_000_000;
        ulong seed = 1;
        string? only = null;
        string crashes = Path.Combine(BenchPaths.ResultsFolder(), "fuzz-crashes");
        bool writeSeeds = false;
        string? replay = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--executions": executions = long.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--seed": seed = ulong.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--target": only = Value(); break;
                case "--crashes": crashes = Value(); break;
                case "--write-seeds": writeSeeds = true; break;
                case "--replay": replay = Value(); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        string corpus = Path.Combine(BenchPaths.RepositoryRoot(), "tests", "fuzz-corpus");
        if (writeSeeds)
        {
            foreach (string file in SeedCorpus.WriteGenerated(corpus))
                Console.WriteLine($"wrote {Path.GetRelativePath(BenchPaths.RepositoryRoot(), file)} ({new FileInfo(file).Length} bytes)");
            return 0;
        }

        if (replay is not null)
            return Replay(FuzzTargets.Find(only ?? throw new ArgumentException("--replay needs --target")), File.ReadAllBytes(replay));

        var targets = only is null ? FuzzTargets.All : [FuzzTargets.Find(only)];
        int weights = targets.Sum(t => t.Weight);
        var options = new FuzzOptions { Seed = seed, CrashFolder = crashes };
        Console.WriteLine($"fuzz: {targets.Count} targets, {executions:N0} executions shared by weight, seed {seed}, hang limit {options.HangLimit.TotalSeconds:F0} s, {Environment.ProcessorCount} cores");
        var reports = new List<FuzzReport>();
        var clock = Stopwatch.StartNew();
        foreach (var target in targets)
        {
            var report = FuzzRunner.Run(target, FuzzTargets.Seeds(corpus, target), options with { Executions = Math.Max(1, (executions * target.Weight + weights - 1) / weights) },
                finding => Console.WriteLine($"  {finding.Kind.ToUpperInvariant()} {finding.Target} #{finding.Execution}: {finding.Reason}\n    input: {finding.Preview()}" + (finding.SavedPath is null ? "" : $"\n    saved: {finding.SavedPath}")));
            reports.Add(report);
            Console.WriteLine(Row(report));
        }

        var summary = new StringBuilder();
        summary.AppendLine($"Loom fuzz run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: seed {seed}, {executions:N0} executions shared by target weight, hang limit {options.HangLimit.TotalSeconds:F0} s, {Environment.ProcessorCount} cores, {clock.Elapsed.TotalMinutes:F1} min");
        summary.AppendLine(Header());
        foreach (var report in reports) summary.AppendLine(Row(report));
        long total = reports.Sum(r => r.Executions);
        int crashCount = reports.Sum(r => r.Crashes), hangCount = reports.Sum(r => r.Hangs);
        summary.AppendLine($"{"total",-20} {total,11:N0} {reports.Sum(r => r.Accepted),10:N0} {reports.Sum(r => r.Rejected),10:N0} {total / clock.Elapsed.TotalSeconds,9:N0} {crashCount,7} {hangCount,6}");
        foreach (var finding in reports.SelectMany(r => r.Findings).DistinctBy(f => (f.Target, f.Signature)))
            summary.AppendLine($"{finding.Kind} {finding.Target} #{finding.Execution}: {finding.Signature}: {finding.Reason}");
        Console.WriteLine();
        Console.Write(summary);
        if (only is null)
            AtomicFile.WriteAllText(Path.Combine(BenchPaths.ResultsFolder(), $"fuzz-{DateTime.UtcNow:yyyy-MM-dd}.txt"), summary.ToString());
        return crashCount + hangCount == 0 ? 0 : 1;
    }

    /// <summary>Runs one saved input once and prints the outcome: accepted, the refusal message, or the crash with its stack trace.</summary>
    static int Replay(FuzzTarget target, byte[] input)
    {
        using var scratch = new FuzzScratch();
        var clock = Stopwatch.StartNew();
        try
        {
            target.Run(input, scratch);
            Console.WriteLine($"{target.Name}: accepted in {clock.Elapsed.TotalMilliseconds:F1} ms");
            return 0;
        }
        catch (Exception e)
        {
            string? crash = target.Judge(e);
            Console.WriteLine($"{target.Name}: {(crash is null ? "refused" : "CRASH")} in {clock.Elapsed.TotalMilliseconds:F1} ms: {(crash is null ? e.Message : e.ToString())}");
            return crash is null ? 0 : 1;
        }
    }

    static string Header() => $"{"target",-20} {"executions",11} {"accepted",10} {"rejected",10} {"exec/s",9} {"crashes",7} {"hangs",6}";

    static string Row(FuzzReport r) =>
        $"{r.Target,-20} {r.Executions,11:N0} {r.Accepted,10:N0} {r.Rejected,10:N0} {r.ExecutionsPerSecond,9:N0} {r.Crashes,7} {r.Hangs,6}";
}
