namespace Loom.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "tuning":
                return TuningBench.Run(args[1..]);
            default:
                Console.Error.WriteLine("usage: Loom.Bench <benchmark>   (benchmarks: tuning [threads])");
                return 2;
        }
    }
}
