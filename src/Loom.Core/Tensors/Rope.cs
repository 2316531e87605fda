using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>Rotary position embedding, in the Hugging Face Llama layout (rotate_half).</summary>
public static class RopeOps
{
    /// <summary>
    /// Rotates each head of x [batch, tokens, heads·headDim]: element i of a head pairs with element
    /// i + headDim/2, both turned by the angle position·theta^(−2i/headDim), where position = token
    /// index + <paramref name="positionOffset"/>. Returns [batch, tokens, heads·headDim].
    /// Angles are computed in double (Hugging Face computes them in float32, so at position p the
    /// two differ by about p·6e-8 radians). With <paramref name="frequencyDivisors"/> [headDim/2] (llama.cpp's
    /// freq_factors; Llama 3's rope scaling) frequency i is theta^(−2i/headDim) / frequencyDivisors[i].
    /// </summary>
    public static Tensor Rope(this Tape tape, Tensor x, int heads, int headDim, float theta, int positionOffset = 0, Tensor? frequencyDivisors = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(positionOffset);
        return Rope(tape, x, heads, headDim, theta, positionOffset, null, frequencyDivisors);
    }

    /// <summary>
    /// <see cref="Rope(Tape, Tensor, int, int, float, int)"/> with each sequence at its own offset: token t of
    /// batch row b is at position <paramref name="batchOffsets"/>[b] + t (the sequences of a decode step, each at
    /// its own length). batchOffsets has at least batch entries, kept unchanged by the caller until backward.
    /// </summary>
    public static Tensor Rope(this Tape tape, Tensor x, int heads, int headDim, float theta, int[] batchOffsets, Tensor? frequencyDivisors = null)
    {
        if (x.Rank != 3 || batchOffsets.Length < x.Dim(0))
            throw new ArgumentException($"rope got {batchOffsets.Length} offsets for x {x.ShapeText}", nameof(batchOffsets));
        for (int b = 0; b < x.Dim(0); b++)
            if (batchOffsets[b] < 0) throw new ArgumentOutOfRangeException(nameof(batchOffsets), batchOffsets[b], "rope offsets must be >= 0");
        return Rope(tape, x, heads, headDim, theta, 0, batchOffsets, frequencyDivisors);
    }

