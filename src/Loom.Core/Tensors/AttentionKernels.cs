using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>
/// The kernels behind <see cref="AttentionOps"/>: flash-style causal attention forward and backward
/// over blocks of <see cref="QueryBlock"/> query rows and <see cref="KeyBlock"/> key rows, and
/// single-token decoding over a KV cache. Scores exist only one block at a time, in per-thread scratch.
/// Every work item writes rows that no other item writes and runs the same arithmetic whichever
/// thread takes it, so results are bit-identical for any thread count.
/// </summary>
internal static unsafe partial class AttentionKernels
{
    // Equal sizes: the backward's query tiles start where key blocks start, and the forward has one key
    // block per query block.
    internal const int QueryBlock = 64;
    internal const int KeyBlock = QueryBlock;

    /// <summary>Probabilities below this are set to zero, so subnormal floats never reach the FMA loops.</summary>
    const float TinyProbability = 1e-30f;

    /// <summary>
    /// out = causal softmax(q·kᵀ·scale)·v per head; logSumExp (when not null) gets each row's
    /// log Σ exp(scores), in scaled units, for the backward pass. With <paramref name="queryBlocks"/> only the last
    /// that many query blocks run (a continued prompt: q and output then point where row 0 would be). With a
    /// <paramref name="window"/> above 0 row i sees keys i − window + 1 .. i only (Mistral's sliding window).
    /// </summary>
    internal static void Forward(
        float* q /*[batch, tokens, heads*headDim]*/, float* k /*[batch, tokens, kvHeads*headDim]*/, float* v /*[batch, tokens, kvHeads*headDim]*/,
        int batch, int tokenCount, int heads, int kvHeads, int headDim,
        float* keysTransposed /*[batch*kvHeads, keyBlocks, headDim, KeyBlock]*/,
        float* output /*[batch, tokens, heads*headDim]*/, float* logSumExp /*[batch, heads, tokens] or null*/, ComputeContext compute, int? queryBlocks = null,
        int window = 0)
    {
        if (batch == 0 || tokenCount == 0 || heads == 0) return;
        var job = forwardJob ??= new ForwardJob();
        job.Set(q, k, v, batch, tokenCount, heads, kvHeads, headDim, keysTransposed, output, logSumExp, window);
        int blocks = KeyBlocks(tokenCount);
        // kᵀ tiles once per (batch, kv head, key block), read by every query block and every head of the group.
        job.TransposePass = true;
        compute.Run(batch * kvHeads * blocks, job);
        job.TransposePass = false;
        // Work items run the heaviest (last) query blocks first, so the first items are the last blocks.
        compute.Run(batch * heads * (queryBlocks ?? blocks), job);
    }

    /// <summary>Key blocks covering tokenCount tokens (also the number of query blocks).</summary>
    internal static int KeyBlocks(int tokenCount) => (tokenCount + KeyBlock - 1) / KeyBlock;

    /// <summary>
    /// Accumulates dQ, dK, dV (each may be null when that input needs no gradient) from dOutput,
    /// recomputing the probabilities block by block from q, k and the saved logSumExp.
    /// delta is scratch for rowsum(dOutput ⊙ output). Work items: (batch, kv head), or when those are fewer
    /// than the threads, (batch, kv head, key block) for dK/dV then (batch, head, query block) for dQ.
    /// <paramref name="window"/> as in <see cref="Forward"/>.
    /// </summary>
    internal static void Backward(
        float* q /*[batch, tokens, heads*headDim]*/, float* k /*[batch, tokens, kvHeads*headDim]*/, float* v /*[batch, tokens, kvHeads*headDim]*/,
        float* output /*[batch, tokens, heads*headDim]*/, float* dOutput /*[batch, tokens, heads*headDim]*/, float* logSumExp /*[batch, heads, tokens]*/,
        int batch, int tokenCount, int heads, int kvHeads, int headDim,
        float* delta /*[batch, heads, tokens]*/, float* dQ /*like q*/, float* dK /*like k*/, float* dV /*like v*/, ComputeContext compute, int window = 0)
    {
        if (batch == 0 || tokenCount == 0 || heads == 0) return;
        var job = backwardJob ??= new BackwardJob();
        job.Set(q, k, v, output, dOutput, logSumExp, batch, tokenCount, heads, kvHeads, headDim, delta, dQ, dK, dV, window);
        if (batch * kvHeads >= compute.ThreadCount)
        {
            job.Phase = BackwardPhase.Fused;
            compute.Run(batch * kvHeads, job);
            return;
        }
        // Too few (batch, kv head) pairs to keep every thread busy: split dK/dV (by key block) from dQ (by query
        // block) at the cost of recomputing scores and dP once more. The tiles and their order are those of the
        // fused sweep, so the results are bit-identical to it.
        int blocks = (tokenCount + KeyBlock - 1) / KeyBlock;
        job.Phase = BackwardPhase.Delta;
        compute.Run(batch * heads, job);
        job.Phase = BackwardPhase.KeysAndValues;
        compute.Run(batch * kvHeads * blocks, job);
        job.Phase = BackwardPhase.Queries;
        compute.Run(batch * heads * blocks, job);
    }

