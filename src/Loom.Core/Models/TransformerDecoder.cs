using System.Numerics.Tensors;
using Loom.Tensors;
using Tensor = Loom.Tensors.Tensor;

namespace Loom.Models;

/// <summary>
/// Inference over a <see cref="Transformer"/> with a <see cref="KvCache"/>: a prompt runs through the
/// model once (prefill, the tape in inference mode), then each step runs one new token for every
/// active sequence together: the projections are one matrix product with a row per sequence
/// (<see cref="Gemv"/>: each weight row is read once per step, however many sequences there are),
/// RoPE turns each row at its own position, and each row attends to its own slot of the cache.
/// A step allocates nothing once every buffer exists (they are sized for all slots up front).
/// Not thread-safe: one caller (the generation loop) at a time.
/// </summary>
public sealed unsafe class TransformerDecoder : IBatchDecoder
{
    readonly Transformer model;
    readonly LlamaConfig config;
    readonly ComputeContext compute;
    readonly Tape tape;
    readonly int queryDim;

    // Decode buffers, one row per slot.
    readonly Tensor x;        // [slots, dim] residual stream
    readonly Tensor normed;   // [slots, dim]
    readonly Tensor query;    // [slots, heads·headDim]
    readonly Tensor key;      // [slots, kvHeads·headDim]
    readonly Tensor value;    // [slots, kvHeads·headDim]
    readonly Tensor attended; // [slots, heads·headDim]
    readonly Tensor branch;   // [slots, dim]
    readonly Tensor gate;     // [slots, hidden]
    readonly Tensor up;       // [slots, hidden]
    readonly int[] positions; // [slots] position of each row's new token
    readonly int[] stepOf;    // [slots] last step that used the slot (duplicate check without allocating)
    int step;
    readonly AttentionJob attentionJob = new();

