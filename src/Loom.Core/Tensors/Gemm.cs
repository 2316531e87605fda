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
/// Goto/BLIS structure: B is fully packed (shared by the threads) into panels of <c>tileCols</c> columns
/// (for a short A, whose product would not repay that, block by block per thread instead);
/// A is packed per block of rows and <see cref="BlockK"/> reduction steps into an L2-sized buffer of
/// <c>tileRows</c>-row panels (block sizes per processor: <see cref="GemmBlocking"/>); a register-tiled micro-kernel (14x32 on Vector512, 6x16 on Vector256)
/// multiplies one panel pair, with the A panel in L1 and a 512-column slice of B in L2. Threads claim
/// blocks of rows of C (each C element is then summed in the same order whatever the thread count), or,
/// for weight gradients (transposeA, long reduction), also parts of the reduction that go to partial
/// buffers and are added in part order. Packing buffers are native and cached (B and partials per calling
/// thread, A per worker), so a call allocates no managed memory after the first.
/// </remarks>
public static unsafe partial class Gemm
{
    /// <summary>Whether the Vector512 kernel runs; tests switch it off to cover the Vector256 path.</summary>
    internal static bool UseVector512 { get; set; } = Vector512.IsHardwareAccelerated;

    /// <summary>Cache blocking, chosen for this processor (<see cref="GemmBlocking.For"/>); tests and the bench set others.</summary>
    internal static GemmBlocking Blocking { get => blocking; set => blocking = value.Validate(); }
    static GemmBlocking blocking = GemmBlocking.For(CpuProfile.Current, Vector512.IsHardwareAccelerated ? 14 : 6, Vector512.IsHardwareAccelerated ? 32 : 16);

    static int BlockK => Blocking.BlockK;       // reduction steps per packed block (kc)
    static int BlockRows => Blocking.BlockRows; // rows of A per packed block (mc, rounded down to whole tiles), in L2
    static int BlockCols => Blocking.BlockCols; // columns of packed B swept per pass over the A block, in L2
    static int SplitCols => Blocking.SplitCols; // columns of B per packed block in the short-A path
    const long SerialWork = 64 * 64 * 64; // below m·k·n this, threads cost more than they save

