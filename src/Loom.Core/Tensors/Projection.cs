namespace Loom.Tensors;

/// <summary>
/// Linear projections y = x · Wᵀ with W in the Hugging Face Linear layout [out, in], one to three weights
/// on the same input. In inference with few rows (a decode step, a short prompt) the products run
/// through <see cref="Gemv"/>, which streams each weight row once for all rows and runs the two or three
/// products of one input in one parallel pass; otherwise each is a <see cref="MatMulOps.MatMul"/> (packed GEMM,
/// recorded for backward). A weight held quantised (<see cref="Tensor.Quantized"/>) always runs through
/// <see cref="QuantizedGemv"/> (int8 dot products, any number of rows); it is frozen, and backward gives x its
/// gradient dX = dY·W by expanding W a column block at a time.
/// </summary>
public static class ProjectionOps
{
    /// <summary>Inference products with at most this many rows stream the weights (<see cref="Gemv"/>).</summary>
    public const int GemvRows = 16;

    /// <summary>x [..., in] · wᵀ, w [out, in] → [..., out].</summary>
    public static Tensor Project(this Tape tape, Tensor x, Tensor w)
    {
        if (w.Quantized is not null) return ProjectQuantized(tape, x, w, null, null).Y0; // [..., out]
        if (!Streams(tape, x, w, null, null)) return tape.MatMul(x, w, transposeW: true); // [..., out]
        var y = Output(tape, x, w); // [..., out]
        unsafe { Gemv.Multiply(x.Pointer, x.Rows, x.Dim(-1), w.Pointer, w.Dim(0), y.Pointer, tape.Compute); }
        return y;
    }

    /// <summary>x [..., in] · w0ᵀ and x · w1ᵀ → ([..., out0], [..., out1]).</summary>
    public static (Tensor Y0, Tensor Y1) Project(this Tape tape, Tensor x, Tensor w0, Tensor w1)
    {
        if (w0.Quantized is not null && w1.Quantized is not null)
        {
            var (q0, q1, _) = ProjectQuantized(tape, x, w0, w1, null); // [..., out0], [..., out1]
            return (q0, q1!);
        }
        if (w0.Quantized is not null || w1.Quantized is not null) return (tape.Project(x, w0), tape.Project(x, w1));
        if (!Streams(tape, x, w0, w1, null))
            return (tape.MatMul(x, w0, transposeW: true), tape.MatMul(x, w1, transposeW: true)); // [..., out0], [..., out1]
        var y0 = Output(tape, x, w0); // [..., out0]
        var y1 = Output(tape, x, w1); // [..., out1]
        unsafe { Gemv.Multiply(x.Pointer, x.Rows, x.Dim(-1), w0.Pointer, w0.Dim(0), y0.Pointer, w1.Pointer, w1.Dim(0), y1.Pointer, null, 0, null, tape.Compute); }
        return (y0, y1);
    }

    /// <summary>x [..., in] · w0ᵀ, x · w1ᵀ and x · w2ᵀ → ([..., out0], [..., out1], [..., out2]).</summary>
    public static (Tensor Y0, Tensor Y1, Tensor Y2) Project(this Tape tape, Tensor x, Tensor w0, Tensor w1, Tensor w2)
    {
        if (w0.Quantized is not null && w1.Quantized is not null && w2.Quantized is not null)
        {
            var (q0, q1, q2) = ProjectQuantized(tape, x, w0, w1, w2); // [..., out0], [..., out1], [..., out2]
            return (q0, q1!, q2!);
        }
        if (w0.Quantized is not null || w1.Quantized is not null || w2.Quantized is not null)
            return (tape.Project(x, w0), tape.Project(x, w1), tape.Project(x, w2));
        if (!Streams(tape, x, w0, w1, w2))
            return (tape.MatMul(x, w0, transposeW: true), tape.MatMul(x, w1, transposeW: true), tape.MatMul(x, w2, transposeW: true));
        var y0 = Output(tape, x, w0); // [..., out0]
        var y1 = Output(tape, x, w1); // [..., out1]
        var y2 = Output(tape, x, w2); // [..., out2]
        unsafe
        {
            Gemv.Multiply(x.Pointer, x.Rows, x.Dim(-1), w0.Pointer, w0.Dim(0), y0.Pointer, w1.Pointer, w1.Dim(0), y1.Pointer,
                w2.Pointer, w2.Dim(0), y2.Pointer, tape.Compute);
        }
        return (y0, y1, y2);
    }

