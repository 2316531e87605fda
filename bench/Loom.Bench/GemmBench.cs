using Loom.IO;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Loom.Tensors;

namespace Loom.Bench;

/// <summary>
/// `gemm`: Loom's Gemm.Multiply against OpenBLAS cblas_sgemm on the shapes of a Llama layer's linear maps
/// (forward, and both backward products), at 1 and 2 threads, with the machine's FMA peak for scale.
/// The two libraries run in short alternating blocks and each row reports the median of the paired
/// ratios, because the shared vCPUs swing by tens of percent within seconds.
/// </summary>
internal static unsafe class GemmBench
{
    const string CoreTypeVariable = "OPENBLAS_CORETYPE";
    // OpenBLAS's idle threads busy-wait for about 2^28 cycles after each call; on two cores they
    // steal the core from whatever sample runs next (Loom's second thread, the FMA peak). 2^4 cycles
    // makes them sleep at once, so the alternating samples do not disturb each other.
    const string ThreadTimeoutVariable = "OPENBLAS_THREAD_TIMEOUT";
    const int DefaultPairs = 9;          // paired samples per row (median taken)
    const double SampleSeconds = 0.03;   // each sample repeats the call for about this long
    const int IdleMilliseconds = 30;     // pause before each sample: OpenBLAS's threads spin a while after a call
    const int PeakIterations = 2_000_000; // one FMA-peak sample: about 10 ms

    /// <summary>(M, K, N) of an HF Linear layer on a batch: x [M, K], weight [N, K], y [M, N].</summary>
    static readonly (int M, int K, int N)[] Shapes = [(4096, 256, 256), (4096, 256, 1024), (4096, 1024, 256), (4096, 256, 4096)];

    record Layout(string Name, string Formula);

    static readonly Layout Forward = new("forward", "y = x·Wᵀ, W stored [N,K]");
    static readonly Layout InputGradient = new("dX", "dX = dY·W, W stored [N,K] = [k,n]");
    static readonly Layout WeightGradient = new("dW", "dW = dYᵀ·X, dY stored [M,N] = [k,m]");

    record Row(string Layout, int ShapeM, int ShapeK, int ShapeN, int M, int K, int N, bool TransposeA, bool TransposeB,
        int Threads, double LoomGflops, double? OpenBlasGflops, double? Ratio, double PeakGflops, double PercentOfPeak,
        double? CpuTimeRatio, double? CpuTimePercentOfPeak);

    static int Pairs = DefaultPairs;

    /// <summary>Options: --pairs N (samples per row, at least 5), --filter TEXT (only rows whose "layout M K N threads" contains it; no json).</summary>
    public static int Run(string[] args)
    {
        string? filter = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--filter" && i + 1 < args.Length) filter = args[++i];
            else if (args[i] == "--blocking" && i + 1 < args.Length && ParseBlocking(args[i + 1]) is { } blocking) { Gemm.Blocking = blocking; i++; }
            else if (args[i] == "--pairs" && i + 1 < args.Length && int.TryParse(args[i + 1], out int pairs) && pairs >= 5) { Pairs = pairs; i++; }
            else
            {
                Console.Error.WriteLine($"gemm: unknown or invalid option '{args[i]}' (options: --pairs N with N >= 5, --filter TEXT, --blocking KC,MC,NC[,SPLIT])");
                return 2;
            }
        }
        if (Environment.GetEnvironmentVariable(CoreTypeVariable) is null || Environment.GetEnvironmentVariable(ThreadTimeoutVariable) is null)
            return Relaunch(args);

        var openBlas = OpenBlas.TryLoad(out string note);
        Console.WriteLine($"OpenBLAS: {note}; {CoreTypeVariable}={Environment.GetEnvironmentVariable(CoreTypeVariable)}; " +
            $"{ThreadTimeoutVariable}={Environment.GetEnvironmentVariable(ThreadTimeoutVariable)}; " +
            $"corename: {openBlas?.CoreName ?? "n/a"}");
        Console.WriteLine($"Loom kernel: {(Gemm.UseVector512 ? "Vector512 14x32" : "Vector256 6x16")}; blocking: {Gemm.Blocking}; processors: {Environment.ProcessorCount}");
        Console.WriteLine($"CPU: {CpuModel()}; {CpuProfile.Current}");

