namespace Loom.Fuzzing;

/// <summary>
/// SplitMix64: a tiny, fast generator whose whole state is one number, so execution <c>i</c> of a run
/// can be regenerated from (seed, target, i) alone, whatever happened to the executions before it.
/// </summary>
public sealed class FuzzRandom(ulong seed)
{
    ulong state = seed;

    /// <summary>The generator for one execution: a hash of the run seed, the target's name and the execution number.</summary>
    public static FuzzRandom ForExecution(ulong seed, string target, long execution)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in target)
            hash = (hash ^ c) * 1099511628211UL;
        return new FuzzRandom(Mix(seed ^ Mix(hash) ^ Mix((ulong)execution * 0x9E3779B97F4A7C15UL)));
    }

    public ulong NextUInt64()
    {
        state += 0x9E3779B97F4A7C15UL;
        return Mix(state);
    }

    /// <summary>A value in [0, bound); bound must be positive.</summary>
    public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);

    /// <summary>A value in [min, max).</summary>
    public int Next(int min, int max) => min + Next(max - min);

    /// <summary>True with probability 1/n.</summary>
    public bool OneIn(int n) => Next(n) == 0;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
