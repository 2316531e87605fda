namespace Loom.Tensors;

/// <summary>Matrix products: activations [rows, k] times a weight, with gradients for both.</summary>
public static class MatMulOps
{
    /// <summary>
    /// y = x · op(w): x [..., k] (any leading axes, flattened to rows); w [k, n], or with
    /// <paramref name="transposeW"/> w [n, k] (the Hugging Face Linear layout, y = x · wᵀ).
    /// Returns [..., n].
    /// </summary>
    public static Tensor MatMul(this Tape tape, Tensor x, Tensor w, bool transposeW = false)
    {
        if (w.Rank != 2) throw new ArgumentException($"matmul weight must be 2-D, got {w.ShapeText}", nameof(w));
        int k = x.Dim(-1);
        int wk = transposeW ? w.Dim(1) : w.Dim(0);
        int n = transposeW ? w.Dim(0) : w.Dim(1);
        if (wk != k) throw new ArgumentException($"matmul inner sizes differ: x {x.ShapeText}, w {w.ShapeText}{(transposeW ? "ᵀ" : "")}");
        int rows = x.Rows;
        Span<int> shape = stackalloc int[x.Rank];
        x.Shape.CopyTo(shape);
        shape[^1] = n;
        var y = tape.Allocate(shape); // [..., n]
        unsafe { Gemm.Multiply(x.Pointer, w.Pointer, rows, k, n, y.Pointer, false, transposeW, false, tape.Compute); }
        if (tape.NeedsGrad(x, w))
            tape.Record(new TapeEntry { Op = MatMulBackward.Instance, Output = y, A = x, B = w, I0 = rows, I1 = k, I2 = n, I3 = transposeW ? 1 : 0 });
        return y;
    }

    /// <summary>
    /// y[b] = a[b] · op(b[b]) for each batch entry: a [batch, m, k]; b [batch, k, n], or with
    /// <paramref name="transposeB"/> b [batch, n, k]. Returns [batch, m, n]. Each product runs
    /// through <see cref="Gemm.Multiply(float*, float*, int, int, int, float*, bool, bool, bool, ComputeContext)"/>.
    /// </summary>
    public static Tensor BatchedMatMul(this Tape tape, Tensor a, Tensor b, bool transposeB = false)
    {
        if (a.Rank != 3 || b.Rank != 3 || a.Dim(0) != b.Dim(0))
            throw new ArgumentException($"batched matmul needs a [batch, m, k] and b [batch, ., .], got {a.ShapeText} and {b.ShapeText}");
        int batch = a.Dim(0), m = a.Dim(1), k = a.Dim(2);
        int bk = transposeB ? b.Dim(2) : b.Dim(1);
        int n = transposeB ? b.Dim(1) : b.Dim(2);
        if (bk != k) throw new ArgumentException($"batched matmul inner sizes differ: a {a.ShapeText}, b {b.ShapeText}{(transposeB ? "ᵀ" : "")}");
        var y = tape.Allocate(batch, m, n); // [batch, m, n]
        unsafe
        {
            for (int i = 0; i < batch; i++)
                Gemm.Multiply(a.Pointer + (long)i * m * k, b.Pointer + (long)i * k * n, m, k, n, y.Pointer + (long)i * m * n, false, transposeB, false, tape.Compute);
        }
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry { Op = BatchedMatMulBackward.Instance, Output = y, A = a, B = b, I0 = batch, I1 = m, I2 = k, I3 = n, F0 = transposeB ? 1 : 0 });
        return y;
    }

    sealed class MatMulBackward : IBackward
    {
        public static readonly MatMulBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var x = e.A!; // [rows, k]
            var w = e.B!; // [k, n] or [n, k]
            var dY = e.Output.Grad!; // [rows, n]
            int rows = e.I0, k = e.I1, n = e.I2;
            bool transposeW = e.I3 != 0;
            if (x.RequiresGrad)
            {
                var dX = tape.GradOf(x);
                // dX = dY · op(w)ᵀ
                Gemm.Multiply(dY.Pointer, w.Pointer, rows, n, k, dX.Pointer, false, !transposeW, true, tape.Compute);
            }
            if (w.RequiresGrad && !w.IsActivation && tape.WeightGradients is { } shared)
                shared.Accumulate(w, dY.Pointer, x.Pointer, rows, k, n, transposeW);
            else if (w.RequiresGrad)
            {
                var dW = tape.GradOf(w);
                if (transposeW) // dW[n, k] = dYᵀ · x
                    Gemm.Multiply(dY.Pointer, x.Pointer, n, rows, k, dW.Pointer, true, false, true, tape.Compute);
                else // dW[k, n] = xᵀ · dY
                    Gemm.Multiply(x.Pointer, dY.Pointer, k, rows, n, dW.Pointer, true, false, true, tape.Compute);
            }
        }
    }

    sealed class BatchedMatMulBackward : IBackward
    {
        public static readonly BatchedMatMulBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var a = e.A!; // [batch, m, k]
            var b = e.B!; // [batch, k, n] or [batch, n, k]
            var dY = e.Output.Grad!; // [batch, m, n]
            int batch = e.I0, m = e.I1, k = e.I2, n = e.I3;
            bool transposeB = e.F0 != 0;
            float* dA = a.RequiresGrad ? tape.GradOf(a).Pointer : null;
            float* dB = b.RequiresGrad ? tape.GradOf(b).Pointer : null;
            for (int i = 0; i < batch; i++)
            {
                float* aI = a.Pointer + (long)i * m * k, bI = b.Pointer + (long)i * k * n, dYI = dY.Pointer + (long)i * m * n;
                if (dA is not null) // dA = dY · op(b)ᵀ
                    Gemm.Multiply(dYI, bI, m, n, k, dA + (long)i * m * k, false, !transposeB, true, tape.Compute);
                if (dB is null) continue;
                if (transposeB) // dB[n, k] = dYᵀ · a
                    Gemm.Multiply(dYI, aI, n, m, k, dB + (long)i * k * n, true, false, true, tape.Compute);
                else // dB[k, n] = aᵀ · dY
                    Gemm.Multiply(aI, dYI, k, m, n, dB + (long)i * k * n, true, false, true, tape.Compute);
            }
        }
    }
}
