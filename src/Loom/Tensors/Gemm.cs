using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>
/// Single-precision matrix multiply on row-major, contiguous matrices:
/// C[m, n] = (accumulate ? C : 0) + op(A)[m, k] · op(B)[k, n], where op(A) is A stored [m, k]
/// or, with transposeA, A stored [k, m]; op(B) is B stored [k, n] or, with transposeB, [n, k].
/// </summary>
/// <remarks>
/// Goto/BLIS structure: B is packed into panels of <c>tileCols</c> columns, A per block of rows and
/// <see cref="BlockK"/> reduction steps into an L2-sized buffer of <c>tileRows</c>-row panels, and a
/// register-tiled micro-kernel (14x32 on Vector512, 6x16 on Vector256) multiplies one panel pair.
/// Threads split the rows of C (each C element is then summed in the same order whatever the thread
/// count), or, for weight gradients (transposeA, long reduction), the reduction into per-thread partial
/// sums that are added in thread order. Packing buffers are native and cached per thread, so a call
/// allocates no managed memory after the first.
/// </remarks>
public static unsafe partial class Gemm
{
    /// <summary>Whether the Vector512 kernel runs; tests switch it off to cover the Vector256 path.</summary>
    internal static bool UseVector512 { get; set; } = Vector512.IsHardwareAccelerated;

