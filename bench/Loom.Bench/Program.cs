namespace Loom.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "generate":
                return GenerateBench.Run(args[1..]);
            default:
                Console.Error.WriteLine("usage: Loom.Bench <benchmark>   (benchmarks: generate)");
                return 2;
        }
    }
}
