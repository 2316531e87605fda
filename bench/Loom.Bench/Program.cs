namespace Loom.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "gemm": return GemmBench.Run(args[1..]);
            case "step": return StepBench.Run(args[1..]);
            case "tuning": return TuningBench.Run(args[1..]);
            case "generate": return GenerateBench.Run(args[1..]);
            case "serve": return ServeBench.Run(args[1..]);
            case "retrieval-eval": return RetrievalEvalBenchmark.RunAsync(args[1..]).GetAwaiter().GetResult();
            case "retrieval-latency": return RetrievalLatencyBenchmark.RunAsync(args[1..]).GetAwaiter().GetResult();
            case "logs": return LogsBench.Run(args[1..]);
            case "structured": return StructuredBench.Run(args[1..]);
            case "eval-cache": return EvalCacheBench.RunAsync(args[1..]).GetAwaiter().GetResult();
            case "fuzz": return FuzzBench.Run(args[1..]);
            case "soak": return SoakBench.Run(args[1..]);
            case "loop": return LoopBench.Run(args[1..]);
            case "torch": return TorchBench.Run(args[1..]);
            case "cli-start": return CliStartBench.Run(args[1..]);
            default:
                Console.Error.WriteLine("usage: Loom.Bench <benchmark>   benchmarks: gemm, step, tuning, generate, serve, retrieval-eval, retrieval-latency, logs, structured, eval-cache, fuzz, soak, loop, torch, cli-start");
                return 2;
        }
    }
}