    /// <summary>One query token attending to all cachedTokens cached keys and values, per head.</summary>
    internal static void Decode(
        float* q /*[heads*headDim]*/, float* kCache /*[cachedTokens, kvHeads*headDim]*/, float* vCache /*[cachedTokens, kvHeads*headDim]*/,
        int cachedTokens, int heads, int kvHeads, int headDim,
        float* output /*[heads*headDim]*/, ComputeContext compute)
    {
        var job = decodeJob ??= new DecodeJob();
        job.Set(q, kCache, vCache, cachedTokens, heads, kvHeads, headDim, output);
        // A short cache is less work than waking the worker threads.
        if ((long)cachedTokens * heads * headDim < 16384)
            for (int h = 0; h < heads; h++) job.Execute(h);
        else
            compute.Run(heads, job);
    }

    [ThreadStatic] static ForwardJob? forwardJob;
    [ThreadStatic] static BackwardJob? backwardJob;
    [ThreadStatic] static DecodeJob? decodeJob;

    sealed class ForwardJob : IParallelWork
    {
        float* q, k, v, keysTransposed, output, logSumExp;
        int batch, tokenCount, heads, kvHeads, headDim, window;
        public bool TransposePass;

        public void Set(float* q, float* k, float* v, int batch, int tokenCount, int heads, int kvHeads, int headDim,
            float* keysTransposed, float* output, float* logSumExp, int window)
        {
            this.q = q; this.k = k; this.v = v; this.keysTransposed = keysTransposed; this.output = output; this.logSumExp = logSumExp;
            this.batch = batch; this.tokenCount = tokenCount; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
            this.window = window;
        }

        public void Execute(int index)
        {
            if (TransposePass)
            {
                int keyBlock = index % KeyBlocks(tokenCount), pair = index / KeyBlocks(tokenCount); // pair = b * kvHeads + g
                int keyStart = keyBlock * KeyBlock;
                long stride = (long)kvHeads * headDim;
                Transpose(k + ((long)(pair / kvHeads) * tokenCount + keyStart) * stride + pair % kvHeads * headDim, stride,
                    Math.Min(KeyBlock, tokenCount - keyStart), headDim, keysTransposed + (long)index * headDim * KeyBlock, KeyBlock);
                return;
            }
            Attend(index);
        }

        void Attend(int index)
        {
            // Heaviest blocks (last query rows, most keys) first, for load balance.
            int headsInBatch = batch * heads;
            int queryBlock = KeyBlocks(tokenCount) - 1 - index / headsInBatch;
            int b = index % headsInBatch / heads, h = index % heads;
            int g = h / (heads / kvHeads);
            long qStride = (long)heads * headDim, kvStride = (long)kvHeads * headDim;
            float* qBase = q + b * tokenCount * qStride + h * headDim;       // row i at qBase + i*qStride
            float* outBase = output + b * tokenCount * qStride + h * headDim;
            float* vBase = v + b * tokenCount * kvStride + g * headDim;
            float* kTBase = keysTransposed + ((long)b * kvHeads + g) * KeyBlocks(tokenCount) * headDim * KeyBlock; // [keyBlocks, headDim, KeyBlock]
            float scale = 1f / MathF.Sqrt(headDim);

            float* scratch = Scratch.Get(RowGroup * KeyBlock + 2 * QueryBlock);
            float* scores = scratch;                        // [RowGroup, KeyBlock]
            float* rowMax = scores + RowGroup * KeyBlock;   // [QueryBlock]
            float* rowSum = rowMax + QueryBlock;            // [QueryBlock]

            int rowStart = queryBlock * QueryBlock;
            int rowCount = Math.Min(QueryBlock, tokenCount - rowStart);
            int rowEnd = rowStart + rowCount;
            for (int r = 0; r < rowCount; r++)
            {
                rowMax[r] = float.NegativeInfinity;
                rowSum[r] = 0;
                new Span<float>(outBase + (rowStart + r) * qStride, headDim).Clear();
            }

            // A sliding window starts at the key block holding the first row's oldest visible key.
            int firstKey = window > 0 ? Math.Max(0, rowStart - window + 1) / KeyBlock * KeyBlock : 0;
            for (int keyStart = firstKey; keyStart < rowEnd; keyStart += KeyBlock)
            {
                int keyCount = Math.Min(KeyBlock, rowEnd - keyStart);
                float* kT = kTBase + (long)(keyStart / KeyBlock) * headDim * KeyBlock; // [headDim, KeyBlock]
                // Rows in groups of RowGroup share every load of kᵀ and v; a group spans the keys its last row sees.
                // Groups start at the first row that sees this key block, so every row sees at least one key.
                for (int groupStart = Math.Max(0, keyStart - rowStart); groupStart < rowCount; groupStart += RowGroup)
                {
                    int groupRows = Math.Min(RowGroup, rowCount - groupStart);
                    int groupValid = Math.Min(keyCount, rowStart + groupStart + groupRows - keyStart);
                    int width = Math.Min((groupValid + 15) & ~15, keyCount);
                    new Span<float>(scores, groupRows * KeyBlock).Clear();
                    AddWeightedRowsMany(qBase + (rowStart + groupStart) * qStride, qStride, 1, groupRows, headDim, kT, KeyBlock, width, scores, KeyBlock);
                    for (int g0 = 0; g0 < groupRows; g0++)
                    {
                        int r = groupStart + g0;
                        int i = rowStart + r;
                        float* p = scores + g0 * KeyBlock;
                        int valid = Math.Min(keyCount, i - keyStart + 1);
                        if (window > 0 && !MaskOutsideWindow(p, i - window + 1 - keyStart, valid, groupValid)) continue;
                        float newMax = MathF.Max(rowMax[r], scale * PaddedMax(p, valid));
                        float blockSum = PaddedExp(p, valid, scale, -newMax);
                        new Span<float>(p + valid, groupValid - valid).Clear();
                        float correction = MathF.Exp(rowMax[r] - newMax);
                        if (correction < TinyProbability) correction = 0;
                        if (correction != 1f)
                        {
                            var o = new Span<float>(outBase + i * qStride, headDim);
                            TensorPrimitives.Multiply(o, correction, o);
                        }
                        rowSum[r] = rowSum[r] * correction + blockSum;
                        rowMax[r] = newMax;
                    }
                    AddWeightedRowsMany(scores, KeyBlock, 1, groupRows, groupValid, vBase + keyStart * kvStride, kvStride, headDim,
                        outBase + (rowStart + groupStart) * qStride, qStride);
                }
            }

            for (int r = 0; r < rowCount; r++)
            {
                int i = rowStart + r;
                var o = new Span<float>(outBase + i * qStride, headDim);
                TensorPrimitives.Multiply(o, 1f / rowSum[r], o);
                if (logSumExp != null) logSumExp[((long)b * heads + h) * tokenCount + i] = rowMax[r] + MathF.Log(rowSum[r]);
            }
        }
    }

