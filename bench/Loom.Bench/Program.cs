namespace Loom.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "retrieval-eval":
                return RetrievalEvalBenchmark.RunAsync(args[1..]).GetAwaiter().GetResult();
            case "retrieval-latency":
                return RetrievalLatencyBenchmark.RunAsync(args[1..]).GetAwaiter().GetResult();
        }
        Console.Error.WriteLine("usage: Loom.Bench <benchmark>");
        return 2;
    }
}
