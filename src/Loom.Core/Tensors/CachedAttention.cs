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
    /// prefilled in slices), over its slot, with the very arithmetic of the whole prompt's pass. Consecutive queries of one
    /// sequence at any other start (a batch row of many tokens, or batch rows of one token each at successive positions of
    /// one slot: a prompt slice taken along a decode step) attend block by block, each block of cached keys read once for
    /// all of them (<see cref="AttentionKernels.SliceHead"/>); the other queries (a decode step) run one at a time over
    /// their slot. With a <paramref name="slidingWindow"/> above 0 a query at position p attends to positions
    /// p − slidingWindow + 1 .. p only.
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
        var plan = plans ??= new Plan();
        plan.Split(slots, starts, batch, tokens);
        int headDim = q.Dim(2) / heads;
        if (plan.RunCount > 0)
        {
            var runs = runJobs ??= new RunJob();
            runs.Set(q.Pointer, keyCache.Pointer, valueCache.Pointer, plan, maxTokens, heads, kvHeads, headDim, slidingWindow, output.Pointer);
            tape.Compute.Run(runs.Items, runs);
            runs.Clear();
        }
        if (plan.SingleCount > 0)
        {
            var job = cached ??= new QueryJob();
            job.Set(q.Pointer, keyCache.Pointer, valueCache.Pointer, plan.Singles, slots, starts, tokens, maxTokens, heads, kvHeads, headDim, slidingWindow, output.Pointer, tape.Compute);
            // With at least as many queries as threads the queries run in parallel; otherwise each query's heads do.
            int queries = plan.SingleCount;
            if (queries >= tape.Compute.ThreadCount) tape.Compute.Run(queries, job);
            else for (int i = 0; i < queries; i++) job.Execute(i);
            job.Clear();
        }
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
    [ThreadStatic] static RunJob? runJobs;
    [ThreadStatic] static Plan? plans;

    /// <summary>
    /// The queries of a step split into runs (consecutive queries of one sequence at successive positions: a batch row of
    /// many tokens, or successive batch rows of one token in one slot) and single queries. Arrays grow on demand and are
    /// kept, so a step allocates nothing after warm-up.
    /// </summary>
    sealed class Plan
    {
        public int[] Singles = [];   // [queries] flat query index (batch row · tokens + token) of each single query
        public int[] RunFirst = [];  // [runs] flat query index of the run's first query
        public int[] RunSlot = [];   // [runs]
        public int[] RunStart = [];  // [runs] position of the run's first query
        public int[] RunLength = []; // [runs]
        public int SingleCount, RunCount;

        public void Split(int[] slots, int[] starts, int batch, int tokens)
        {
            SingleCount = RunCount = 0;
            if (Singles.Length < batch * tokens) Singles = new int[batch * tokens];
            if (RunFirst.Length < batch) (RunFirst, RunSlot, RunStart, RunLength) = (new int[batch], new int[batch], new int[batch], new int[batch]);
            if (tokens > 1)
            {
                for (int b = 0; b < batch; b++) AddRun(b * tokens, slots[b], starts[b], tokens);
                return;
            }
            for (int b = 0; b < batch;)
            {
                int length = 1;
                while (b + length < batch && slots[b + length] == slots[b] && starts[b + length] == starts[b] + length) length++;
                if (length > 1) AddRun(b, slots[b], starts[b], length);
                else Singles[SingleCount++] = b;
                b += length;
            }
        }

        void AddRun(int first, int slot, int start, int length)
        {
            RunFirst[RunCount] = first; RunSlot[RunCount] = slot; RunStart[RunCount] = start; RunLength[RunCount] = length;
            RunCount++;
        }
    }

    /// <summary>One work item per (run, block of up to QueryBlock queries, head); the last blocks (most keys) first.</summary>
    sealed unsafe class RunJob : IParallelWork
    {
        float* q, keyCache, valueCache, output;
        Plan? plan;
        int maxTokens, heads, kvHeads, headDim, window;

        public int Items { get; private set; }

        public void Set(float* q, float* keyCache, float* valueCache, Plan plan, int maxTokens, int heads, int kvHeads, int headDim, int window, float* output)
        {
            this.q = q; this.keyCache = keyCache; this.valueCache = valueCache; this.output = output;
            this.plan = plan; this.maxTokens = maxTokens; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim; this.window = window;
            Items = 0;
            for (int r = 0; r < plan.RunCount; r++) Items += Blocks(plan.RunLength[r]) * heads;
        }

        public void Clear() => plan = null;

        static int Blocks(int length) => (length + AttentionKernels.QueryBlock - 1) / AttentionKernels.QueryBlock;

        public void Execute(int index)
        {
            var plan = this.plan!;
            int run = 0;
            while (index >= Blocks(plan.RunLength[run]) * heads) index -= Blocks(plan.RunLength[run++]) * heads;
            int length = plan.RunLength[run];
            int block = Blocks(length) - 1 - index / heads, head = index % heads;
            int rowStart = block * AttentionKernels.QueryBlock;
            long queryRows = (long)plan.RunFirst[run] * heads * headDim, slotStart = (long)plan.RunSlot[run] * maxTokens * kvHeads * headDim;
            AttentionKernels.SliceHead(q + queryRows, keyCache + slotStart, valueCache + slotStart, plan.RunStart[run], rowStart,
                Math.Min(AttentionKernels.QueryBlock, length - rowStart), head, heads, kvHeads, headDim, window, output + queryRows);
        }
    }

    /// <summary>Query queries[i] (flat: batch row · tokens + token) over its slot, up to its own position.</summary>
    sealed unsafe class QueryJob : IParallelWork
    {
        float* q, keyCache, valueCache, output;
        int[]? queries, slots, starts;
        int tokens, maxTokens, heads, kvHeads, headDim, window;
        ComputeContext? compute;

        public void Set(float* q, float* keyCache, float* valueCache, int[] queries, int[] slots, int[] starts, int tokens, int maxTokens,
            int heads, int kvHeads, int headDim, int window, float* output, ComputeContext compute)
        {
            this.window = window;
            this.compute = compute;
            this.q = q; this.keyCache = keyCache; this.valueCache = valueCache; this.output = output;
            this.queries = queries; this.slots = slots; this.starts = starts;
            this.tokens = tokens; this.maxTokens = maxTokens; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
        }

        public void Clear() => (queries, slots, starts, compute) = (null, null, null, null);

        public void Execute(int i)
        {
            int index = queries![i];
            int b = index / tokens, t = index % tokens;
            int end = starts![b] + t + 1, first = window > 0 ? Math.Max(0, end - window) : 0; // the keys this query sees: [first, end)
            long slotStart = ((long)slots![b] * maxTokens + first) * kvHeads * headDim;
            long queryStart = (long)index * heads * headDim;
            AttentionKernels.Decode(q + queryStart, keyCache + slotStart, valueCache + slotStart, end - first,
                heads, kvHeads, headDim, output + queryStart, compute!);
        }
    }
}