    /// <summary>How the backward pass is split into work items.</summary>
    enum BackwardPhase
    {
        /// <summary>One item per (batch, kv head): dQ, dK and dV in one sweep (five block products).</summary>
        Fused,
        /// <summary>Split mode, first pass: delta for each (batch, head).</summary>
        Delta,
        /// <summary>Split mode: one item per (batch, kv head, key block) for dK and dV.</summary>
        KeysAndValues,
        /// <summary>Split mode: one item per (batch, head, query block) for dQ.</summary>
        Queries,
    }

    sealed class BackwardJob : IParallelWork
    {
        float* q, k, v, output, dOutput, logSumExp, delta, dQ, dK, dV;
        int batch, tokenCount, heads, kvHeads, headDim, window;
        public BackwardPhase Phase;

        public void Set(float* q, float* k, float* v, float* output, float* dOutput, float* logSumExp,
            int batch, int tokenCount, int heads, int kvHeads, int headDim, float* delta, float* dQ, float* dK, float* dV, int window)
        {
            this.q = q; this.k = k; this.v = v; this.output = output; this.dOutput = dOutput; this.logSumExp = logSumExp;
            this.batch = batch; this.tokenCount = tokenCount; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
            this.delta = delta; this.dQ = dQ; this.dK = dK; this.dV = dV; this.window = window;
        }

        /// <summary>One past the last query row that sees a key of the block starting at keyStart.</summary>
        int RowEnd(int keyStart, int keyCount) => window > 0 ? Math.Min(tokenCount, keyStart + keyCount - 1 + window) : tokenCount;

        int BlockCount => (tokenCount + KeyBlock - 1) / KeyBlock;

        public void Execute(int index)
        {
            int groupSize = heads / kvHeads;
            switch (Phase)
            {
                case BackwardPhase.Fused:
                {
                    // One (batch, kv head): owns the dK/dV rows of that kv head and the dQ rows of its query heads.
                    int b = index / kvHeads, g = index % kvHeads;
                    for (int h = g * groupSize; h < (g + 1) * groupSize; h++) ComputeDelta(b, h);
                    for (int keyBlock = 0; keyBlock < BlockCount; keyBlock++) KeyBlockSweep(b, g, keyBlock, dQ, dK, dV);
                    break;
                }
                case BackwardPhase.Delta:
                    ComputeDelta(index / heads, index % heads);
                    break;
                case BackwardPhase.KeysAndValues:
                {
                    // Heaviest key blocks (the first: every later query row sees them) first, for load balance.
                    int keyBlock = index / (batch * kvHeads), rest = index % (batch * kvHeads);
                    if (dK != null || dV != null) KeyBlockSweep(rest / kvHeads, rest % kvHeads, keyBlock, null, dK, dV);
                    break;
                }
                case BackwardPhase.Queries:
                {
                    int queryBlock = BlockCount - 1 - index / (batch * heads), rest = index % (batch * heads);
                    int b = rest / heads, h = rest % heads;
                    if (dQ == null) break;
                    float* scratch = Scratch.Get(ScratchFloats);
                    int firstKeyBlock = window > 0 ? Math.Max(0, queryBlock * QueryBlock - window + 1) / KeyBlock : 0;
                    for (int keyBlock = firstKeyBlock; keyBlock <= queryBlock; keyBlock++)
                    {
                        int keyStart = keyBlock * KeyBlock, keyCount = Math.Min(KeyBlock, tokenCount - keyStart);
                        LoadKeyBlock(b, h / groupSize, keyStart, keyCount, scratch);
                        int rowStart = queryBlock * QueryBlock;
                        BlockProducts(b, h, h / groupSize, keyStart, keyCount, rowStart, Math.Min(QueryBlock, tokenCount - rowStart), scratch, dQ, null, null);
                    }
                    break;
                }
            }
        }

