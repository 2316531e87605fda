namespace Loom.Tensors;

/// <summary>Fused causal self-attention with grouped-query heads (flash-style: no tokens × tokens matrix is stored).</summary>
public static class AttentionOps
{
    /// <summary>
    /// Causal softmax(q·kᵀ/sqrt(headDim))·v per head; query head h reads kv head h / (heads / kvHeads). With a
    /// <paramref name="slidingWindow"/> above 0, position p attends to positions p − slidingWindow + 1 .. p only (Mistral).
    /// </summary>
    /// <param name="q">Queries, [batch, tokens, heads*headDim].</param>
    /// <param name="k">Keys, [batch, tokens, kvHeads*headDim].</param>
    /// <param name="v">Values, [batch, tokens, kvHeads*headDim].</param>
    /// <returns>[batch, tokens, heads*headDim]; headDim = q.Dim(-1) / heads.</returns>
    public static Tensor CausalAttention(this Tape tape, Tensor q, Tensor k, Tensor v, int heads, int kvHeads, int slidingWindow = 0)
    {
        int headDim = CheckShapes(q, k, v, heads, kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        int batch = q.Dim(0), tokenCount = q.Dim(1);
        var output = tape.Allocate(batch, tokenCount, heads * headDim); // [batch, tokens, heads*headDim]
        bool record = tape.NeedsGrad(q, k, v);
        Tensor? logSumExp = record ? tape.Allocate(batch, heads, tokenCount) : null; // [batch, heads, tokens]
        int keyBlocks = AttentionKernels.KeyBlocks(tokenCount);
        var keysTransposed = tape.Allocate(batch * kvHeads, keyBlocks, headDim, AttentionKernels.KeyBlock); // [batch*kvHeads, keyBlocks, headDim, KeyBlock]
        unsafe
        {
            AttentionKernels.Forward(q.Pointer, k.Pointer, v.Pointer, batch, tokenCount, heads, kvHeads, headDim,
                keysTransposed.Pointer, output.Pointer, logSumExp is null ? null : logSumExp.Pointer, tape.Compute, window: slidingWindow);
        }
        if (record)
            tape.Record(new TapeEntry { Op = AttentionBackward.Instance, Output = output, A = q, B = k, C = v, D = logSumExp, I0 = heads, I1 = kvHeads, I2 = slidingWindow });
        return output;
    }

    static void CheckHeads(int heads, int kvHeads)
    {
        if (heads < 1 || kvHeads < 1) throw new ArgumentException($"attention: heads ({heads}) and kvHeads ({kvHeads}) must be positive");
        if (heads % kvHeads != 0) throw new ArgumentException($"attention: heads ({heads}) must be a multiple of kvHeads ({kvHeads})");
    }

    static int CheckShapes(Tensor q, Tensor k, Tensor v, int heads, int kvHeads)
    {
        CheckHeads(heads, kvHeads);
        if (q.Rank != 3 || k.Rank != 3 || v.Rank != 3)
            throw new ArgumentException($"attention: q, k, v must be [batch, tokens, channels], got {q.ShapeText}, {k.ShapeText}, {v.ShapeText}");
        if (!k.SameShape(v)) throw new ArgumentException($"attention: k {k.ShapeText} and v {v.ShapeText} differ", nameof(v));
        if (q.Dim(0) != k.Dim(0) || q.Dim(1) != k.Dim(1))
            throw new ArgumentException($"attention: q {q.ShapeText} and k {k.ShapeText} differ in batch or tokens", nameof(k));
        if (q.Dim(2) % heads != 0 || q.Dim(2) == 0)
            throw new ArgumentException($"attention: q channels {q.Dim(2)} are not a positive multiple of {heads} heads", nameof(q));
        int headDim = q.Dim(2) / heads;
        if (k.Dim(2) != kvHeads * headDim)
            throw new ArgumentException($"attention: k channels {k.Dim(2)} != kvHeads {kvHeads} x headDim {headDim}", nameof(k));
        return headDim;
    }

    sealed class AttentionBackward : IBackward, IReadsOutput // backward reads O for rowsum(dO ⊙ O)
    {
        public static readonly AttentionBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var q = e.A!; // [batch, tokens, heads*headDim]
            var k = e.B!; // [batch, tokens, kvHeads*headDim]
            var v = e.C!; // [batch, tokens, kvHeads*headDim]
            var logSumExp = e.D!; // [batch, heads, tokens]
            var output = e.Output; // [batch, tokens, heads*headDim]
            var dOutput = output.Grad!; // [batch, tokens, heads*headDim]
            int heads = e.I0, kvHeads = e.I1;
            int batch = q.Dim(0), tokenCount = q.Dim(1), headDim = q.Dim(2) / heads;
            var delta = tape.Allocate(batch, heads, tokenCount); // [batch, heads, tokens]
            float* dQ = q.RequiresGrad ? tape.GradOf(q).Pointer : null;
            float* dK = k.RequiresGrad ? tape.GradOf(k).Pointer : null;
            float* dV = v.RequiresGrad ? tape.GradOf(v).Pointer : null;
            AttentionKernels.Backward(q.Pointer, k.Pointer, v.Pointer, output.Pointer, dOutput.Pointer, logSumExp.Pointer,
                batch, tokenCount, heads, kvHeads, headDim, delta.Pointer, dQ, dK, dV, tape.Compute, e.I2);
        }
    }
}
