namespace Loom.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("usage: Loom.Bench <benchmark>");
        return 2;
    }
}