        /// <summary>delta_i = rowsum(dO_i ⊙ O_i), the softmax backward's row term, for every row of one (batch, head).</summary>
        void ComputeDelta(int b, int h)
        {
            long qStride = (long)heads * headDim;
            for (int i = 0; i < tokenCount; i++)
            {
                long row = ((long)b * tokenCount + i) * qStride + h * headDim;
                delta[((long)b * heads + h) * tokenCount + i] = TensorPrimitives.Dot(
                    new ReadOnlySpan<float>(dOutput + row, headDim), new ReadOnlySpan<float>(output + row, headDim));
            }
        }

        int ScratchFloats => 2 * headDim * KeyBlock + 3 * QueryBlock * KeyBlock + 2 * KeyBlock * headDim;

        /// <summary>One key block of one (batch, kv head) against every later query row of the group's heads; adds its dK/dV rows once.</summary>
        void KeyBlockSweep(int b, int g, int keyBlock, float* dQ, float* dK, float* dV)
        {
            int groupSize = heads / kvHeads;
            long kvStride = (long)kvHeads * headDim;
            int keyStart = keyBlock * KeyBlock, keyCount = Math.Min(KeyBlock, tokenCount - keyStart);
            float* scratch = Scratch.Get(ScratchFloats);
            float* dKBlock = scratch + 2 * headDim * KeyBlock + 3 * QueryBlock * KeyBlock; // [KeyBlock, headDim]
            float* dVBlock = dKBlock + KeyBlock * headDim;                                  // [KeyBlock, headDim]
            LoadKeyBlock(b, g, keyStart, keyCount, scratch);
            new Span<float>(dKBlock, keyCount * headDim).Clear();
            new Span<float>(dVBlock, keyCount * headDim).Clear();
            for (int h = g * groupSize; h < (g + 1) * groupSize; h++)
                for (int rowStart = keyStart; rowStart < RowEnd(keyStart, keyCount); rowStart += QueryBlock)
                    BlockProducts(b, h, g, keyStart, keyCount, rowStart, Math.Min(QueryBlock, tokenCount - rowStart), scratch,
                        dQ, dK == null ? null : dKBlock, dV == null ? null : dVBlock);
            long kvBatch = (long)b * tokenCount * kvStride + g * headDim;
            for (int c = 0; c < keyCount; c++)
            {
                long row = kvBatch + (keyStart + c) * kvStride;
                if (dK != null)
                {
                    var target = new Span<float>(dK + row, headDim);
                    TensorPrimitives.Add(target, new ReadOnlySpan<float>(dKBlock + c * headDim, headDim), target);
                }
                if (dV != null)
                {
                    var target = new Span<float>(dV + row, headDim);
                    TensorPrimitives.Add(target, new ReadOnlySpan<float>(dVBlock + c * headDim, headDim), target);
                }
            }
        }

        /// <summary>kᵀ and vᵀ of one key block into the scratch's first two [headDim, KeyBlock] slots.</summary>
        void LoadKeyBlock(int b, int g, int keyStart, int keyCount, float* scratch)
        {
            long kvStride = (long)kvHeads * headDim;
            long offset = ((long)b * tokenCount + keyStart) * kvStride + g * headDim;
            Transpose(k + offset, kvStride, keyCount, headDim, scratch, KeyBlock);
            Transpose(v + offset, kvStride, keyCount, headDim, scratch + headDim * KeyBlock, KeyBlock);
        }

