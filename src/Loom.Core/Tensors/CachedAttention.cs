namespace Loom.Tensors;

/// <summary>Causal grouped-query attention of new tokens over a key/value cache (inference: nothing is recorded).</summary>
public static class CachedAttentionOps
{
    /// <summary>
    /// Appends the new tokens' keys and values to the cache, then lets each new query attend to its own
    /// sequence up to and including its position. Batch row b is the sequence in cache slot
    /// <paramref name="slots"/>[b]; its token t sits at position <paramref name="starts"/>[b] + t. Sequences
    /// that all start at 0 (a prompt) run the flash kernel of <see cref="AttentionOps.CausalAttention"/> over
    /// the new tokens; so does a prompt continued in one sequence from a query-block boundary (a chunk of a prompt
    /// prefilled in slices), over its slot, with the very arithmetic of the whole prompt's pass. Others (a decode
    /// step) run one query at a time over their slot. With a <paramref name="slidingWindow"/> above 0 a query at position p
    /// attends to positions p − slidingWindow + 1 .. p only.
    /// </summary>
    /// <param name="q">Queries, [batch, tokens, heads·headDim], rotated to their positions.</param>
    /// <param name="k">New keys, [batch, tokens, kvHeads·headDim], rotated to their positions.</param>
    /// <param name="v">New values, [batch, tokens, kvHeads·headDim].</param>
    /// <param name="keyCache">[slots, maxTokens, kvHeads·headDim].</param>
    /// <param name="valueCache">[slots, maxTokens, kvHeads·headDim].</param>
    /// <param name="slots">At least batch entries.</param>
    /// <param name="starts">At least batch entries.</param>
    /// <returns>[batch, tokens, heads·headDim].</returns>
    public static unsafe Tensor CachedAttention(this Tape tape, Tensor q, Tensor k, Tensor v, Tensor keyCache, Tensor valueCache,
        int[] slots, int[] starts, int heads, int kvHeads, int slidingWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        if (tape.NeedsGrad(q, k, v)) throw new InvalidOperationException("attention over a KV cache runs in inference only (Tape.Recording false)");
        if (q.Rank != 3 || k.Rank != 3 || !k.SameShape(v) || q.Dim(0) != k.Dim(0) || q.Dim(1) != k.Dim(1))
            throw new ArgumentException($"cached attention: q, k, v must be [batch, tokens, channels] alike, got {q.ShapeText}, {k.ShapeText}, {v.ShapeText}");
        if (keyCache.Rank != 3 || !keyCache.SameShape(valueCache) || keyCache.Dim(2) != k.Dim(2))
            throw new ArgumentException($"cached attention: caches {keyCache.ShapeText} and {valueCache.ShapeText} do not hold rows of k {k.ShapeText}");
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0 || q.Dim(2) % heads != 0 || k.Dim(2) != kvHeads * (q.Dim(2) / heads))
            throw new ArgumentException($"cached attention: {heads} heads and {kvHeads} kv heads do not fit q {q.ShapeText} and k {k.ShapeText}");
        int batch = q.Dim(0), tokens = q.Dim(1), kvDim = k.Dim(2), slotCount = keyCache.Dim(0), maxTokens = keyCache.Dim(1);
        if (slots.Length < batch || starts.Length < batch) throw new ArgumentException($"cached attention: {slots.Length} slots and {starts.Length} starts for a batch of {batch}");
        bool fromStart = true;
        for (int b = 0; b < batch; b++)
        {
            if ((uint)slots[b] >= (uint)slotCount) throw new ArgumentException($"cached attention: slot {slots[b]} is outside [0, {slotCount})", nameof(slots));
            if (starts[b] < 0 || starts[b] + tokens > maxTokens)
                throw new ArgumentException($"cached attention: positions [{starts[b]}, {starts[b] + tokens}) do not fit a slot of {maxTokens}", nameof(starts));
            fromStart &= starts[b] == 0;
            long source = (long)b * tokens * kvDim, target = ((long)slots[b] * maxTokens + starts[b]) * kvDim;
            k.Span.Slice((int)source, tokens * kvDim).CopyTo(keyCache.Span.Slice((int)target, tokens * kvDim));
            v.Span.Slice((int)source, tokens * kvDim).CopyTo(valueCache.Span.Slice((int)target, tokens * kvDim));
        }
        if (fromStart) return tape.CausalAttention(q, k, v, heads, kvHeads, slidingWindow); // [batch, tokens, heads·headDim]
        if (batch == 1 && tokens > 1 && starts[0] % AttentionKernels.QueryBlock == 0)
            return Continued(tape, q, keyCache, valueCache, slots[0], starts[0], heads, kvHeads, slidingWindow);