        FmaPeak.Sample(1, PeakIterations);
        var peakCpu = Median(Enumerable.Range(0, 5).Select(_ => FmaPeak.Sample(1, PeakIterations).Cpu).ToArray());
        var peak = new Dictionary<int, double>();
        foreach (int threads in new[] { 1, 2 })
            peak[threads] = Median(Enumerable.Range(0, 5).Select(_ => FmaPeak.Sample(threads, PeakIterations).Wall).ToArray());
        Console.WriteLine($"FMA peak at start: {peak[1]:F1} GFLOPS (1 thread), {peak[2]:F1} GFLOPS (2 threads), {peakCpu:F1} GFLOPS (1 thread, by its CPU time); " +
            "each row re-measures it between its samples and reports % of peak as the median of paired Loom/peak ratios " +
            "(a row's sample below the peak at start counts as the peak at start: a low sample means a core was busy, not a slower FMA)");
        Console.WriteLine();
        Console.WriteLine($"layouts: forward = {Forward.Formula}; {InputGradient.Name}: {InputGradient.Formula}; {WeightGradient.Name}: {WeightGradient.Formula}");
        Console.WriteLine($"median of {Pairs} alternating Loom/OpenBLAS samples; ratio = median of paired Loom/OpenBLAS ratios (wall time); " +
            "cpu-t, %peak after it = the same by this thread's CPU time (1-thread rows; unaffected by other processes holding the core)");
        Console.WriteLine();
        string header = $"{"layout",-8} {"M",5} {"K",5} {"N",5} | {"call m,k,n",-16} {"op",-5} {"thr",3} | {"peak",6} {"Loom GF/s",9} {"%peak",6} | {"OpenBLAS",9} {"ratio",6} | {"cpu-t",6} {"%peak",6}";
        Console.WriteLine(header);
        Console.WriteLine(new string('-', header.Length));

        var rows = new List<Row>();
        foreach (var (shapeM, shapeK, shapeN) in Shapes)
            foreach (var layout in new[] { Forward, InputGradient, WeightGradient })
                foreach (int threads in new[] { 1, 2 })
                {
                    if (filter is not null && !$"{layout.Name} {shapeM} {shapeK} {shapeN} {threads}".Contains(filter)) continue;
                    var row = Measure(layout, shapeM, shapeK, shapeN, threads, openBlas, peak[threads]);
                    rows.Add(row);
                    string op = $"{(row.TransposeA ? "Aᵀ" : "A")}{(row.TransposeB ? "Bᵀ" : "B")}";
                    Console.WriteLine($"{row.Layout,-8} {shapeM,5} {shapeK,5} {shapeN,5} | {$"{row.M},{row.K},{row.N}",-16} {op,-5} {threads,3} | " +
                        $"{row.PeakGflops,6:F0} {row.LoomGflops,9:F1} {row.PercentOfPeak,5:F0}% | {(row.OpenBlasGflops is { } o ? o.ToString("F1") : "n/a"),9} " +
                        $"{(row.Ratio is { } r ? r.ToString("F2") : "n/a"),6} | {(row.CpuTimeRatio is { } t ? t.ToString("F2") : ""),6} {(row.CpuTimePercentOfPeak is { } q ? q.ToString("F0") + "%" : ""),6}");
                }