        /// <summary>
        /// One (query block, key block) tile of head h: recomputes P from q, k and the log-sum-exp, then
        /// dQ rows += dS·k (into the gradient tensor), dKBlock += dSᵀ·q, dVBlock += Pᵀ·dO (each skipped when null).
        /// </summary>
        void BlockProducts(int b, int h, int g, int keyStart, int keyCount, int rowStart, int rowCount, float* scratch,
            float* dQ, float* dKBlock, float* dVBlock)
        {
            long qStride = (long)heads * headDim, kvStride = (long)kvHeads * headDim;
            long qBatch = (long)b * tokenCount * qStride + h * headDim;
            float* qBase = q + qBatch, dOBase = dOutput + qBatch;
            float* kBase = k + (long)b * tokenCount * kvStride + g * headDim;
            float* lse = logSumExp + ((long)b * heads + h) * tokenCount;
            float* rowDelta = delta + ((long)b * heads + h) * tokenCount;
            float scale = 1f / MathF.Sqrt(headDim);
            int blockFloats = QueryBlock * KeyBlock;
            float* kT = scratch;                                // [headDim, KeyBlock]
            float* vT = kT + headDim * KeyBlock;                // [headDim, KeyBlock]
            float* probs = vT + headDim * KeyBlock;             // [QueryBlock, KeyBlock]
            float* dScores = probs + blockFloats;               // [QueryBlock, KeyBlock], scaled
            float* dProbs = dScores + blockFloats;              // [QueryBlock, KeyBlock]

            // Scores and dP = dO·vᵀ for the tile, row groups sharing loads; each group spans the keys its last row sees.
            new Span<float>(probs, rowCount * KeyBlock).Clear();
            new Span<float>(dProbs, rowCount * KeyBlock).Clear();
            for (int groupStart = 0; groupStart < rowCount; groupStart += RowGroup)
            {
                int groupRows = Math.Min(RowGroup, rowCount - groupStart);
                int groupValid = Math.Min(keyCount, rowStart + groupStart + groupRows - keyStart);
                int width = Math.Min((groupValid + 15) & ~15, keyCount);
                AddWeightedRowsMany(qBase + (rowStart + groupStart) * qStride, qStride, 1, groupRows, headDim, kT, KeyBlock, width,
                    probs + groupStart * KeyBlock, KeyBlock);
                AddWeightedRowsMany(dOBase + (rowStart + groupStart) * qStride, qStride, 1, groupRows, headDim, vT, KeyBlock, width,
                    dProbs + groupStart * KeyBlock, KeyBlock);
            }
            for (int r = 0; r < rowCount; r++)
            {
                int i = rowStart + r;
                int valid = Math.Min(keyCount, i - keyStart + 1);
                float* p = probs + r * KeyBlock;
                float* dS = dScores + r * KeyBlock;
                if (window > 0 && !MaskOutsideWindow(p, i - window + 1 - keyStart, valid, keyCount))
                {
                    new Span<float>(dS, keyCount).Clear();
                    continue;
                }
                PaddedExp(p, valid, scale, -lse[i]);
                new Span<float>(p + valid, keyCount - valid).Clear();
                SoftmaxGradient(p, dProbs + r * KeyBlock, keyCount, rowDelta[i], scale, dS);
            }
            if (dQ != null)
                for (int groupStart = 0; groupStart < rowCount; groupStart += RowGroup)
                {
                    int groupRows = Math.Min(RowGroup, rowCount - groupStart);
                    int groupValid = Math.Min(keyCount, rowStart + groupStart + groupRows - keyStart);
                    AddWeightedRowsMany(dScores + groupStart * KeyBlock, KeyBlock, 1, groupRows, groupValid, kBase + keyStart * kvStride, kvStride,
                        headDim, dQ + qBatch + (rowStart + groupStart) * qStride, qStride);
                }
            if (dKBlock == null && dVBlock == null) return;

            for (int c = 0; c < keyCount; c += RowGroup)
            {
                // Rows above the diagonal hold zeros: skip those above the group's first key.
                int columns = Math.Min(RowGroup, keyCount - c);
                int first = Math.Max(0, keyStart + c - rowStart);
                int count = rowCount - first;
                if (count <= 0) continue;
                long rowOffset = (rowStart + first) * qStride;
                if (dVBlock != null)
                    AddWeightedRowsMany(probs + first * KeyBlock + c, 1, KeyBlock, columns, count, dOBase + rowOffset, qStride, headDim,
                        dVBlock + c * headDim, headDim);
                if (dKBlock != null)
                    AddWeightedRowsMany(dScores + first * KeyBlock + c, 1, KeyBlock, columns, count, qBase + rowOffset, qStride, headDim,
                        dKBlock + c * headDim, headDim);
            }
        }
    }

    sealed class DecodeJob : IParallelWork
    {
        float* q, kCache, vCache, output;
        int cachedTokens, heads, kvHeads, headDim;

        public void Set(float* q, float* kCache, float* vCache, int cachedTokens, int heads, int kvHeads, int headDim, float* output)
        {
            this.q = q; this.kCache = kCache; this.vCache = vCache; this.output = output;
            this.cachedTokens = cachedTokens; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
        }

        public void Execute(int h)
        {
            int g = h / (heads / kvHeads);
            long kvStride = (long)kvHeads * headDim;
            float scale = 1f / MathF.Sqrt(headDim);
            float* scores = Scratch.Get(cachedTokens); // [cachedTokens]
            var qRow = new ReadOnlySpan<float>(q + h * headDim, headDim);
            for (int j = 0; j < cachedTokens; j++)
                scores[j] = TensorPrimitives.Dot(qRow, new ReadOnlySpan<float>(kCache + j * kvStride + g * headDim, headDim));
            var s = new Span<float>(scores, cachedTokens);
            float max = scale * TensorPrimitives.Max(s);
            ScaleShift(scores, cachedTokens, scale, -max);
            TensorPrimitives.Exp(s, s);
            float sum = FlushTinyAndSum(scores, cachedTokens);
            var o = new Span<float>(output + h * headDim, headDim);
            o.Clear();
            AddWeightedRows(scores, 1, cachedTokens, vCache + g * headDim, kvStride, headDim, output + h * headDim);
            TensorPrimitives.Multiply(o, 1f / sum, o);
        }
    }

    /// <summary>
    /// A sliding window on one row of block scores: the keys before <paramref name="first"/> (block-relative) get −∞,
    /// so their probabilities come out zero. Returns false, with the row's first <paramref name="width"/> scores cleared,
    /// when the row sees none of the block's <paramref name="valid"/> causal keys.
    /// </summary>
    static bool MaskOutsideWindow(float* scores, int first, int valid, int width)
    {
        if (first <= 0) return true;
        if (first >= valid)
        {
            new Span<float>(scores, width).Clear();
            return false;
        }
        new Span<float>(scores, first).Fill(float.NegativeInfinity);
        return true;
    }

    /// <summary>Rows processed together by <see cref="AddWeightedRowsMany"/> (16 accumulators of 512 bits).</summary>
    internal const int RowGroup = 4;