    /// <summary>The product on <paramref name="compute"/>'s threads (null: <see cref="ComputeContext.Default"/>).</summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int k, int n, Span<float> c,
        bool transposeA = false, bool transposeB = false, bool accumulate = false, ComputeContext? compute = null)
    {
        if (a.Length < (long)m * k) throw new ArgumentException($"A has {a.Length} elements, needs {m}x{k}", nameof(a));
        if (b.Length < (long)k * n) throw new ArgumentException($"B has {b.Length} elements, needs {k}x{n}", nameof(b));
        if (c.Length < (long)m * n) throw new ArgumentException($"C has {c.Length} elements, needs {m}x{n}", nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(pa, pb, m, k, n, pc, transposeA, transposeB, accumulate, compute ?? ComputeContext.Default);
    }

    internal static void Multiply(float* a, float* b, int m, int k, int n, float* c,
        bool transposeA, bool transposeB, bool accumulate, ComputeContext compute)
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
        int threads = (long)m * k * n < SerialWork ? 1 : compute.ThreadCount;
        var jobs = Jobs ??= new CallJobs();
        int kBlocks = (k + BlockK - 1) / BlockK;
        // Weight gradient (transposeA, long reduction, small C): threads also split the reduction, each part into
        // its own output (part 0 into C, the others into partial buffers), added afterwards in part order.
        bool splitReduction = threads > 1 && transposeA && k >= Math.Max(m, n) && kBlocks >= 2 * threads;
        bool shortA = m <= 2 * problem.BlockRowCount;
        // A short A gives one task per part: two parts per thread, so a thread that the OS holds back costs less.
        int parts = !splitReduction ? 1 : shortA ? Math.Min(2 * threads, kBlocks / 2) : threads;
        float* partials = parts > 1 ? jobs.Partials.Ensure((long)(parts - 1) * m * n) : null;
        if (shortA && (threads == 1 || parts > 1))
        {
            // A short A: packing all of B would cost as much memory traffic as the product; pack B per block.
            jobs.Split.Set(problem, parts, kBlocks, partials);
            compute.Run(parts, jobs.Split);
        }
        else
        {
            // B packed once, shared by all threads; then blocks of rows (and of columns, when rows are few) of C.
            int colPanels = (n + problem.TileCols - 1) / problem.TileCols;
            float* packedB = jobs.PackedB.Ensure((long)k * colPanels * problem.TileCols + PackSlack);
            jobs.PackB.Set(problem, packedB, allPanels: threads == 1);
            compute.Run(threads == 1 ? 1 : colPanels, jobs.PackB);
            jobs.Rows.Set(problem, packedB, threads, parts, kBlocks, partials);
            compute.Run(jobs.Rows.TaskCount, jobs.Rows);
        }
        if (parts > 1)
        {
            jobs.Reduce.Set(c, partials, m, n, parts - 1);
            compute.Run((m + ReduceJob.RowsPerTask - 1) / ReduceJob.RowsPerTask, jobs.Reduce);
        }
    }

    [ThreadStatic] static CallJobs? Jobs;       // on the calling thread: job objects and shared buffers
    [ThreadStatic] static NativeBuffer? PackedA; // on each thread: its block of A
    [ThreadStatic] static NativeBuffer? BlockB;  // on each thread: its block of B (short-A path)

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

    /// <summary>A grow-only, 64-byte aligned native float buffer, kept for the life of its thread (freed after it).</summary>
    sealed class NativeBuffer
    {
        float* pointer;
        long capacity;

        ~NativeBuffer()
        {
            if (pointer != null) NativeMemory.AlignedFree(pointer);
        }

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
    /// For a short A (few blocks of rows): one part of the reduction, blocked BLIS-style (nc columns, kc steps,
    /// mc rows) with B packed block by block into a per-thread buffer, so B is read once; into C for part 0
    /// and into partial buffer part−1 for the others.
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
            float* blockB = ThreadBuffer(ref BlockB, (long)BlockK * SplitCols + PackSlack);
            for (int j0 = 0; j0 < p.N; j0 += SplitCols)
            {
                int cols = Math.Min(SplitCols, p.N - j0);
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
        bool allPanels;

        public void Set(in Problem problem, float* packedB, bool allPanels)
        {
            this.problem = problem;
            this.packedB = packedB;
            this.allPanels = allPanels;
        }

        /// <summary>Index = column panel; with <c>allPanels</c> (one thread), index 0 packs them all.</summary>
        public void Execute(int index)
        {
            ref readonly var p = ref problem;
            int colPanels = (p.N + p.TileCols - 1) / p.TileCols;
            if (allPanels)
            {
                for (int q = 0; q < colPanels; q++) Pack(q);
                return;
            }
            Pack(index);
        }

        void Pack(int panel)
        {
            ref readonly var p = ref problem;
            int j0 = panel * p.TileCols;
            int cols = Math.Min(p.TileCols, p.N - j0);
            long paddedCols = (long)((p.N + p.TileCols - 1) / p.TileCols) * p.TileCols;
            for (int k0 = 0; k0 < p.K; k0 += BlockK)
            {
                int kc = Math.Min(BlockK, p.K - k0);
                PackB(p.B, p.K, p.N, p.TransposeB, k0, kc, j0, cols, p.TileCols, packedB + k0 * paddedCols + (long)j0 * kc);
            }
        }
    }

    /// <summary>
    /// A block of rows, a range of column panels and a part of the reduction of C against the shared packed B.
    /// The block of C stays in L2 while the reduction runs through it, block by block of k.
    /// </summary>
    sealed class RowsJob : IParallelWork
    {
        Problem problem;
        float* packedB, partials;
        int rowPanels, rowTasks, colPanels, colTasks, parts, kBlocks;

        public int TaskCount => parts * rowTasks * colTasks;

        public void Set(in Problem problem, float* packedB, int threads, int parts, int kBlocks, float* partials)
        {
            this.problem = problem;
            this.packedB = packedB;
            this.parts = parts;
            this.kBlocks = kBlocks;
            this.partials = partials;
            rowPanels = (problem.M + problem.TileRows - 1) / problem.TileRows;
            int panelsPerBlock = problem.BlockRowCount / problem.TileRows;
            rowTasks = (rowPanels + panelsPerBlock - 1) / panelsPerBlock;
            colPanels = (problem.N + problem.TileCols - 1) / problem.TileCols;
            // Few row blocks (a short A): split the columns as well, so every thread has work to claim.
            colTasks = threads == 1 ? 1 : Math.Min(colPanels, Math.Max(1, (4 * threads + parts * rowTasks - 1) / (parts * rowTasks)));
        }

        public void Execute(int index)
        {
            ref readonly var p = ref problem;
            int part = index / (rowTasks * colTasks);
            int rowTask = index / colTasks % rowTasks, colTask = index % colTasks;
            int i0 = (int)((long)rowTask * rowPanels / rowTasks) * p.TileRows;
            int i1 = Math.Min(p.M, (int)((long)(rowTask + 1) * rowPanels / rowTasks) * p.TileRows);
            int j0 = (int)((long)colTask * colPanels / colTasks) * p.TileCols;
            int j1 = Math.Min(p.N, (int)((long)(colTask + 1) * colPanels / colTasks) * p.TileCols);
            int kStart = (int)((long)part * kBlocks / parts) * BlockK;
            int kEnd = Math.Min(p.K, (int)((long)(part + 1) * kBlocks / parts) * BlockK);
            int rows = i1 - i0, cols = j1 - j0;
            if (rows <= 0 || cols <= 0) return;
            float* output = part == 0 ? p.C : partials + (long)(part - 1) * p.M * p.N; // [m, n]
            bool accumulate = part == 0 && p.Accumulate;
            float* packedA = ThreadBuffer(ref PackedA, (long)p.BlockRowCount * BlockK + PackSlack);
            long paddedCols = (long)colPanels * p.TileCols;
            for (int k0 = kStart; k0 < kEnd; k0 += BlockK)
            {
                int kc = Math.Min(BlockK, kEnd - k0);
                PackA(p.A, p.M, p.K, p.TransposeA, i0, rows, k0, kc, p.TileRows, packedA);
                MacroKernel(p, packedA, rows, packedB + k0 * paddedCols + (long)j0 * kc, cols, kc,
                    output + (long)i0 * p.N + j0, p.N, accumulate || k0 > kStart);
            }
        }
    }

    /// <summary>
    /// All tiles of a packed A block (rows) against packed B panels (cols), into c (row stride ldc). Each B panel
    /// stays in L1 while the A panels stream past it from L2. Edge tiles go through a scratch tile.
    /// </summary>
    [SkipLocalsInit, MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MacroKernel(in Problem p, float* packedA, int rows, float* packedB, int cols, int kc, float* c, int ldc, bool load)
    {
        int tileRows = p.TileRows, tileCols = p.TileCols;
        float* edge = stackalloc float[14 * 32];
        int sliceCols = Math.Max(1, BlockCols / tileCols) * tileCols; // whole panels: a tile never crosses a slice
        for (int jb = 0; jb < cols; jb += sliceCols)
        {
            int jEnd = Math.Min(cols, jb + sliceCols);
            for (int i = 0; i < rows; i += tileRows)
                for (int j = jb; j < jEnd; j += tileCols)
                    Tile(p, packedA, rows, packedB, cols, kc, c, ldc, load, edge, i, j);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile(in Problem p, float* packedA, int rows, float* packedB, int cols, int kc, float* c, int ldc, bool load, float* edge, int i, int j)
    {
        int tileRows = p.TileRows, tileCols = p.TileCols;
        bool wide = p.Wide;
        float* panelB = packedB + (long)j * kc;
        int tileWidth = Math.Min(tileCols, cols - j);
        float* panelA = packedA + (long)i * kc;
        int tileHeight = Math.Min(tileRows, rows - i);
        float* tile = c + (long)i * ldc + j;
        if (tileHeight == tileRows)
        {
            if (tileWidth == tileCols)
            {
                if (wide) Kernel512(panelA, panelB, kc, tile, ldc, load);
                else Kernel256(panelA, panelB, kc, tile, ldc, load);
                return;
            }
            if (wide) Kernel512(panelA, panelB, kc, edge, tileCols, false);
            else Kernel256(panelA, panelB, kc, edge, tileCols, false);
            Merge(edge, tileCols, tile, ldc, tileRows, tileWidth, load);
            return;
        }
        // A short tile (the last rows of C): pieces of 8, 4, 2 and 1 rows, so no work goes to padding rows.
        for (int row = 0; row < tileHeight;)
        {
            int piece = tileHeight - row >= 8 && wide ? 8 : tileHeight - row >= 4 ? 4 : tileHeight - row >= 2 ? 2 : 1;
            bool direct = tileWidth == tileCols;
            float* target = direct ? tile + (long)row * ldc : edge;
            int targetStride = direct ? ldc : tileCols;
            bool targetLoad = direct && load;
            float* pieceA = panelA + row;
            if (wide)
            {
                if (piece == 8) Kernel512Rows8(pieceA, panelB, kc, target, targetStride, targetLoad);
                else if (piece == 4) Kernel512Rows4(pieceA, panelB, kc, target, targetStride, targetLoad);
                else if (piece == 2) Kernel512Rows2(pieceA, panelB, kc, target, targetStride, targetLoad);
                else Kernel512Rows1(pieceA, panelB, kc, target, targetStride, targetLoad);
            }
            else
            {
                if (piece == 4) Kernel256Rows4(pieceA, panelB, kc, target, targetStride, targetLoad);
                else if (piece == 2) Kernel256Rows2(pieceA, panelB, kc, target, targetStride, targetLoad);
                else Kernel256Rows1(pieceA, panelB, kc, target, targetStride, targetLoad);
            }
            if (!direct) Merge(edge, tileCols, tile + (long)row * ldc, ldc, piece, tileWidth, load);
            row += piece;
        }
    }

    /// <summary>Adds (load) or copies rows×cols of a scratch tile into C.</summary>
    static void Merge(float* source, int sourceStride, float* target, int ldc, int rows, int cols, bool load)
    {
        for (int r = 0; r < rows; r++)
        {
            float* from = source + r * sourceStride;
            float* to = target + (long)r * ldc;
            if (load)
                for (int s = 0; s < cols; s++) to[s] += from[s];
            else
                for (int s = 0; s < cols; s++) to[s] = from[s];
        }
    }
}
