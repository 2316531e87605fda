using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Loom.Tensors;

/// <summary>Token embedding lookup: rows of a [vocab, dim] table picked by token id.</summary>
public static class EmbeddingOps
{
    /// <summary>
    /// y[b, t, :] = weight[ids[b·tokens + t], :]. weight [vocab, dim]; ids has batch·tokens entries
    /// (kept unchanged by the caller until backward). Returns [batch, tokens, dim].
    /// </summary>
    public static unsafe Tensor Embedding(this Tape tape, Tensor weight, int[] ids, int batch, int tokens)
    {
        if (weight.Rank != 2) throw new ArgumentException($"embedding weight must be 2-D [vocab, dim], got {weight.ShapeText}", nameof(weight));
        if (ids.Length != (long)batch * tokens)
            throw new ArgumentException($"embedding got {ids.Length} ids for batch {batch} × tokens {tokens}", nameof(ids));
        CheckRows(ids, weight.Dim(0), "token id", nameof(ids));
        int dim = weight.Dim(1);
        var y = tape.Allocate(batch, tokens, dim); // [batch, tokens, dim]
        if (weight.Quantized is { } table) // a frozen quantised table: each looked-up row is expanded
            for (int i = 0; i < ids.Length; i++) table.DequantizeRow(ids[i], y.Span.Slice(i * dim, dim));
        else
            RowCopy.Run(weight.Pointer, ids, dim, y.Pointer, scatterAdd: false, tape.Compute);
        if (tape.NeedsGrad(weight))
            tape.Record(new TapeEntry { Op = EmbeddingBackward.Instance, Output = y, A = weight, Indices = ids, I0 = dim });
        return y;
    }

    /// <summary>Throws naming the first index outside [0, count) and its position.</summary>
    internal static void CheckRows(int[] indices, int count, string what, string parameter)
    {
        for (int i = 0; i < indices.Length; i++)
            if ((uint)indices[i] >= (uint)count)
                throw new ArgumentException($"{what} {indices[i]} at position {i} is outside [0, {count})", parameter);
    }

    sealed class EmbeddingBackward : IBackward
    {
        public static readonly EmbeddingBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dWeight = tape.GradOf(e.A!); // [vocab, dim]
            RowCopy.Run(e.Output.Grad!.Pointer, e.Indices!, e.I0, dWeight.Pointer, scatterAdd: true, tape.Compute);
        }
    }

    /// <summary>
    /// Gather (y[i] = table[index[i]]) split over output rows, or scatter-add (table[index[i]] += y[i])
    /// split over column blocks, so that repeated indices never race.
    /// </summary>
    internal sealed unsafe class RowCopy : IParallelWork
    {
        [ThreadStatic] static RowCopy? cached;
        float* table, rows;
        int[] indices = [];
        int dim, perBlock;
        bool scatterAdd;

        /// <summary>Gather: source = table, target = rows. Scatter-add: source = rows, target = table.</summary>
        public static void Run(float* source, int[] indices, int dim, float* target, bool scatterAdd, ComputeContext compute)
        {
            var job = cached ??= new RowCopy();
            job.indices = indices; job.dim = dim; job.scatterAdd = scatterAdd;
            job.table = scatterAdd ? target : source;
            job.rows = scatterAdd ? source : target;
            int blocks;
            if (scatterAdd)
            {
                ComputeContext.Blocks(dim, indices.Length, out job.perBlock);
                job.perBlock = Math.Max(job.perBlock, Math.Min(dim, 64)); // whole vectors per column block
                blocks = (dim + job.perBlock - 1) / job.perBlock;
            }
            else blocks = ComputeContext.Blocks(indices.Length, dim, out job.perBlock);
            compute.Run(blocks, job);
            job.indices = [];
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            if (!scatterAdd)
            {
                int end = Math.Min(indices.Length, (index + 1) * perBlock);
                for (int i = index * perBlock; i < end; i++)
                    new ReadOnlySpan<float>(table + (long)indices[i] * dim, dim).CopyTo(new Span<float>(rows + (long)i * dim, dim));
                return;
            }
            int column = index * perBlock, width = Math.Min(perBlock, dim - column);
            for (int i = 0; i < indices.Length; i++)
            {
                var target = new Span<float>(table + (long)indices[i] * dim + column, width);
                TensorPrimitives.Add(target, new ReadOnlySpan<float>(rows + (long)i * dim + column, width), target);
            }
        }
    }
}