    /// <summary>
    /// For each r &lt; rowCount: dest[r·destStride ..+width] += Σ_p weights[r·weightStride + p·weightStep] · rows[p·rowStride ..+width]
    /// (a small matrix product, accumulated; weightStride 1 with weightStep n reads the weights transposed); groups of <see cref="RowGroup"/> rows share every load of <paramref name="rows"/>.
    /// </summary>
    internal static void AddWeightedRowsMany(float* weights, long weightStride, long weightStep, int rowCount, int count, float* rows, long rowStride,
        int width, float* dest, long destStride)
    {
        int r = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; r + RowGroup <= rowCount; r += RowGroup)
                AddWeightedRows4(weights + r * weightStride, weightStride, weightStep, count, rows, rowStride, width, dest + r * destStride, destStride);
        for (; r < rowCount; r++)
            AddWeightedRows(weights + r * weightStride, weightStep, count, rows, rowStride, width, dest + r * destStride);
    }

    static void AddWeightedRows4(float* weights, long weightStride, long weightStep, int count, float* rows, long rowStride, int width, float* dest, long destStride)
    {
        float* w0 = weights, w1 = w0 + weightStride, w2 = w1 + weightStride, w3 = w2 + weightStride;
        float* d0 = dest, d1 = d0 + destStride, d2 = d1 + destStride, d3 = d2 + destStride;
        int c = 0;
        for (; c + 64 <= width; c += 64)
        {
            var a00 = Vector512.Load(d0 + c); var a01 = Vector512.Load(d0 + c + 16); var a02 = Vector512.Load(d0 + c + 32); var a03 = Vector512.Load(d0 + c + 48);
            var a10 = Vector512.Load(d1 + c); var a11 = Vector512.Load(d1 + c + 16); var a12 = Vector512.Load(d1 + c + 32); var a13 = Vector512.Load(d1 + c + 48);
            var a20 = Vector512.Load(d2 + c); var a21 = Vector512.Load(d2 + c + 16); var a22 = Vector512.Load(d2 + c + 32); var a23 = Vector512.Load(d2 + c + 48);
            var a30 = Vector512.Load(d3 + c); var a31 = Vector512.Load(d3 + c + 16); var a32 = Vector512.Load(d3 + c + 32); var a33 = Vector512.Load(d3 + c + 48);
            float* row = rows + c;
            for (int p = 0; p < count; p++, row += rowStride)
            {
                var x0 = Vector512.Load(row); var x1 = Vector512.Load(row + 16); var x2 = Vector512.Load(row + 32); var x3 = Vector512.Load(row + 48);
                var w = Vector512.Create(w0[p * weightStep]);
                a00 = Vector512.FusedMultiplyAdd(x0, w, a00); a01 = Vector512.FusedMultiplyAdd(x1, w, a01);
                a02 = Vector512.FusedMultiplyAdd(x2, w, a02); a03 = Vector512.FusedMultiplyAdd(x3, w, a03);
                w = Vector512.Create(w1[p * weightStep]);
                a10 = Vector512.FusedMultiplyAdd(x0, w, a10); a11 = Vector512.FusedMultiplyAdd(x1, w, a11);
                a12 = Vector512.FusedMultiplyAdd(x2, w, a12); a13 = Vector512.FusedMultiplyAdd(x3, w, a13);
                w = Vector512.Create(w2[p * weightStep]);
                a20 = Vector512.FusedMultiplyAdd(x0, w, a20); a21 = Vector512.FusedMultiplyAdd(x1, w, a21);
                a22 = Vector512.FusedMultiplyAdd(x2, w, a22); a23 = Vector512.FusedMultiplyAdd(x3, w, a23);
                w = Vector512.Create(w3[p * weightStep]);
                a30 = Vector512.FusedMultiplyAdd(x0, w, a30); a31 = Vector512.FusedMultiplyAdd(x1, w, a31);
                a32 = Vector512.FusedMultiplyAdd(x2, w, a32); a33 = Vector512.FusedMultiplyAdd(x3, w, a33);
            }
            a00.Store(d0 + c); a01.Store(d0 + c + 16); a02.Store(d0 + c + 32); a03.Store(d0 + c + 48);
            a10.Store(d1 + c); a11.Store(d1 + c + 16); a12.Store(d1 + c + 32); a13.Store(d1 + c + 48);
            a20.Store(d2 + c); a21.Store(d2 + c + 16); a22.Store(d2 + c + 32); a23.Store(d2 + c + 48);
            a30.Store(d3 + c); a31.Store(d3 + c + 16); a32.Store(d3 + c + 32); a33.Store(d3 + c + 48);
        }
        for (; c + 32 <= width; c += 32)
        {
            var a00 = Vector512.Load(d0 + c); var a01 = Vector512.Load(d0 + c + 16);
            var a10 = Vector512.Load(d1 + c); var a11 = Vector512.Load(d1 + c + 16);
            var a20 = Vector512.Load(d2 + c); var a21 = Vector512.Load(d2 + c + 16);
            var a30 = Vector512.Load(d3 + c); var a31 = Vector512.Load(d3 + c + 16);
            float* row = rows + c;
            for (int p = 0; p < count; p++, row += rowStride)
            {
                var x0 = Vector512.Load(row); var x1 = Vector512.Load(row + 16);
                var w = Vector512.Create(w0[p * weightStep]);
                a00 = Vector512.FusedMultiplyAdd(x0, w, a00); a01 = Vector512.FusedMultiplyAdd(x1, w, a01);
                w = Vector512.Create(w1[p * weightStep]);
                a10 = Vector512.FusedMultiplyAdd(x0, w, a10); a11 = Vector512.FusedMultiplyAdd(x1, w, a11);
                w = Vector512.Create(w2[p * weightStep]);
                a20 = Vector512.FusedMultiplyAdd(x0, w, a20); a21 = Vector512.FusedMultiplyAdd(x1, w, a21);
                w = Vector512.Create(w3[p * weightStep]);
                a30 = Vector512.FusedMultiplyAdd(x0, w, a30); a31 = Vector512.FusedMultiplyAdd(x1, w, a31);
            }
            a00.Store(d0 + c); a01.Store(d0 + c + 16);
            a10.Store(d1 + c); a11.Store(d1 + c + 16);
            a20.Store(d2 + c); a21.Store(d2 + c + 16);
            a30.Store(d3 + c); a31.Store(d3 + c + 16);
        }
        for (; c + 16 <= width; c += 16)
        {
            var a0 = Vector512.Load(d0 + c); var a1 = Vector512.Load(d1 + c); var a2 = Vector512.Load(d2 + c); var a3 = Vector512.Load(d3 + c);
            float* row = rows + c;
            for (int p = 0; p < count; p++, row += rowStride)
            {
                var x = Vector512.Load(row);
                a0 = Vector512.FusedMultiplyAdd(x, Vector512.Create(w0[p * weightStep]), a0);
                a1 = Vector512.FusedMultiplyAdd(x, Vector512.Create(w1[p * weightStep]), a1);
                a2 = Vector512.FusedMultiplyAdd(x, Vector512.Create(w2[p * weightStep]), a2);
                a3 = Vector512.FusedMultiplyAdd(x, Vector512.Create(w3[p * weightStep]), a3);
            }
            a0.Store(d0 + c); a1.Store(d1 + c); a2.Store(d2 + c); a3.Store(d3 + c);
        }
        if (c < width)
        {
            AddWeightedRows(w0, weightStep, count, rows + c, rowStride, width - c, d0 + c);
            AddWeightedRows(w1, weightStep, count, rows + c, rowStride, width - c, d1 + c);
            AddWeightedRows(w2, weightStep, count, rows + c, rowStride, width - c, d2 + c);
            AddWeightedRows(w3, weightStep, count, rows + c, rowStride, width - c, d3 + c);
        }
    }

    /// <summary>dest[width] += Σ_p weights[p * weightStep] · rows[p·rowStride .. + width]: a row vector times a matrix, accumulated.</summary>
    internal static void AddWeightedRows(float* weights, long weightStep, int count, float* rows, long rowStride, int width, float* dest)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; c + 64 <= width; c += 64)
            {
                var a0 = Vector512.Load(dest + c); var a1 = Vector512.Load(dest + c + 16);
                var a2 = Vector512.Load(dest + c + 32); var a3 = Vector512.Load(dest + c + 48);
                float* r = rows + c;
                for (int p = 0; p < count; p++, r += rowStride)
                {
                    var w = Vector512.Create(weights[p * weightStep]);
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), w, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 16), w, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 32), w, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 48), w, a3);
                }
                a0.Store(dest + c); a1.Store(dest + c + 16); a2.Store(dest + c + 32); a3.Store(dest + c + 48);
            }
            for (; c + 32 <= width; c += 32)
            {
                var a0 = Vector512.Load(dest + c); var a1 = Vector512.Load(dest + c + 16);
                float* r = rows + c;
                for (int p = 0; p < count; p++, r += rowStride)
                {
                    var w = Vector512.Create(weights[p * weightStep]);
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), w, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 16), w, a1);
                }
                a0.Store(dest + c); a1.Store(dest + c + 16);
            }
            for (; c + 16 <= width; c += 16)
            {
                var a0 = Vector512.Load(dest + c);
                float* r = rows + c;
                for (int p = 0; p < count; p++, r += rowStride)
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), Vector512.Create(weights[p * weightStep]), a0);
                a0.Store(dest + c);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 32 <= width; c += 32)
            {
                var a0 = Vector256.Load(dest + c); var a1 = Vector256.Load(dest + c + 8);
                var a2 = Vector256.Load(dest + c + 16); var a3 = Vector256.Load(dest + c + 24);
                float* r = rows + c;
                for (int p = 0; p < count; p++, r += rowStride)
                {
                    var w = Vector256.Create(weights[p * weightStep]);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(r), w, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 8), w, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 16), w, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 24), w, a3);
                }
                a0.Store(dest + c); a1.Store(dest + c + 8); a2.Store(dest + c + 16); a3.Store(dest + c + 24);
            }
            for (; c + 8 <= width; c += 8)
            {
                var a0 = Vector256.Load(dest + c);
                float* r = rows + c;
                for (int p = 0; p < count; p++, r += rowStride)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(r), Vector256.Create(weights[p * weightStep]), a0);
                a0.Store(dest + c);
            }
        }
        for (; c < width; c++)
        {
            float sum = dest[c];
            float* r = rows + c;
            for (int p = 0; p < count; p++, r += rowStride) sum = MathF.FusedMultiplyAdd(*r, weights[p * weightStep], sum);
            dest[c] = sum;
        }
    }

    /// <summary>
    /// Max of values[0..count), for a buffer readable up to count rounded up to 16 (a block row): the last
    /// vector is read whole and its lanes past count ignored.
    /// </summary>
    static float PaddedMax(float* values, int count)
    {
        if (!Vector512.IsHardwareAccelerated) return TensorPrimitives.Max(new ReadOnlySpan<float>(values, count));
        var max = Vector512.Create(float.NegativeInfinity);
        int i = 0;
        for (; i + 16 <= count; i += 16) max = Vector512.Max(max, Vector512.Load(values + i));
        if (i < count)
        {
            var inside = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count - i)).AsSingle();
            max = Vector512.Max(max, Vector512.ConditionalSelect(inside, Vector512.Load(values + i), Vector512.Create(float.NegativeInfinity)));
        }
        var half = Vector256.Max(max.GetLower(), max.GetUpper());
        var quarter = Vector128.Max(half.GetLower(), half.GetUpper());
        return MathF.Max(MathF.Max(quarter[0], quarter[1]), MathF.Max(quarter[2], quarter[3]));
    }

    /// <summary>
    /// values[i] = exp(values[i] · scale + shift) for i &lt; count, probabilities below <see cref="TinyProbability"/>
    /// set to zero; returns their sum. The buffer must be readable and writable up to count rounded up to 16
    /// (lanes past count become zero).
    /// </summary>
    static float PaddedExp(float* values, int count, float scale, float shift)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            ScaleShift(values, count, scale, shift);
            var span = new Span<float>(values, count);
            TensorPrimitives.Exp(span, span);
            return FlushTinyAndSum(values, count);
        }
        var s = Vector512.Create(scale);
        var t = Vector512.Create(shift);
        var tiny = Vector512.Create(TinyProbability);
        var total = Vector512<float>.Zero;
        for (int i = 0; i < count; i += 16)
        {
            var p = Vector512.Exp(Vector512.FusedMultiplyAdd(Vector512.Load(values + i), s, t));
            var keep = Vector512.GreaterThanOrEqual(p, tiny);
            if (i + 16 > count) keep &= Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count - i)).AsSingle();
            p = Vector512.ConditionalSelect(keep, p, Vector512<float>.Zero);
            p.Store(values + i);
            total += p;
        }
        return Vector512.Sum(total);
    }

    /// <summary>dScores[c] = probs[c] · (dProbs[c] − delta) · scale for c &lt; count (probs already zero past the diagonal).</summary>
    static void SoftmaxGradient(float* probs, float* dProbs, int count, float delta, float scale, float* dScores)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var d = Vector512.Create(delta);
            var s = Vector512.Create(scale);
            for (; c + 16 <= count; c += 16)
                (Vector512.Load(probs + c) * (Vector512.Load(dProbs + c) - d) * s).Store(dScores + c);
        }
        for (; c < count; c++) dScores[c] = probs[c] * (dProbs[c] - delta) * scale;
    }

    /// <summary>values[i] = values[i] · scale + shift.</summary>
    static void ScaleShift(float* values, int count, float scale, float shift)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            var t = Vector512.Create(shift);
            for (; i + 16 <= count; i += 16) Vector512.FusedMultiplyAdd(Vector512.Load(values + i), s, t).Store(values + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            var t = Vector256.Create(shift);
            for (; i + 8 <= count; i += 8) Vector256.FusedMultiplyAdd(Vector256.Load(values + i), s, t).Store(values + i);
        }
        for (; i < count; i++) values[i] = MathF.FusedMultiplyAdd(values[i], scale, shift);
    }

    /// <summary>Sets values below <see cref="TinyProbability"/> to zero and returns the sum of the row.</summary>
    static float FlushTinyAndSum(float* values, int count)
    {
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && count >= 16)
        {
            var tiny = Vector512.Create(TinyProbability);
            var total = Vector512<float>.Zero;
            for (; i + 16 <= count; i += 16)
            {
                var x = Vector512.Load(values + i);
                x = Vector512.ConditionalSelect(Vector512.LessThan(x, tiny), Vector512<float>.Zero, x);
                x.Store(values + i);
                total += x;
            }
            sum = Vector512.Sum(total);
        }
        else if (Vector256.IsHardwareAccelerated && count >= 8)
        {
            var tiny = Vector256.Create(TinyProbability);
            var total = Vector256<float>.Zero;
            for (; i + 8 <= count; i += 8)
            {
                var x = Vector256.Load(values + i);
                x = Vector256.ConditionalSelect(Vector256.LessThan(x, tiny), Vector256<float>.Zero, x);
                x.Store(values + i);
                total += x;
            }
            sum = Vector256.Sum(total);
        }
        for (; i < count; i++)
        {
            if (values[i] < TinyProbability) values[i] = 0;
            sum += values[i];
        }
        return sum;
    }

    /// <summary>destination[c·destinationStride + r] = source[r·sourceStride + c] for r &lt; rows, c &lt; columns.</summary>
    static void Transpose(float* source, long sourceStride, int rows, int columns, float* destination, int destinationStride)
    {
        for (int r = 0; r < rows; r++)
        {
            float* s = source + r * sourceStride;
            for (int c = 0; c < columns; c++) destination[c * destinationStride + r] = s[c];
        }
    }

    /// <summary>Per-thread native scratch, grown on demand and kept for the thread's life (no allocation after warm-up).</summary>
    static class Scratch
    {
        [ThreadStatic] static nint buffer;
        [ThreadStatic] static int length;

        public static float* Get(int floats)
        {
            if (length < floats)
            {
                if (buffer != 0) NativeMemory.AlignedFree((void*)buffer);
                int grown = Math.Max(floats, length * 2);
                buffer = (nint)NativeMemory.AlignedAlloc((nuint)grown * sizeof(float), 64);
                length = grown;
            }
            return (float*)buffer;
        }
    }
}