    /// <param name="model">The weights (shared, read-only).</param>
    /// <param name="slotCount">Sequences that can be decoded together.</param>
    /// <param name="contextLength">Tokens per slot; null (or more than the model's MaxSeq) means MaxSeq.</param>
    /// <param name="compute">The threads the kernels run on; null means <see cref="ComputeContext.Default"/>.</param>
    public TransformerDecoder(Transformer model, int slotCount = 1, int? contextLength = null, ComputeContext? compute = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slotCount, 1);
        if (contextLength is < 1) throw new ArgumentException($"the context length must be at least 1, got {contextLength}");
        this.model = model;
        this.compute = compute ?? ComputeContext.Default;
        tape = new Tape(this.compute) { Recording = false };
        config = model.Config;
        ContextLength = Math.Min(contextLength ?? config.MaxSeq, config.MaxSeq);
        queryDim = config.Heads * config.HeadDim;
        Cache = new KvCache(config.Layers, slotCount, ContextLength, config.KvDim);
        x = new Tensor(slotCount, config.Dim);
        normed = new Tensor(slotCount, config.Dim);
        query = new Tensor(slotCount, queryDim);
        key = new Tensor(slotCount, config.KvDim);
        value = new Tensor(slotCount, config.KvDim);
        attended = new Tensor(slotCount, queryDim);
        branch = new Tensor(slotCount, config.Dim);
        gate = new Tensor(slotCount, config.HiddenDim);
        up = new Tensor(slotCount, config.HiddenDim);
        positions = new int[slotCount];
        stepOf = new int[slotCount];
        stepOf.AsSpan().Fill(-1);
    }

    public Transformer Model => model;
    public KvCache Cache { get; }
    public int VocabSize => config.VocabSize;
    public int ContextLength { get; }
    public int SlotCount => Cache.SlotCount;

    /// <summary>Token rows run through the blocks so far (prefill rows plus one per sequence per decode step).</summary>
    public long ProcessedRows { get; private set; }

    /// <summary>Query·key dot products computed so far, over all layers and heads: a measure of attention work.</summary>
    public long AttentionDotProducts { get; private set; }

    /// <summary>Tokens cached in <paramref name="slot"/> (0 when free).</summary>
    public int Length(int slot) => Cache.Length(slot);

    public void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        CheckSlot(slot);
        int count = tokens.Length;
        if (count == 0) throw new ArgumentException("the prompt is empty", nameof(tokens));
        if (count > ContextLength) throw new ArgumentException($"the prompt has {count} tokens, more than the context of {ContextLength}", nameof(tokens));
        if (logits.Length != config.VocabSize) throw new ArgumentException($"logits have {logits.Length} entries, the vocabulary {config.VocabSize}", nameof(logits));
        CheckTokens(tokens);
        Cache.SetLength(slot, 0);

        tape.Reset();
        int dim = config.Dim, kvDim = config.KvDim;
        var hidden = tape.Allocate(1, count, dim); // [1, tokens, dim]
        for (int t = 0; t < count; t++) model.TokenEmbedding.Span.Slice(tokens[t] * dim, dim).CopyTo(hidden.Span.Slice(t * dim, dim));
        for (int layer = 0; layer < config.Layers; layer++)
        {
            var block = model.Blocks[layer];
            var attention = block.Attention;
            var h = tape.RmsNorm(hidden, attention.Norm, config.NormEps); // [1, tokens, dim]
            var q = tape.MatMul(h, attention.Query, transposeW: true); // [1, tokens, heads·headDim]
            var k = tape.MatMul(h, attention.Key, transposeW: true); // [1, tokens, kvHeads·headDim]
            var v = tape.MatMul(h, attention.Value, transposeW: true); // [1, tokens, kvHeads·headDim]
            q = tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta); // [1, tokens, heads·headDim]
            k = tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta); // [1, tokens, kvHeads·headDim]
            k.Span.CopyTo(new Span<float>(Cache.KeyRow(layer, slot, 0), count * kvDim));
            v.Span.CopyTo(new Span<float>(Cache.ValueRow(layer, slot, 0), count * kvDim));
            var a = tape.CausalAttention(q, k, v, config.Heads, config.KvHeads); // [1, tokens, heads·headDim]
            hidden = tape.Add(hidden, tape.MatMul(a, attention.Output, transposeW: true)); // [1, tokens, dim]
            hidden = tape.Add(hidden, block.Mlp.Forward(tape, hidden)); // [1, tokens, dim]
        }
        // Only the last position's logits are needed: norm and LM head on one row.
        float* last = hidden.Pointer + (long)(count - 1) * dim;
        RmsNormRows(last, model.FinalNorm.Pointer, 1, dim, config.NormEps, normed.Pointer);
        fixed (float* output = logits)
            Gemv.Multiply(normed.Pointer, 1, dim, model.LmHead.Pointer, config.VocabSize, output, compute);
        Cache.SetLength(slot, count);
        ProcessedRows += count;
        AttentionDotProducts += (long)config.Layers * config.Heads * count * (count + 1) / 2;
    }

    public void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int rows = slots.Length;
        if (rows == 0) return;
        if (tokens.Length != rows) throw new ArgumentException($"decode got {tokens.Length} tokens for {rows} slots", nameof(tokens));
        if (rows > SlotCount) throw new ArgumentException($"decode got {rows} slots, the decoder has {SlotCount}", nameof(slots));
        if (logits.Length < (long)rows * config.VocabSize)
            throw new ArgumentException($"logits have {logits.Length} entries, {rows} rows need {rows}x{config.VocabSize}", nameof(logits));
        CheckTokens(tokens);
        step++;
        for (int i = 0; i < rows; i++)
        {
            int slot = slots[i];
            CheckSlot(slot);
            if (stepOf[slot] == step) throw new ArgumentException($"slot {slot} appears twice in one decode step", nameof(slots));
            stepOf[slot] = step;
            int length = Cache.Length(slot);
            if (length == 0) throw new ArgumentException($"slot {slot} has no sequence (prefill it first)", nameof(slots));
            if (length >= ContextLength) throw new ArgumentException($"slot {slot} is full: its context of {ContextLength} tokens is used up", nameof(slots));
            positions[i] = length;
        }

        int dim = config.Dim, kvDim = config.KvDim, hiddenDim = config.HiddenDim;
        for (int i = 0; i < rows; i++) model.TokenEmbedding.Span.Slice(tokens[i] * dim, dim).CopyTo(x.Span.Slice(i * dim, dim));
        fixed (int* position = positions)
        {
            for (int layer = 0; layer < config.Layers; layer++)
            {
                var block = model.Blocks[layer];
                var attention = block.Attention;
                RmsNormRows(x.Pointer, attention.Norm.Pointer, rows, dim, config.NormEps, normed.Pointer);
                Gemv.Multiply(normed.Pointer, rows, dim,
                    attention.Query.Pointer, queryDim, query.Pointer,
                    attention.Key.Pointer, kvDim, key.Pointer,
                    attention.Value.Pointer, kvDim, value.Pointer, compute);
                RopeOps.RopeInPlace(query.Pointer, position, rows, config.Heads, config.HeadDim, config.RopeTheta);
                RopeOps.RopeInPlace(key.Pointer, position, rows, config.KvHeads, config.HeadDim, config.RopeTheta);
                for (int i = 0; i < rows; i++)
                {
                    new Span<float>(key.Pointer + (long)i * kvDim, kvDim).CopyTo(new Span<float>(Cache.KeyRow(layer, slots[i], positions[i]), kvDim));
                    new Span<float>(value.Pointer + (long)i * kvDim, kvDim).CopyTo(new Span<float>(Cache.ValueRow(layer, slots[i], positions[i]), kvDim));
                }
                fixed (int* slot = slots) Attend(layer, slot, position, rows);
                Gemv.Multiply(attended.Pointer, rows, queryDim, attention.Output.Pointer, dim, branch.Pointer, compute);
                AddInPlace(x.Pointer, branch.Pointer, rows * dim);

                var mlp = block.Mlp;
                RmsNormRows(x.Pointer, mlp.Norm.Pointer, rows, dim, config.NormEps, normed.Pointer);
                Gemv.Multiply(normed.Pointer, rows, dim,
                    mlp.Gate.Pointer, hiddenDim, gate.Pointer,
                    mlp.Up.Pointer, hiddenDim, up.Pointer,
                    null, 0, null, compute);
                SwiGluInPlace(gate.Pointer, up.Pointer, rows * hiddenDim);
                Gemv.Multiply(gate.Pointer, rows, hiddenDim, mlp.Down.Pointer, dim, branch.Pointer, compute);
                AddInPlace(x.Pointer, branch.Pointer, rows * dim);
            }
        }
        RmsNormRows(x.Pointer, model.FinalNorm.Pointer, rows, dim, config.NormEps, normed.Pointer);
        fixed (float* output = logits)
            Gemv.Multiply(normed.Pointer, rows, dim, model.LmHead.Pointer, config.VocabSize, output, compute);

        long attendedPositions = 0;
        for (int i = 0; i < rows; i++)
        {
            Cache.SetLength(slots[i], positions[i] + 1);
            attendedPositions += positions[i] + 1;
        }
        ProcessedRows += rows;
        AttentionDotProducts += (long)config.Layers * config.Heads * attendedPositions;
    }

    public void Release(int slot)
    {
        CheckSlot(slot);
        Cache.SetLength(slot, 0);
    }

    public void Dispose() { }

    /// <summary>
    /// Each row's query attends to its slot's cache (the new token included). With at least as many rows
    /// as threads the rows run in parallel; otherwise each row's heads do.
    /// </summary>
    void Attend(int layer, int* slots, int* position, int rows)
    {
        var job = attentionJob;
        job.Set(this, layer, slots, position);
        if (rows >= compute.ThreadCount) compute.Run(rows, job);
        else for (int i = 0; i < rows; i++) job.Execute(i);
    }

    sealed class AttentionJob : IParallelWork
    {
        TransformerDecoder? owner;
        int layer;
        int* slots, positions;

        public void Set(TransformerDecoder owner, int layer, int* slots, int* positions)
        {
            this.owner = owner; this.layer = layer; this.slots = slots; this.positions = positions;
        }

        public void Execute(int row)
        {
            var d = owner!;
            var c = d.config;
            int slot = slots[row];
            AttentionKernels.Decode(d.query.Pointer + (long)row * d.queryDim, d.Cache.KeyRow(layer, slot, 0), d.Cache.ValueRow(layer, slot, 0),
                positions[row] + 1, c.Heads, c.KvHeads, c.HeadDim, d.attended.Pointer + (long)row * d.queryDim, d.compute);
        }
    }

    /// <summary>y[r] = x[r] · rsqrt(mean(x[r]²) + eps) ⊙ weight for each of <paramref name="rows"/> rows of <paramref name="dim"/>.</summary>
    static void RmsNormRows(float* x, float* weight, int rows, int dim, float eps, float* y)
    {
        var w = new ReadOnlySpan<float>(weight, dim);
        for (int r = 0; r < rows; r++)
        {
            var xRow = new ReadOnlySpan<float>(x + (long)r * dim, dim);
            var yRow = new Span<float>(y + (long)r * dim, dim);
            float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xRow) / dim + eps);
            TensorPrimitives.Multiply(xRow, scale, yRow);
            TensorPrimitives.Multiply(yRow, w, yRow);
        }
    }

    static void AddInPlace(float* x, float* y, int length)
    {
        var target = new Span<float>(x, length);
        TensorPrimitives.Add(target, new ReadOnlySpan<float>(y, length), target);
    }

    /// <summary>gate = silu(gate) ⊙ up = gate · σ(gate) · up.</summary>
    static void SwiGluInPlace(float* gate, float* up, int length)
    {
        var g = new Span<float>(gate, length);
        var u = new Span<float>(up, length);
        // up ← up ⊙ gate, then gate ← σ(gate) ⊙ up: two passes, no scratch buffer.
        TensorPrimitives.Multiply(u, g, u);
        TensorPrimitives.Sigmoid(g, g);
        TensorPrimitives.Multiply(g, u, g);
    }

    void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)SlotCount) throw new ArgumentException($"slot {slot} is outside [0, {SlotCount})");
    }

    void CheckTokens(ReadOnlySpan<int> tokens)
    {
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)config.VocabSize)
                throw new ArgumentException($"token id {tokens[i]} at position {i} is outside the vocabulary [0, {config.VocabSize})");
    }
}