        if (openBlas is not null && rows.Count > 0)
        {
            var ratios = rows.Select(r => r.Ratio!.Value).ToArray();
            Console.WriteLine();
            Console.WriteLine($"ratio Loom/OpenBLAS: min {ratios.Min():F2}, median {Median(ratios):F2}, max {ratios.Max():F2}; " +
                $"% of peak: min {rows.Min(r => r.PercentOfPeak):F0}%");
            var cpuRatios = rows.Where(r => r.CpuTimeRatio is not null).Select(r => r.CpuTimeRatio!.Value).ToArray();
            if (cpuRatios.Length > 0)
                Console.WriteLine($"1-thread ratio by CPU time: min {cpuRatios.Min():F2}, median {Median(cpuRatios):F2}, max {cpuRatios.Max():F2}; " +
                    $"% of peak by CPU time: min {rows.Where(r => r.CpuTimePercentOfPeak is not null).Min(r => r.CpuTimePercentOfPeak):F0}%");
        }
        if (filter is null)
            Console.WriteLine($"wrote {WriteJson(rows, peak, peakCpu, openBlas, note)}");
        return 0;
    }

    /// <summary>"KC,MC,NC" or "KC,MC,NC,SPLIT" (positive sizes; split defaults to the chosen one), else null.</summary>
    static GemmBlocking? ParseBlocking(string text)
    {
        var parts = text.Split(',');
        if (parts.Length is < 3 or > 4) return null;
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out sizes[i]) || sizes[i] <= 0) return null;
        return new GemmBlocking(sizes[0], sizes[1], sizes[2], parts.Length == 4 ? sizes[3] : Gemm.Blocking.SplitCols);
    }

    /// <summary>The "model name" line of /proc/cpuinfo, or "unknown".</summary>
    internal static string CpuModel()
    {
        const string cpuInfo = "/proc/cpuinfo";
        if (!File.Exists(cpuInfo)) return "unknown";
        var line = File.ReadLines(cpuInfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }

    /// <summary>OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_THREAD_TIMEOUT only at load, from the process environment: run again with them set.</summary>
    static int Relaunch(string[] args)
    {
        Console.WriteLine($"re-running the benchmark as a child process with {CoreTypeVariable}=SkylakeX (Debian's OpenBLAS 0.3.21 would take " +
            $"this CPU for Prescott, SSE3) and {ThreadTimeoutVariable}=4 (its idle threads would spin through the next samples)");
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(process) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
            start.ArgumentList.Add(typeof(GemmBench).Assembly.Location);
        start.ArgumentList.Add("gemm");
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment[CoreTypeVariable] = Environment.GetEnvironmentVariable(CoreTypeVariable) ?? "SkylakeX";
        start.Environment[ThreadTimeoutVariable] = Environment.GetEnvironmentVariable(ThreadTimeoutVariable) ?? "4";
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {process}");
        child.WaitForExit();
        return child.ExitCode;
    }

    static Row Measure(Layout layout, int shapeM, int shapeK, int shapeN, int threads, OpenBlas? openBlas, double peakAtStart)
    {
        // The call's own m, k, n and operand layouts.
        var (m, k, n, transposeA, transposeB) =
            layout == Forward ? (shapeM, shapeK, shapeN, false, true)      // x [M,K] · W[N,K]ᵀ
            : layout == InputGradient ? (shapeM, shapeN, shapeK, false, false) // dY [M,N] · W [N,K]
            : (shapeN, shapeM, shapeK, true, false);                      // dY[M,N]ᵀ · x [M,K]
        float* a = Allocate((long)m * k, 1);
        float* b = Allocate((long)k * n, 2);
        float* c = Allocate((long)m * n, 3);
        try
        {
            double flops = 2.0 * m * k * n;
            using var compute = new ComputeContext(threads);
            openBlas?.SetThreads(threads);
            void RunLoom() => Gemm.Multiply(a, b, m, k, n, c, transposeA, transposeB, false, compute);
            void RunOpenBlas() => openBlas!.Multiply(a, b, m, k, n, c, transposeA, transposeB, false);

            // Warm up both and size a sample to about SampleSeconds.
            RunLoom();
            if (openBlas is not null) RunOpenBlas();
            var clock = Stopwatch.StartNew();
            RunLoom();
            int repeats = Math.Max(1, (int)(SampleSeconds / Math.Max(1e-6, clock.Elapsed.TotalSeconds)));

            var loom = new double[Pairs];
            var peer = new double[Pairs];
            var loomCpu = new double[Pairs];
            var peerCpu = new double[Pairs];
            var peak = new double[Pairs];
            var peakCpu = new double[Pairs];
            var ratio = new double[Pairs];
            var ofPeak = new double[Pairs];
            for (int s = 0; s < Pairs; s++)
            {
                // Rotate the order, so no one always runs just after another's threads went idle.
                for (int turn = 0; turn < 3; turn++)
                {
                    Thread.Sleep(IdleMilliseconds); // let the previous runner's spinning threads go idle
                    switch ((s + turn) % 3)
                    {
                        case 0: (loom[s], loomCpu[s]) = Sample(RunLoom, repeats, flops); break;
                        case 1: if (openBlas is not null) (peer[s], peerCpu[s]) = Sample(RunOpenBlas, repeats, flops); break;
                        default: (peak[s], peakCpu[s]) = FmaPeak.Sample(threads, PeakIterations); break;
                    }
                }
                ratio[s] = openBlas is null ? 0 : loom[s] / peer[s];
                // Two-thread peak samples sometimes read one core's worth (~116 of ~229 GFLOPS here) when
                // another thread still held the second core; the peak measured at start bounds them below.
                peak[s] = Math.Max(peak[s], peakAtStart);
                ofPeak[s] = 100 * loom[s] / peak[s];
            }
            // One thread: both libraries run on this thread, so its CPU time is a second, load-proof ratio.
            double? cpuRatio = openBlas is not null && threads == 1 && ThreadClock.IsAvailable
                ? Median(loomCpu.Zip(peerCpu, (l, o) => l / o).ToArray()) : null;
            double? cpuOfPeak = threads == 1 && ThreadClock.IsAvailable ? Median(loomCpu.Zip(peakCpu, (l, p) => 100 * l / p).ToArray()) : null;
            return new Row(layout.Name, shapeM, shapeK, shapeN, m, k, n, transposeA, transposeB, threads, Median(loom),
                openBlas is null ? null : Median(peer), openBlas is null ? null : Median(ratio), Median(peak), Median(ofPeak), cpuRatio, cpuOfPeak);
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
        }
    }

    /// <summary>GFLOPS by wall time, and by this thread's CPU time.</summary>
    static (double Wall, double Cpu) Sample(Action run, int repeats, double flops)
    {
        double cpuStart = ThreadClock.Seconds();
        var clock = Stopwatch.StartNew();
        for (int r = 0; r < repeats; r++) run();
        double wall = clock.Elapsed.TotalSeconds;
        double cpu = ThreadClock.Seconds() - cpuStart;
        return (flops * repeats / wall / 1e9, flops * repeats / cpu / 1e9);
    }

    static float* Allocate(long count, int seed)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
        var random = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = (float)(random.NextDouble() * 2 - 1);
        return p;
    }

    static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        int h = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
    }

    static string WriteJson(List<Row> rows, Dictionary<int, double> peak, double peakCpu, OpenBlas? openBlas, string note)
    {
        // One file per CPU vendor, so a run on one kind of machine keeps the other's table.
        string vendor = CpuProfile.Current.Vendor switch { "GenuineIntel" => "intel", "AuthenticAMD" => "amd", _ => "other" };
        string path = Path.Combine(BenchPaths.ResultsFolder(), $"gemm-{vendor}.json");
        var report = new
        {
            benchmark = "gemm",
            date = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            processors = Environment.ProcessorCount,
            cpu = CpuModel(),
            cpuProfile = CpuProfile.Current,
            loomKernel = Gemm.UseVector512 ? "Vector512 14x32" : "Vector256 6x16",
            blocking = Gemm.Blocking,
            openBlas = note,
            openBlasCoreType = Environment.GetEnvironmentVariable(CoreTypeVariable),
            openBlasCoreName = openBlas?.CoreName,
            fmaPeakGflops = new { threads1 = peak[1], threads2 = peak[2], threads1ByCpuTime = peakCpu },
            pairs = Pairs,
            layouts = new { forward = Forward.Formula, dX = InputGradient.Formula, dW = WeightGradient.Formula },
            rows,
        };
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }
}