    static unsafe Tensor Rope(Tape tape, Tensor x, int heads, int headDim, float theta, int positionOffset, int[]? batchOffsets, Tensor? frequencyDivisors)
    {
        if (x.Rank != 3 || x.Dim(2) != heads * headDim)
            throw new ArgumentException($"rope needs x [batch, tokens, {heads}·{headDim}], got {x.ShapeText}", nameof(x));
        if (headDim % 2 != 0) throw new ArgumentException($"rope head size must be even, got {headDim}", nameof(headDim));
        if (frequencyDivisors is not null && frequencyDivisors.Length != headDim / 2)
            throw new ArgumentException($"rope needs {headDim / 2} frequency divisors, got {frequencyDivisors.ShapeText}", nameof(frequencyDivisors));
        int tokens = x.Dim(1);
        var table = RopeTable.For(headDim, theta, frequencyDivisors, MaxOffset(positionOffset, batchOffsets, x.Dim(0)) + tokens);
        var y = tape.Allocate(x.Shape); // [batch, tokens, heads·headDim]
        Rotate.Run(x.Pointer, table, x.Rows, tokens, heads, headDim, positionOffset, batchOffsets, y.Pointer, backward: false, tape.Compute);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry { Op = RopeBackward.Instance, Output = y, A = x, B = frequencyDivisors, Indices = batchOffsets, I0 = heads, I1 = headDim, I2 = positionOffset, F0 = theta });
        return y;
    }

    /// <summary>The largest position offset of any batch row.</summary>
    static int MaxOffset(int positionOffset, int[]? batchOffsets, int batch)
    {
        int max = 0;
        for (int b = 0; batchOffsets is not null && b < batch; b++) max = Math.Max(max, batchOffsets[b]);
        return positionOffset + max;
    }

    sealed class RopeBackward : IBackward
    {
        public static readonly RopeBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var x = e.A!;
            int tokens = x.Dim(1), headDim = e.I1, offset = e.I2;
            var table = RopeTable.For(headDim, e.F0, e.B, MaxOffset(offset, e.Indices, x.Dim(0)) + tokens);
            // The rotation is orthogonal: dX = Rᵀ·dY, a rotation by the opposite angle.
            Rotate.Run(e.Output.Grad!.Pointer, table, x.Rows, tokens, e.I0, headDim, offset, e.Indices, tape.GradOf(x).Pointer, backward: true, tape.Compute);
        }
    }

    /// <summary>
    /// cos and sin of position·invFreq_i for positions [0, Positions) and i in [0, headDim/2); shared, read-only.
    /// Tables are told apart by head size, theta and the frequency divisors' values (a copy is kept).
    /// </summary>
    sealed class RopeTable
    {
        static RopeTable[] tables = [];
        static readonly object Gate = new();

        public readonly int HeadDim, Positions;
        public readonly float Theta;
        public readonly float[]? Divisors; // [headDim/2] or null
        public readonly float[] Cos, Sin; // [positions, headDim/2], pinned

        RopeTable(int headDim, float theta, float[]? divisors, int positions)
        {
            HeadDim = headDim; Theta = theta; Divisors = divisors; Positions = positions;
            int half = headDim / 2;
            Cos = GC.AllocateArray<float>(Math.Max(positions * half, 1), pinned: true);
            Sin = GC.AllocateArray<float>(Math.Max(positions * half, 1), pinned: true);
            for (int i = 0; i < half; i++)
            {
                double inverseFrequency = Math.Pow(theta, -2.0 * i / headDim) / (divisors is null ? 1.0 : divisors[i]);
                for (int p = 0; p < positions; p++)
                {
                    double angle = p * inverseFrequency;
                    Cos[p * half + i] = (float)Math.Cos(angle);
                    Sin[p * half + i] = (float)Math.Sin(angle);
                }
            }
        }

        /// <summary>The table for (headDim, theta, divisors) covering at least <paramref name="positions"/>; built (doubling) on first need.</summary>
        public static RopeTable For(int headDim, float theta, Tensor? divisors, int positions)
        {
            foreach (var t in Volatile.Read(ref tables))
                if (t.Matches(headDim, theta, divisors) && t.Positions >= positions) return t;
            return Build(headDim, theta, divisors, positions);
        }

        bool Matches(int headDim, float theta, Tensor? divisors) =>
            HeadDim == headDim && Theta == theta && (divisors is null ? Divisors is null : Divisors is not null && divisors.Span.SequenceEqual(Divisors));

        // Apart from For, so that the lambda's closure is allocated only on a miss.
        static RopeTable Build(int headDim, float theta, Tensor? divisors, int positions)
        {
            lock (Gate)
            {
                int index = Array.FindIndex(tables, t => t.Matches(headDim, theta, divisors));
                if (index >= 0 && tables[index].Positions >= positions) return tables[index];
                int size = Math.Max(positions, index >= 0 ? 2 * tables[index].Positions : 0);
                var table = new RopeTable(headDim, theta, divisors?.Span.ToArray(), size);
                var grown = index >= 0 ? (RopeTable[])tables.Clone() : [.. tables, table];
                if (index >= 0) grown[index] = table;
                Volatile.Write(ref tables, grown);
                return table;
            }
        }
    }

    /// <summary>Rotates rows of heads; backward rotates by the negative angle and accumulates.</summary>
    sealed unsafe class Rotate : IParallelWork
    {
        [ThreadStatic] static Rotate? cached;
        float* source, target, cos, sin;
        int* batchOffsets;
        RopeTable? table;
        int tokens, heads, headDim, offset, rows, perBlock;
        bool backward;

        public static void Run(float* source, RopeTable table, int rows, int tokens, int heads, int headDim, int offset, int[]? batchOffsets, float* target, bool backward, ComputeContext compute)
        {
            var job = cached ??= new Rotate();
            job.source = source; job.target = target; job.table = table;
            job.rows = rows; job.tokens = tokens; job.heads = heads; job.headDim = headDim; job.offset = offset; job.backward = backward;
            fixed (float* c = table.Cos, s = table.Sin)
            {
                job.cos = c; job.sin = s; // pinned arrays: the addresses stay valid
            }
            fixed (int* offsets = batchOffsets)
            {
                job.batchOffsets = offsets; // null when there are none; fixed until the run returns
                compute.Run(ComputeContext.Blocks(rows, heads * headDim, out job.perBlock), job);
            }
            job.table = null;
            job.batchOffsets = null;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int half = headDim / 2, width = heads * headDim;
            int end = Math.Min(rows, (index + 1) * perBlock);
            for (int r = index * perBlock; r < end; r++)
            {
                int position = r % tokens + offset + (batchOffsets is null ? 0 : batchOffsets[r / tokens]);
                float* c = cos + (long)position * half, s = sin + (long)position * half;
                for (int h = 0; h < heads; h++)
                {
                    long at = (long)r * width + (long)h * headDim;
                    if (backward) RotateHalves(source + at, c, s, half, -1f, true, target + at);
                    else RotateHalves(source + at, c, s, half, 1f, false, target + at);
                }
            }
        }
    }

    /// <summary>
    /// y1 = x1·cos − x2·sin·sign, y2 = x2·cos + x1·sin·sign (x1 = x[0, half), x2 = x[half, 2·half));
    /// with <paramref name="accumulate"/> the result is added to y.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void RotateHalves(float* x, float* cos, float* sin, int half, float sign, bool accumulate, float* y)
    {
        float* x2 = x + half, y2 = y + half;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var signs = Vector512.Create(sign);
            for (; i <= half - 16; i += 16)
            {
                var c = Vector512.Load(cos + i);
                var s = Vector512.Load(sin + i) * signs;
                var a = Vector512.Load(x + i);
                var b = Vector512.Load(x2 + i);
                var first = Vector512.FusedMultiplyAdd(a, c, -(b * s));
                var second = Vector512.FusedMultiplyAdd(b, c, a * s);
                if (accumulate) { first += Vector512.Load(y + i); second += Vector512.Load(y2 + i); }
                first.Store(y + i);
                second.Store(y2 + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var signs = Vector256.Create(sign);
            for (; i <= half - 8; i += 8)
            {
                var c = Vector256.Load(cos + i);
                var s = Vector256.Load(sin + i) * signs;
                var a = Vector256.Load(x + i);
                var b = Vector256.Load(x2 + i);
                var first = Vector256.FusedMultiplyAdd(a, c, -(b * s));
                var second = Vector256.FusedMultiplyAdd(b, c, a * s);
                if (accumulate) { first += Vector256.Load(y + i); second += Vector256.Load(y2 + i); }
                first.Store(y + i);
                second.Store(y2 + i);
            }
        }
        for (; i < half; i++)
        {
            float c = cos[i], s = sin[i] * sign, a = x[i], b = x2[i];
            float first = a * c - b * s, second = b * c + a * s;
            if (accumulate) { first += y[i]; second += y2[i]; }
            y[i] = first;
            y2[i] = second;
        }
    }
}
