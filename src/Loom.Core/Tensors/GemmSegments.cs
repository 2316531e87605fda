namespace Loom.Tensors;

/// <summary>
/// One operand pair of <see cref="Gemm.MultiplyRows"/>: op(A)[m, K] and op(B)[K, n], stored as
/// <see cref="Gemm.Multiply(float*, float*, int, int, int, float*, bool, bool, bool, ComputeContext)"/> takes them.
/// </summary>
internal readonly unsafe struct GemmSegment(float* a, float* b, int k)
{
    public readonly float* A = a;
    public readonly float* B = b;
    public readonly int K = k;
}

public static unsafe partial class Gemm
{
    [ThreadStatic] static NativeBuffer? SegmentB;       // on each thread: op(B) of every segment, packed
    [ThreadStatic] static NativeBuffer? SegmentScratch; // on each thread: one segment's piece of a block before it joins the block

    /// <summary>
    /// Rows [<paramref name="part"/>·m/parts, (part+1)·m/parts) rounded to whole micro-kernel tiles: the rows of C that
    /// thread <paramref name="part"/> of <paramref name="parts"/> computes in <see cref="MultiplyRows"/>.
    /// </summary>
    internal static (int Start, int End) RowShare(int m, int part, int parts)
    {
        int tile = UseVector512 ? 14 : 6;
        int tiles = (m + tile - 1) / tile;
        int start = (int)((long)part * tiles / parts) * tile, end = (int)((long)(part + 1) * tiles / parts) * tile;
        return (Math.Min(start, m), Math.Min(end, m));
    }

    /// <summary>
    /// Rows [<paramref name="rowStart"/>, <paramref name="rowEnd"/>) of C[m, n] = (accumulate ? C : 0) + Σ_s op(A_s) · op(B_s),
    /// on the calling thread, the reduction running through the segments in order as one product over their joined k
    /// (the k-blocks of the packed operands take steps from consecutive segments). Threads that each take a share of
    /// the rows (<see cref="RowShare"/>) compute one weight gradient over rows of a batch held in separate buffers,
    /// writing one output, with no partial sums to add afterwards.
    /// </summary>
    internal static void MultiplyRows(ReadOnlySpan<GemmSegment> segments, int m, int n, float* c,
        bool transposeA, bool transposeB, bool accumulate, int rowStart, int rowEnd)
    {
        if (rowStart >= rowEnd || n == 0) return;
        long kTotal = 0;
        foreach (var s in segments) kTotal += s.K;
        if (kTotal == 0)
        {
            if (!accumulate) new Span<float>(c + (long)rowStart * n, checked((rowEnd - rowStart) * n)).Clear();
            return;
        }
        bool wide = UseVector512;
        var problem = new Problem
        {
            C = c, M = m, K = (int)kTotal, N = n,
            TransposeA = transposeA, TransposeB = transposeB, Accumulate = accumulate,
            Wide = wide, TileRows = wide ? 14 : 6, TileCols = wide ? 32 : 16,
        };
        int blockRows = problem.BlockRowCount;
        long paddedCols = (long)(n + problem.TileCols - 1) / problem.TileCols * problem.TileCols;
        float* packedB = ThreadBuffer(ref SegmentB, kTotal * paddedCols + PackSlack);
        float* scratch = ThreadBuffer(ref SegmentScratch, Math.Max(blockRows, paddedCols) * BlockK + PackSlack);
        for (int k0 = 0; k0 < kTotal; k0 += BlockK)
            PackJoined(segments, problem, packA: false, 0, n, k0, (int)Math.Min(BlockK, kTotal - k0), packedB + k0 * paddedCols, scratch);
        float* packedA = ThreadBuffer(ref PackedA, (long)blockRows * BlockK + PackSlack);
        for (int i0 = rowStart; i0 < rowEnd; i0 += blockRows)
        {
            int rows = Math.Min(blockRows, rowEnd - i0);
            for (int k0 = 0; k0 < kTotal; k0 += BlockK)
            {
                int kc = (int)Math.Min(BlockK, kTotal - k0);
                PackJoined(segments, problem, packA: true, i0, rows, k0, kc, packedA, scratch);
                MacroKernel(problem, packedA, rows, packedB + k0 * paddedCols, n, kc, c + (long)i0 * n, n, accumulate || k0 > 0);
            }
        }
    }

    /// <summary>
    /// Packs steps [k0, k0 + kc) of the joined reduction for rows [first, first + count) of op(A) (packA) or columns
    /// [first, first + count) of op(B): a piece that one segment covers packs in place; otherwise each segment's piece
    /// packs into scratch and is copied into its place in every panel (a panel is kc lines of one tile).
    /// </summary>
    static void PackJoined(ReadOnlySpan<GemmSegment> segments, in Problem p, bool packA, int first, int count, int k0, int kc, float* packed, float* scratch)
    {
        int tile = packA ? p.TileRows : p.TileCols;
        int panels = (count + tile - 1) / tile;
        long segmentStart = 0;
        int filled = 0;
        foreach (var s in segments)
        {
            long segmentEnd = segmentStart + s.K;
            long low = Math.Max(k0, segmentStart), high = Math.Min(k0 + kc, segmentEnd);
            if (low < high)
            {
                int from = (int)(low - segmentStart), length = (int)(high - low);
                float* target = length == kc ? packed : scratch;
                if (packA) PackA(s.A, p.M, s.K, p.TransposeA, first, count, from, length, tile, target);
                else PackB(s.B, s.K, p.N, p.TransposeB, from, length, first, count, tile, target);
                if (length != kc)
                    for (int q = 0; q < panels; q++)
                        Buffer.MemoryCopy(scratch + (long)q * length * tile, packed + (long)q * kc * tile + (long)filled * tile,
                            (long)length * tile * sizeof(float), (long)length * tile * sizeof(float));
                filled += length;
            }
            segmentStart = segmentEnd;
        }
    }
}
