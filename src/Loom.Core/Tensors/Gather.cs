namespace Loom.Tensors;

/// <summary>Row selection: picks rows of a matrix view (e.g. the last token of each sequence).</summary>
public static class GatherOps
{
    /// <summary>
    /// y[i, :] = x[rows[i], :]. x [..., dim] with leading axes flattened to rows; rows kept unchanged
    /// by the caller until backward (repeats allowed). Returns [rows.Length, dim].
    /// </summary>
    public static unsafe Tensor GatherRows(this Tape tape, Tensor x, int[] rows)
    {
        int dim = x.Dim(-1);
        EmbeddingOps.CheckRows(rows, x.Rows, "row", nameof(rows));
        var y = tape.Allocate(rows.Length, dim); // [rows.Length, dim]
        EmbeddingOps.RowCopy.Run(x.Pointer, rows, dim, y.Pointer, scatterAdd: false, tape.Compute);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry { Op = GatherBackward.Instance, Output = y, A = x, Indices = rows, I0 = dim });
        return y;
    }

    sealed class GatherBackward : IBackward
    {
        public static readonly GatherBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dX = tape.GradOf(e.A!); // [..., dim]
            EmbeddingOps.RowCopy.Run(e.Output.Grad!.Pointer, e.Indices!, e.I0, dX.Pointer, scatterAdd: true, tape.Compute);
        }
    }
}