    const int BlockK = 256;        // reduction steps per packed block (kc)
    const int BlockRows = 256;     // rows of A per packed block (mc, rounded down to whole tiles); kc·mc·4 B sits in L2
    const int BlockCols = 1024;    // columns of B per block in the single-thread and split-reduction paths (nc)
    const long SerialWork = 64 * 64 * 64; // below m·k·n this, threads cost more than they save

    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int k, int n, Span<float> c,
        bool transposeA = false, bool transposeB = false, bool accumulate = false)
    {
        if (a.Length < (long)m * k) throw new ArgumentException($"A has {a.Length} elements, needs {m}x{k}", nameof(a));
        if (b.Length < (long)k * n) throw new ArgumentException($"B has {b.Length} elements, needs {k}x{n}", nameof(b));
        if (c.Length < (long)m * n) throw new ArgumentException($"C has {c.Length} elements, needs {m}x{n}", nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(pa, pb, m, k, n, pc, transposeA, transposeB, accumulate);
    }

    internal static void Multiply(float* a, float* b, int m, int k, int n, float* c,
        bool transposeA, bool transposeB, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) new Span<float>(c, checked(m * n)).Clear();
            return;
        }
        bool wide = UseVector512;
        var problem = new Problem
        {
            A = a, B = b, C = c, M = m, K = k, N = n,
            TransposeA = transposeA, TransposeB = transposeB, Accumulate = accumulate,
            Wide = wide, TileRows = wide ? 14 : 6, TileCols = wide ? 32 : 16,
        };
        int threads = (long)m * k * n < SerialWork ? 1 : WorkerPool.ThreadCount;
        var jobs = Jobs ??= new CallJobs();
        int kBlocks = (k + BlockK - 1) / BlockK;
        if (threads == 1)
        {
            jobs.Split.Set(problem, 1, kBlocks, null);
            jobs.Split.Execute(0);
        }
        else if (transposeA && k >= Math.Max(m, n) && kBlocks >= 2 * threads)
        {
            // Weight gradient: each thread reduces its share of k into its own output, added in thread order.
            float* partials = jobs.Partials.Ensure((long)(threads - 1) * m * n);
            jobs.Split.Set(problem, threads, kBlocks, partials);
            WorkerPool.Run(threads, jobs.Split);
            jobs.Reduce.Set(c, partials, m, n, threads - 1);
            WorkerPool.Run((m + ReduceJob.RowsPerTask - 1) / ReduceJob.RowsPerTask, jobs.Reduce);
        }
        else
        {
            // B packed once and shared; threads take blocks of rows (and of columns when rows are few).
            int colPanels = (n + problem.TileCols - 1) / problem.TileCols;
            float* packedB = jobs.PackedB.Ensure((long)k * colPanels * problem.TileCols + PackSlack);
            jobs.PackB.Set(problem, packedB);
            WorkerPool.Run(colPanels, jobs.PackB);
            jobs.Rows.Set(problem, packedB, threads);
            WorkerPool.Run(jobs.Rows.TaskCount, jobs.Rows);
        }
    }

    [ThreadStatic] static CallJobs? Jobs;       // on the calling thread: job objects and shared buffers
    [ThreadStatic] static NativeBuffer? PackedA; // on each thread: its block of A
    [ThreadStatic] static NativeBuffer? BlockB;  // on each thread: its block of B (single-thread and split-reduction paths)

    struct Problem
    {
        public float* A, B, C;
        public int M, K, N;
        public bool TransposeA, TransposeB, Accumulate, Wide;
        public int TileRows, TileCols;

        /// <summary>Rows per packed block of A: whole tiles, at most BlockRows.</summary>
        public readonly int BlockRowCount => Math.Max(1, BlockRows / TileRows) * TileRows;
    }

    sealed class CallJobs
    {
        public readonly SplitJob Split = new();
        public readonly ReduceJob Reduce = new();
        public readonly PackBJob PackB = new();
        public readonly RowsJob Rows = new();
        public readonly NativeBuffer Partials = new();
        public readonly NativeBuffer PackedB = new();
    }

    /// <summary>A grow-only, 64-byte aligned native float buffer, kept for the life of its thread.</summary>
    sealed class NativeBuffer
    {
        float* pointer;
        long capacity;

        public float* Ensure(long count)
        {
            if (count <= capacity) return pointer;
            if (pointer != null) NativeMemory.AlignedFree(pointer);
            pointer = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
            capacity = count;
            return pointer;
        }
    }

    static float* ThreadBuffer(ref NativeBuffer? buffer, long count) => (buffer ??= new NativeBuffer()).Ensure(count);

    /// <summary>
    /// One thread's share of the reduction, blocked BLIS-style (nc columns, kc steps, mc rows), into C for
    /// part 0 and into partial buffer part−1 for the others.
    /// </summary>
    sealed class SplitJob : IParallelWork
    {
        Problem problem;
        int parts, kBlocks;
        float* partials;

        public void Set(in Problem problem, int parts, int kBlocks, float* partials)
        {
            this.problem = problem;
            this.parts = parts;
            this.kBlocks = kBlocks;
            this.partials = partials;
        }

        public void Execute(int index)
        {
            ref readonly var p = ref problem;
            int kStart = (int)((long)index * kBlocks / parts) * BlockK;
            int kEnd = Math.Min(p.K, (int)((long)(index + 1) * kBlocks / parts) * BlockK);
            float* output = index == 0 ? p.C : partials + (long)(index - 1) * p.M * p.N; // [m, n]
            bool accumulate = index == 0 && p.Accumulate;
            int blockRows = p.BlockRowCount;
            float* packedA = ThreadBuffer(ref PackedA, (long)blockRows * BlockK + PackSlack);
            float* blockB = ThreadBuffer(ref BlockB, (long)BlockK * BlockCols + PackSlack);
            for (int j0 = 0; j0 < p.N; j0 += BlockCols)
            {
                int cols = Math.Min(BlockCols, p.N - j0);
                for (int k0 = kStart; k0 < kEnd; k0 += BlockK)
                {
                    int kc = Math.Min(BlockK, kEnd - k0);
                    PackB(p.B, p.K, p.N, p.TransposeB, k0, kc, j0, cols, p.TileCols, blockB);
                    bool load = accumulate || k0 > kStart;
                    for (int i0 = 0; i0 < p.M; i0 += blockRows)
                    {
                        int rows = Math.Min(blockRows, p.M - i0);
                        PackA(p.A, p.M, p.K, p.TransposeA, i0, rows, k0, kc, p.TileRows, packedA);
                        MacroKernel(p, packedA, rows, blockB, cols, kc, output + (long)i0 * p.N + j0, p.N, load);
                    }
                }
            }
        }
    }

    /// <summary>C += partial[0] + partial[1] + … over a band of rows, in that order.</summary>
    sealed class ReduceJob : IParallelWork
    {
        public const int RowsPerTask = 32;
        float* c, partials;
        int m, n, count;

        public void Set(float* c, float* partials, int m, int n, int count)
        {
            this.c = c; this.partials = partials;
            this.m = m; this.n = n; this.count = count;
        }

        public void Execute(int index)
        {
            long start = (long)index * RowsPerTask * n;
            long end = (long)Math.Min(m, (index + 1) * RowsPerTask) * n;
            var target = new Span<float>(c + start, (int)(end - start));
            for (int t = 0; t < count; t++)
                System.Numerics.Tensors.TensorPrimitives.Add(target, new ReadOnlySpan<float>(partials + t * (long)m * n + start, target.Length), target);
        }
    }

    /// <summary>Packs one column panel of B over the whole reduction: panel q of block k0 at k0·nPadded + q·tileCols·kc.</summary>
    sealed class PackBJob : IParallelWork
    {
        Problem problem;
        float* packedB;

        public void Set(in Problem problem, float* packedB)
        {
            this.problem = problem;
            this.packedB = packedB;
        }

        public void Execute(int index)
        {
            ref readonly var p = ref problem;
            int j0 = index * p.TileCols;
            int cols = Math.Min(p.TileCols, p.N - j0);
            long paddedCols = (long)((p.N + p.TileCols - 1) / p.TileCols) * p.TileCols;
            for (int k0 = 0; k0 < p.K; k0 += BlockK)
            {
                int kc = Math.Min(BlockK, p.K - k0);
                PackB(p.B, p.K, p.N, p.TransposeB, k0, kc, j0, cols, p.TileCols, packedB + k0 * paddedCols + (long)j0 * kc);
            }
        }
    }

    /// <summary>A block of rows (and a range of column panels) of C against the shared packed B.</summary>
    sealed class RowsJob : IParallelWork
    {
        Problem problem;
        float* packedB;
        int rowPanels, rowTasks, colPanels, colTasks;

        public int TaskCount => rowTasks * colTasks;

        public void Set(in Problem problem, float* packedB, int threads)
        {
            this.problem = problem;
            this.packedB = packedB;
            rowPanels = (problem.M + problem.TileRows - 1) / problem.TileRows;
            int panelsPerBlock = problem.BlockRowCount / problem.TileRows;
            rowTasks = (rowPanels + panelsPerBlock - 1) / panelsPerBlock;
            colPanels = (problem.N + problem.TileCols - 1) / problem.TileCols;
            // Few row blocks (a short A): split the columns as well, so every thread has work to claim.
            colTasks = Math.Min(colPanels, Math.Max(1, (4 * threads + rowTasks - 1) / rowTasks));
        }

        public void Execute(int index)
        {
            ref readonly var p = ref problem;
            int rowTask = index / colTasks, colTask = index % colTasks;
            int i0 = (int)((long)rowTask * rowPanels / rowTasks) * p.TileRows;
            int i1 = Math.Min(p.M, (int)((long)(rowTask + 1) * rowPanels / rowTasks) * p.TileRows);
            int j0 = (int)((long)colTask * colPanels / colTasks) * p.TileCols;
            int j1 = Math.Min(p.N, (int)((long)(colTask + 1) * colPanels / colTasks) * p.TileCols);
            int rows = i1 - i0, cols = j1 - j0;
            if (rows <= 0 || cols <= 0) return;
            float* packedA = ThreadBuffer(ref PackedA, (long)p.BlockRowCount * BlockK + PackSlack);
            long paddedCols = (long)colPanels * p.TileCols;
            for (int k0 = 0; k0 < p.K; k0 += BlockK)
            {
                int kc = Math.Min(BlockK, p.K - k0);
                PackA(p.A, p.M, p.K, p.TransposeA, i0, rows, k0, kc, p.TileRows, packedA);
                MacroKernel(p, packedA, rows, packedB + k0 * paddedCols + (long)j0 * kc, cols, kc,
                    p.C + (long)i0 * p.N + j0, p.N, p.Accumulate || k0 > 0);
            }
        }
    }

    /// <summary>
    /// All tiles of a packed A block (rows) against packed B panels (cols), into c (row stride ldc). Each B panel
    /// stays in L1 while the A panels stream past it from L2. Edge tiles go through a scratch tile.
    /// </summary>
    [SkipLocalsInit]
    static void MacroKernel(in Problem p, float* packedA, int rows, float* packedB, int cols, int kc, float* c, int ldc, bool load)
    {
        int tileRows = p.TileRows, tileCols = p.TileCols;
        bool wide = p.Wide;
        float* edge = stackalloc float[14 * 32];
        for (int j = 0; j < cols; j += tileCols)
        {
            float* panelB = packedB + (long)j * kc;
            int tileWidth = Math.Min(tileCols, cols - j);
            for (int i = 0; i < rows; i += tileRows)
            {
                float* panelA = packedA + (long)i * kc;
                int tileHeight = Math.Min(tileRows, rows - i);
                float* tile = c + (long)i * ldc + j;
                if (tileHeight == tileRows && tileWidth == tileCols)
                {
                    if (wide) Kernel512(panelA, panelB, kc, tile, ldc, load);
                    else Kernel256(panelA, panelB, kc, tile, ldc, load);
                    continue;
                }
                if (wide) Kernel512(panelA, panelB, kc, edge, tileCols, false);
                else Kernel256(panelA, panelB, kc, edge, tileCols, false);
                for (int r = 0; r < tileHeight; r++)
                {
                    float* source = edge + r * tileCols;
                    float* target = tile + (long)r * ldc;
                    if (load)
                        for (int s = 0; s < tileWidth; s++) target[s] += source[s];
                    else
                        for (int s = 0; s < tileWidth; s++) target[s] = source[s];
                }
            }
        }
    }
}
