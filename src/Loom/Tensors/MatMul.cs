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
        unsafe { Gemm.Multiply(x.Pointer, w.Pointer, rows, k, n, y.Pointer, false, transposeW, false); }
        if (tape.NeedsGrad(x, w))
            tape.Record(new TapeEntry { Op = MatMulBackward.Instance, Output = y, A = x, B = w, I0 = rows, I1 = k, I2 = n, I3 = transposeW ? 1 : 0 });
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
                Gemm.Multiply(dY.Pointer, w.Pointer, rows, n, k, dX.Pointer, false, !transposeW, true);
            }
            if (w.RequiresGrad)
            {
                var dW = tape.GradOf(w);
                if (transposeW) // dW[n, k] = dYᵀ · x
                    Gemm.Multiply(dY.Pointer, x.Pointer, n, rows, k, dW.Pointer, true, false, true);
                else // dW[k, n] = xᵀ · dY
                    Gemm.Multiply(x.Pointer, dY.Pointer, k, rows, n, dW.Pointer, true, false, true);
            }
        }
    }
}