    /// <summary>
    /// Whether the products stream the weights: nothing is recorded, and the rows are few or are one token of
    /// each sequence (x [batch, 1, in], a decode step). A decode step of any width thus sums every output in the
    /// same order, so a sequence decodes to the same logits alone or in a batch.
    /// </summary>
    static bool Streams(Tape tape, Tensor x, Tensor w0, Tensor? w1, Tensor? w2)
    {
        Check(x, w0);
        if (w1 is not null) Check(x, w1);
        if (w2 is not null) Check(x, w2);
        if (tape.NeedsGrad(x, w0, w1, w2)) return false;
        return x.Rows <= GemvRows || (x.Rank == 3 && x.Dim(1) == 1);
    }

    /// <summary>x [..., in] times up to three quantised weights in one pass (x quantised once); records dX for backward when x needs it.</summary>
    static (Tensor Y0, Tensor? Y1, Tensor? Y2) ProjectQuantized(Tape tape, Tensor x, Tensor w0, Tensor? w1, Tensor? w2)
    {
        Check(x, w0);
        if (w1 is not null) Check(x, w1);
        if (w2 is not null) Check(x, w2);
        var y0 = Output(tape, x, w0); // [..., out0]
        var y1 = w1 is null ? null : Output(tape, x, w1); // [..., out1]
        var y2 = w2 is null ? null : Output(tape, x, w2); // [..., out2]
        unsafe
        {
            QuantizedGemv.Multiply(x.Pointer, x.Rows, x.Dim(-1), w0.Quantized!, y0.Pointer, w1?.Quantized, y1 is null ? null : y1.Pointer,
                w2?.Quantized, y2 is null ? null : y2.Pointer, tape.Compute);
        }
        if (tape.NeedsGrad(x))
        {
            tape.Record(new TapeEntry { Op = QuantizedBackward.Instance, Output = y0, A = x, B = w0 });
            if (y1 is not null) tape.Record(new TapeEntry { Op = QuantizedBackward.Instance, Output = y1, A = x, B = w1 });
            if (y2 is not null) tape.Record(new TapeEntry { Op = QuantizedBackward.Instance, Output = y2, A = x, B = w2 });
        }
        return (y0, y1, y2);
    }

    /// <summary>dX [..., in] += dY [..., out] · W [out, in] for a frozen quantised W.</summary>
    sealed class QuantizedBackward : IBackward
    {
        public static readonly QuantizedBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var x = e.A!;
            var dX = tape.GradOf(x); // [..., in]
            QuantizedGemv.AddInputGradient(e.Output.Grad!.Pointer, x.Rows, e.B!.Quantized!, dX.Pointer, tape.Compute);
        }
    }

    static void Check(Tensor x, Tensor w)
    {
        if (w.Rank != 2) throw new ArgumentException($"projection weight must be 2-D [out, in], got {w.ShapeText}", nameof(w));
        if (w.Dim(1) != x.Dim(-1)) throw new ArgumentException($"projection sizes differ: x {x.ShapeText}, w {w.ShapeText}ᵀ", nameof(w));
    }

    /// <summary>An arena tensor of x's shape with the last axis w's output size.</summary>
    static Tensor Output(Tape tape, Tensor x, Tensor w)
    {
        Span<int> shape = stackalloc int[x.Rank];
        x.Shape.CopyTo(shape);
        shape[^1] = w.Dim(0);
        return tape.Allocate(shape); // [..., out]
    }
}
