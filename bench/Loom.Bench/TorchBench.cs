using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Models;

namespace Loom.Bench;

/// <summary>
/// `torch`: one training step (forward, backward, clipping to norm 1, AdamW) of Loom against PyTorch's on the same model,
/// written in plain torch in tests/Loom.Tests/Peers/torch_llama.py (Debian's python3-torch), at 1 and 2 threads, on
/// nanoGPT's shakespeare-char config (batch 12 × 64) and the step bench's shapes (8 × 256, dim 256, 4 layers, vocabulary
/// 4096). Loom and PyTorch steps alternate, so drift in the shared CPUs hits both alike; medians and the ratio PyTorch ms /
/// Loom ms are printed and written to bench/results/torch.json. Without torch it prints a note and exits 0.
/// </summary>
internal static class TorchBench
{
    const int DefaultSamples = 5;
    const int WarmupSteps = 2;
    static readonly int[] ThreadCounts = [1, 2];

    static readonly (string Name, LlamaConfig Config, int Batch, int Tokens)[] Shapes =
    [
        ("shakespeare-char", LlamaConfig.Preset("shakespeare-char"), 12, 64),
        ("step", StepBench.Config, 8, 256),
    ];

    record Row(string Model, int Batch, int Tokens, long Parameters, int Threads, double LoomMs, double TorchMs, double Ratio);

    /// <summary>Options: --samples N (paired steps per row, median reported).</summary>
    public static int Run(string[] args)
    {
        int samples = DefaultSamples;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--samples" && i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n >= 1) { samples = n; i++; }
            else
            {
                Console.Error.WriteLine($"torch: unknown or invalid option '{args[i]}' (options: --samples N)");
                return 2;
            }
        }
        string script = Path.Combine(BenchPaths.RepositoryRoot(), "tests", "Loom.Tests", "Peers", "torch_llama.py");
        if (FindPython() is not string python)
        {
            Console.WriteLine("torch: PyTorch is not installed (apt-get install python3-torch); nothing measured");
            return 0;
        }
        Console.WriteLine($"CPU: {BenchPaths.CpuModel()}, {Environment.ProcessorCount} logical processors; {samples} paired steps per row, Loom and PyTorch alternating, {WarmupSteps} warm-up steps each");
        var rows = new List<Row>();
        string torchVersion = "?", blas = "?";
        string folder = Directory.CreateTempSubdirectory("loom-bench-torch-").FullName;
        try
        {
            foreach (var (name, config, batch, tokens) in Shapes)
            {
                string configPath = Path.Combine(folder, name + ".json");
                config.Save(configPath);
                foreach (int threads in ThreadCounts)
                {
                    using var peer = new TorchProcess(python, script, configPath, batch, tokens, threads);
                    (torchVersion, blas) = (peer.Version, peer.Blas);
                    using var loom = new StepBench.Trainer(config with { MaxSeq = Math.Max(config.MaxSeq, tokens) }, batch, tokens, threads);
                    for (int i = 0; i < WarmupSteps; i++) { loom.Step(); peer.Step(); }
                    var loomSeconds = new List<double>();
                    var torchSeconds = new List<double>();
                    for (int i = 0; i < samples; i++)
                    {
                        loomSeconds.Add(loom.Step());
                        torchSeconds.Add(peer.Step());
                    }
                    var row = new Row(name, batch, tokens, config.ParameterCount, threads, Median(loomSeconds) * 1e3, Median(torchSeconds) * 1e3, Median(torchSeconds) / Median(loomSeconds));
                    rows.Add(row);
                    Console.WriteLine($"{name} ({config.ParameterCount:N0} parameters), {batch}x{tokens} tokens, {threads} thread{(threads == 1 ? "" : "s")}: " +
                        $"Loom {row.LoomMs:F1} ms/step, PyTorch {row.TorchMs:F1} ms/step, PyTorch / Loom {row.Ratio:F2}x");
                }
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        Console.WriteLine($"PyTorch {torchVersion}, BLAS {blas}");
        var json = new JsonObject
        {
            ["cpu"] = BenchPaths.CpuModel(),
            ["logicalProcessors"] = Environment.ProcessorCount,
            ["torch"] = torchVersion,
            ["blas"] = blas,
            ["samples"] = samples,
            ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd"),
            ["rows"] = JsonSerializer.SerializeToNode(rows),
        };
        string path = Path.Combine(BenchPaths.ResultsFolder(), "torch.json");
        AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
        return 0;
    }

    /// <summary>
    /// torch_llama.py's bench mode in a child process that keeps the model between steps. Its OpenBLAS (Debian's libblas
    /// alternative when libopenblas0-pthread is installed) gets the thread count and core type at load, as bench gemm gives it.
    /// </summary>
    sealed class TorchProcess : IDisposable
    {
        readonly Process process;
        readonly int threads;

        public TorchProcess(string python, string script, string configPath, int batch, int tokens, int threads)
        {
            this.threads = threads;
            var start = new ProcessStartInfo(python) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string arg in new[] { script, "bench", configPath, batch.ToString(), tokens.ToString() }) start.ArgumentList.Add(arg);
            start.Environment["OMP_NUM_THREADS"] = threads.ToString();
            start.Environment["OPENBLAS_NUM_THREADS"] = threads.ToString();
            start.Environment["OPENBLAS_CORETYPE"] = Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") ?? "SkylakeX";
            start.Environment["OPENBLAS_THREAD_TIMEOUT"] = "4";
            process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {python}");
            var ready = (process.StandardOutput.ReadLine() ?? "").Split(' ');
            if (ready.Length < 3 || ready[0] != "ready") throw new InvalidOperationException($"torch_llama.py bench did not start (said '{string.Join(' ', ready)}')");
            (Version, Blas) = (ready[1], ready[2]);
        }

        public string Version { get; }

        public string Blas { get; }

        /// <summary>One step; returns its wall seconds as the child measured them.</summary>
        public double Step()
        {
            process.StandardInput.WriteLine($"step {threads}");
            process.StandardInput.Flush();
            string line = process.StandardOutput.ReadLine() ?? throw new InvalidOperationException("torch_llama.py bench ended early");
            return double.Parse(line, System.Globalization.CultureInfo.InvariantCulture) / 1e3;
        }

        public void Dispose()
        {
            try
            {
                process.StandardInput.WriteLine("quit");
                process.StandardInput.Flush();
                if (!process.WaitForExit(10_000)) process.Kill(entireProcessTree: true);
            }
            catch (IOException) { }
            process.Dispose();
        }
    }

    /// <summary>The first of python3 and /usr/bin/python3 that imports torch, or null.</summary>
    static string? FindPython()
    {
        foreach (string candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo(candidate) { ArgumentList = { "-c", "import torch" }, RedirectStandardError = true, UseShellExecute = false });
                if (process is null) continue;
                process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception) { }
        }
        return null;
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
