using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>Root-mean-square layer norm (Llama's RMSNorm).</summary>
public static class NormOps
{
    /// <summary>
    /// y = x · rsqrt(mean(x²) + eps) · weight over the last axis. x [..., dim]; weight [dim].
    /// Returns the shape of x. Keeps the per-row inverse RMS ([rows]) for backward.
    /// </summary>
    public static unsafe Tensor RmsNorm(this Tape tape, Tensor x, Tensor weight, float eps)
    {
        int dim = x.Dim(-1);
        if (weight.Rank != 1 || weight.Dim(0) != dim)
            throw new ArgumentException($"rmsnorm weight must be [{dim}] for x {x.ShapeText}, got {weight.ShapeText}", nameof(weight));
        int rows = x.Rows;
        var y = tape.Allocate(x.Shape); // [..., dim]
        bool record = tape.NeedsGrad(x, weight);
        Tensor? invRms = record ? tape.Allocate(rows) : null; // [rows]
        var job = Forward.Cached ??= new Forward();
        job.x = x.Pointer; job.weight = weight.Pointer; job.y = y.Pointer;
        job.invRms = invRms is null ? null : invRms.Pointer;
        job.dim = dim; job.rows = rows; job.eps = eps;
        tape.Compute.Run(ComputeContext.Blocks(rows, dim, out job.perBlock), job);
        if (record)
            tape.Record(new TapeEntry { Op = RmsNormBackward.Instance, Output = y, A = x, B = weight, C = invRms, I0 = rows, I1 = dim });
        return y;
    }

    sealed unsafe class Forward : IParallelWork
    {
        [ThreadStatic] public static Forward? Cached;
        public float* x, weight, y, invRms;
        public int dim, rows, perBlock;
        public float eps;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int end = Math.Min(rows, (index + 1) * perBlock);
            for (int r = index * perBlock; r < end; r++)
            {
                float* xRow = x + (long)r * dim;
                float sumOfSquares = TensorPrimitives.SumOfSquares(new ReadOnlySpan<float>(xRow, dim));
                float scale = 1f / MathF.Sqrt(sumOfSquares / dim + eps);
                if (invRms is not null) invRms[r] = scale;
                ScaleProduct(xRow, weight, scale, dim, y + (long)r * dim);
            }
        }
    }

    sealed class RmsNormBackward : IBackward
    {
        public static readonly RmsNormBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var x = e.A!; // [rows, dim]
            var weight = e.B!; // [dim]
            var dY = e.Output.Grad!; // [rows, dim]
            int rows = e.I0, dim = e.I1;
            var job = BackwardJob.Cached ??= new BackwardJob();
            job.x = x.Pointer; job.weight = weight.Pointer; job.dY = dY.Pointer; job.invRms = e.C!.Pointer;
            job.rows = rows; job.dim = dim;
            if (x.RequiresGrad)
            {
                job.dX = tape.GradOf(x).Pointer;
                job.forWeight = false;
                tape.Compute.Run(ComputeContext.Blocks(rows, dim, out job.perBlock), job);
            }
            if (weight.RequiresGrad)
            {
                job.dWeight = tape.GradOf(weight).Pointer;
                job.forWeight = true;
                ComputeContext.Blocks(dim, rows, out job.perBlock);
                job.perBlock = Math.Max(job.perBlock, Math.Min(dim, 64));
                tape.Compute.Run((dim + job.perBlock - 1) / job.perBlock, job);
            }
        }
    }

    /// <summary>dX by rows; dWeight by column blocks (each block sums over all rows, so no race).</summary>
    sealed unsafe class BackwardJob : IParallelWork
    {
        [ThreadStatic] public static BackwardJob? Cached;
        public float* x, weight, dY, invRms, dX, dWeight;
        public int rows, dim, perBlock;
        public bool forWeight;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            if (forWeight)
            {
                int column = index * perBlock, width = Math.Min(perBlock, dim - column);
                for (int r = 0; r < rows; r++)
                    MultiplyScaleAdd(dY + (long)r * dim + column, x + (long)r * dim + column, invRms[r], width, dWeight + column);
                return;
            }
            int end = Math.Min(rows, (index + 1) * perBlock);
            for (int r = index * perBlock; r < end; r++)
            {
                long offset = (long)r * dim;
                float scale = invRms[r];
                // y_i = x_i·s·w_i with s = (mean(x²) + eps)^(-1/2), ∂s/∂x_j = -s³·x_j/dim:
                // dX_j = s·w_j·dY_j − (s³/dim)·x_j·Σ_i dY_i·w_i·x_i
                float dot = Dot3(dY + offset, weight, x + offset, dim);
                RmsNormRowGrad(dY + offset, weight, x + offset, scale, scale * scale * scale * dot / dim, dim, dX + offset);
            }
        }
    }

    /// <summary>y = a ⊙ b · scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void ScaleProduct(float* a, float* b, float scale, int length, float* y)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i <= length - 16; i += 16) (Vector512.Load(a + i) * Vector512.Load(b + i) * s).Store(y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i <= length - 8; i += 8) (Vector256.Load(a + i) * Vector256.Load(b + i) * s).Store(y + i);
        }
        for (; i < length; i++) y[i] = a[i] * b[i] * scale;
    }

    /// <summary>y += a ⊙ b · scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void MultiplyScaleAdd(float* a, float* b, float scale, int length, float* y)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i <= length - 16; i += 16)
                Vector512.FusedMultiplyAdd(Vector512.Load(a + i) * Vector512.Load(b + i), s, Vector512.Load(y + i)).Store(y + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i <= length - 8; i += 8)
                Vector256.FusedMultiplyAdd(Vector256.Load(a + i) * Vector256.Load(b + i), s, Vector256.Load(y + i)).Store(y + i);
        }
        for (; i < length; i++) y[i] += a[i] * b[i] * scale;
    }

    /// <summary>Σ a ⊙ b ⊙ c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe float Dot3(float* a, float* b, float* c, int length)
    {
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= length - 16; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i) * Vector512.Load(b + i), Vector512.Load(c + i), acc);
            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= length - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i) * Vector256.Load(b + i), Vector256.Load(c + i), acc);
            sum = Vector256.Sum(acc);
        }
        for (; i < length; i++) sum += a[i] * b[i] * c[i];
        return sum;
    }

    /// <summary>dX += scale · w ⊙ dY − coefficient · x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void RmsNormRowGrad(float* dY, float* w, float* x, float scale, float coefficient, int length, float* dX)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            var c = Vector512.Create(coefficient);
            for (; i <= length - 16; i += 16)
            {
                var v = Vector512.FusedMultiplyAdd(Vector512.Load(w + i) * Vector512.Load(dY + i), s, Vector512.Load(dX + i));
                Vector512.FusedMultiplyAdd(-c, Vector512.Load(x + i), v).Store(dX + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            var c = Vector256.Create(coefficient);
            for (; i <= length - 8; i += 8)
            {
                var v = Vector256.FusedMultiplyAdd(Vector256.Load(w + i) * Vector256.Load(dY + i), s, Vector256.Load(dX + i));
                Vector256.FusedMultiplyAdd(-c, Vector256.Load(x + i), v).Store(dX + i);
            }
        }
        for (; i < length; i++) dX[i] += scale * w[i] * dY[i] - coefficient * x[i];
    }
}
