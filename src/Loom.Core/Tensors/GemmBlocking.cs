namespace Loom.Tensors;

/// <summary>
/// Cache blocking of <see cref="Gemm"/>: how many reduction steps, rows of A and columns of B one packed block
/// holds. The micro-kernel keeps one A panel (tileRows × BlockK) in L1 while the B panels of a
/// BlockCols × BlockK slice stream past it from L2, next to the BlockRows × BlockK block of A.
/// The reduction is summed block by block of <see cref="BlockK"/>, so results depend on it (not on threads).
/// </summary>
/// <param name="BlockK">Reduction steps per packed block (kc).</param>
/// <param name="BlockRows">Rows of A per packed block (mc; rounded down to whole tiles).</param>
/// <param name="BlockCols">Columns of packed B swept per pass over the A block (nc of the L2 slice).</param>
/// <param name="SplitCols">Columns of B per packed block in the short-A path (B packed block by block).</param>
public sealed record GemmBlocking(int BlockK, int BlockRows, int BlockCols, int SplitCols)
{
    /// <summary>Measured on Intel (AVX-512, 14×32 tile; bench/results/gemm-intel.json): kept for Intel and unknown CPUs.</summary>
    public static GemmBlocking Intel { get; } = new(256, 256, 512, 1024);

    /// <summary>
    /// Intel (and anything not recognised) keeps <see cref="Intel"/>. AMD Zen sizes the blocks from its caches: the
    /// A panel in half of L1 data, the A block in a quarter of L2 and the B slice in half of it. On Zen 5 (48 KiB,
    /// 1 MiB) that is kc 384, mc 168, nc 320: against the Intel sizes, paired by thread CPU time on the bench gemm
    /// shapes, +2 to +4% on the slowest rows (forward 4096×1024×256, dX 4096×256×1024), −4% to +5% elsewhere.
    /// </summary>
    public static GemmBlocking For(CpuProfile cpu, int tileRows, int tileCols)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tileRows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tileCols);
        if (!cpu.IsAmdZen) return Intel;
        int blockK = Math.Clamp(cpu.L1DataBytes / 2 / (tileRows * sizeof(float)) / 64 * 64, 128, 512);
        int blockRows = Math.Max(tileRows, Math.Clamp(cpu.L2Bytes / 4 / (blockK * sizeof(float)), 64, 512) / tileRows * tileRows);
        int blockCols = Math.Max(tileCols, Math.Clamp(cpu.L2Bytes / 2 / (blockK * sizeof(float)), 128, 1024) / tileCols * tileCols);
        int splitCols = Math.Max(blockCols, 1024 / tileCols * tileCols);
        return new GemmBlocking(blockK, blockRows, blockCols, splitCols);
    }

    /// <summary>Throws unless every size is positive: "GemmBlocking.BlockK must be positive".</summary>
    public GemmBlocking Validate()
    {
        if (BlockK <= 0) throw new ArgumentException("GemmBlocking.BlockK must be positive");
        if (BlockRows <= 0) throw new ArgumentException("GemmBlocking.BlockRows must be positive");
        if (BlockCols <= 0) throw new ArgumentException("GemmBlocking.BlockCols must be positive");
        if (SplitCols <= 0) throw new ArgumentException("GemmBlocking.SplitCols must be positive");
        return this;
    }

    /// <summary>"kc 256, mc 256, nc 512, split 1024".</summary>
    public override string ToString() => $"kc {BlockK}, mc {BlockRows}, nc {BlockCols}, split {SplitCols}";
}