        var output = tape.Allocate(q.Shape); // [batch, tokens, heads·headDim]
        var job = cached ??= new QueryJob();
        job.Set(q.Pointer, keyCache.Pointer, valueCache.Pointer, slots, starts, tokens, maxTokens, heads, kvHeads, q.Dim(2) / heads, slidingWindow, output.Pointer, tape.Compute);
        // With at least as many queries as threads the queries run in parallel; otherwise each query's heads do.
        int queries = batch * tokens;
        if (queries >= tape.Compute.ThreadCount) tape.Compute.Run(queries, job);
        else for (int i = 0; i < queries; i++) job.Execute(i);
        job.Clear();
        return output;
    }

    /// <summary>
    /// The flash kernel's query blocks of new tokens at positions start.. of one slot, over every key of the slot up to
    /// them: the blocks and the arithmetic of a whole prompt's pass, so a prompt prefilled in chunks gets its numbers.
    /// q [1, tokens, heads·headDim] → [1, tokens, heads·headDim].
    /// </summary>
    static unsafe Tensor Continued(Tape tape, Tensor q, Tensor keyCache, Tensor valueCache, int slot, int start, int heads, int kvHeads, int slidingWindow)
    {
        int tokens = q.Dim(1), headDim = q.Dim(2) / heads, total = start + tokens, kvDim = keyCache.Dim(2);
        long slotStart = (long)slot * keyCache.Dim(1) * kvDim, shift = (long)start * q.Dim(2);
        var output = tape.Allocate(q.Shape); // [1, tokens, heads·headDim]
        int keyBlocks = AttentionKernels.KeyBlocks(total);
        var keysTransposed = tape.Allocate(kvHeads, keyBlocks, headDim, AttentionKernels.KeyBlock); // [kvHeads, keyBlocks, headDim, KeyBlock]
        AttentionKernels.Forward(q.Pointer - shift, keyCache.Pointer + slotStart, valueCache.Pointer + slotStart, 1, total, heads, kvHeads, headDim,
            keysTransposed.Pointer, output.Pointer - shift, null, tape.Compute, queryBlocks: keyBlocks - start / AttentionKernels.QueryBlock, window: slidingWindow);
        return output;
    }

    [ThreadStatic] static QueryJob? cached;

    /// <summary>Query i (batch row i / tokens, token i % tokens) over its slot, up to its own position.</summary>
    sealed unsafe class QueryJob : IParallelWork
    {
        float* q, keyCache, valueCache, output;
        int[]? slots, starts;
        int tokens, maxTokens, heads, kvHeads, headDim, window;
        ComputeContext? compute;

        public void Set(float* q, float* keyCache, float* valueCache, int[] slots, int[] starts, int tokens, int maxTokens,
            int heads, int kvHeads, int headDim, int window, float* output, ComputeContext compute)
        {
            this.window = window;
            this.compute = compute;
            this.q = q; this.keyCache = keyCache; this.valueCache = valueCache; this.output = output;
            this.slots = slots; this.starts = starts;
            this.tokens = tokens; this.maxTokens = maxTokens; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
        }

        public void Clear() => (slots, starts, compute) = (null, null, null);

        public void Execute(int index)
        {
            int b = index / tokens, t = index % tokens;
            int end = starts![b] + t + 1, first = window > 0 ? Math.Max(0, end - window) : 0; // the keys this query sees: [first, end)
            long slotStart = ((long)slots![b] * maxTokens + first) * kvHeads * headDim;
            long queryStart = (long)index * heads * headDim;
            AttentionKernels.Decode(q + queryStart, keyCache + slotStart, valueCache + slotStart, end - first,
                heads, kvHeads, headDim, output + queryStart, compute!);
        }
    }
}
