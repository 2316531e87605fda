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
internal static unsafe class AttentionKernels
{
    internal const int QueryBlock = 64;
    internal const int KeyBlock = 64;

    /// <summary>Probabilities below this are set to zero, so subnormal floats never reach the FMA loops.</summary>
    const float TinyProbability = 1e-30f;

    /// <summary>
    /// out = causal softmax(q·kᵀ·scale)·v per head; logSumExp (when not null) gets each row's
    /// log Σ exp(scores), in scaled units, for the backward pass.
    /// </summary>
    internal static void Forward(
        float* q /*[batch, tokens, heads*headDim]*/, float* k /*[batch, tokens, kvHeads*headDim]*/, float* v /*[batch, tokens, kvHeads*headDim]*/,
        int batch, int tokenCount, int heads, int kvHeads, int headDim,
        float* output /*[batch, tokens, heads*headDim]*/, float* logSumExp /*[batch, heads, tokens] or null*/)
    {
        if (batch == 0 || tokenCount == 0 || heads == 0) return;
        var job = forwardJob ??= new ForwardJob();
        job.Set(q, k, v, batch, tokenCount, heads, kvHeads, headDim, output, logSumExp);
        int queryBlocks = (tokenCount + QueryBlock - 1) / QueryBlock;
        WorkerPool.Run(batch * heads * queryBlocks, job);
    }

    /// <summary>
    /// Accumulates dQ, dK, dV (each may be null when that input needs no gradient) from dOutput,
    /// recomputing the probabilities block by block from q, k and the saved logSumExp.
    /// delta is scratch for rowsum(dOutput ⊙ output).
    /// </summary>
    internal static void Backward(
        float* q, float* k, float* v, float* output, float* dOutput, float* logSumExp /*[batch, heads, tokens]*/,
        int batch, int tokenCount, int heads, int kvHeads, int headDim,
        float* delta /*[batch, heads, tokens]*/, float* dQ, float* dK, float* dV)
    {
        if (batch == 0 || tokenCount == 0 || heads == 0) return;
        var job = backwardJob ??= new BackwardJob();
        job.Set(q, k, v, output, dOutput, logSumExp, batch, tokenCount, heads, kvHeads, headDim, delta, dQ, dK, dV);
        WorkerPool.Run(batch * kvHeads, job);
    }

    /// <summary>One query token attending to all cachedTokens cached keys and values, per head.</summary>
    internal static void Decode(
        float* q /*[heads*headDim]*/, float* kCache /*[cachedTokens, kvHeads*headDim]*/, float* vCache /*[cachedTokens, kvHeads*headDim]*/,
        int cachedTokens, int heads, int kvHeads, int headDim,
        float* output /*[heads*headDim]*/)
    {
        var job = decodeJob ??= new DecodeJob();
        job.Set(q, kCache, vCache, cachedTokens, heads, kvHeads, headDim, output);
        // A short cache is less work than waking the worker threads.
        if ((long)cachedTokens * heads * headDim < 16384)
            for (int h = 0; h < heads; h++) job.Execute(h);
        else
            WorkerPool.Run(heads, job);
    }

    [ThreadStatic] static ForwardJob? forwardJob;
    [ThreadStatic] static BackwardJob? backwardJob;
    [ThreadStatic] static DecodeJob? decodeJob;

    sealed class ForwardJob : IParallelWork
    {
        float* q, k, v, output, logSumExp;
        int batch, tokenCount, heads, kvHeads, headDim;

        public void Set(float* q, float* k, float* v, int batch, int tokenCount, int heads, int kvHeads, int headDim, float* output, float* logSumExp)
        {
            this.q = q; this.k = k; this.v = v; this.output = output; this.logSumExp = logSumExp;
            this.batch = batch; this.tokenCount = tokenCount; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
        }

        public void Execute(int index)
        {
            // Heaviest blocks (last query rows, most keys) first, for load balance.
            int headsInBatch = batch * heads;
            int queryBlocks = (tokenCount + QueryBlock - 1) / QueryBlock;
            int queryBlock = queryBlocks - 1 - index / headsInBatch;
            int b = index % headsInBatch / heads, h = index % heads;
            int g = h / (heads / kvHeads);
            long qStride = (long)heads * headDim, kvStride = (long)kvHeads * headDim;
            float* qBase = q + b * tokenCount * qStride + h * headDim;       // row i at qBase + i*qStride
            float* outBase = output + b * tokenCount * qStride + h * headDim;
            float* kBase = k + b * tokenCount * kvStride + g * headDim;
            float* vBase = v + b * tokenCount * kvStride + g * headDim;
            float scale = 1f / MathF.Sqrt(headDim);

            float* scratch = Scratch.Get(headDim * KeyBlock + KeyBlock + 2 * QueryBlock);
            float* kT = scratch;                        // [headDim, KeyBlock]
            float* scores = kT + headDim * KeyBlock;    // [KeyBlock]
            float* rowMax = scores + KeyBlock;          // [QueryBlock]
            float* rowSum = rowMax + QueryBlock;        // [QueryBlock]

            int rowStart = queryBlock * QueryBlock;
            int rowCount = Math.Min(QueryBlock, tokenCount - rowStart);
            int rowEnd = rowStart + rowCount;
            for (int r = 0; r < rowCount; r++)
            {
                rowMax[r] = float.NegativeInfinity;
                rowSum[r] = 0;
                new Span<float>(outBase + (rowStart + r) * qStride, headDim).Clear();
            }

            for (int keyStart = 0; keyStart < rowEnd; keyStart += KeyBlock)
            {
                int keyCount = Math.Min(KeyBlock, rowEnd - keyStart);
                Transpose(kBase + keyStart * kvStride, kvStride, keyCount, headDim, kT, KeyBlock);
                for (int r = 0; r < rowCount; r++)
                {
                    int i = rowStart + r;
                    int valid = Math.Min(keyCount, i - keyStart + 1);
                    if (valid <= 0) continue;
                    int width = Math.Min((valid + 15) & ~15, keyCount);
                    new Span<float>(scores, width).Clear();
                    AddWeightedRows(qBase + i * qStride, headDim, kT, KeyBlock, width, scores);
                    var s = new Span<float>(scores, valid);
                    float newMax = MathF.Max(rowMax[r], scale * TensorPrimitives.Max(s));
                    ScaleShift(scores, valid, scale, -newMax);
                    TensorPrimitives.Exp(s, s);
                    float blockSum = FlushTinyAndSum(scores, valid);
                    float correction = MathF.Exp(rowMax[r] - newMax);
                    float* outRow = outBase + i * qStride;
                    if (correction < TinyProbability) correction = 0;
                    if (correction != 1f)
                    {
                        var o = new Span<float>(outRow, headDim);
                        TensorPrimitives.Multiply(o, correction, o);
                    }
                    rowSum[r] = rowSum[r] * correction + blockSum;
                    rowMax[r] = newMax;
                    AddWeightedRows(scores, valid, vBase + keyStart * kvStride, kvStride, headDim, outRow);
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

    sealed class BackwardJob : IParallelWork
    {
        float* q, k, v, output, dOutput, logSumExp, delta, dQ, dK, dV;
        int batch, tokenCount, heads, kvHeads, headDim;

        public void Set(float* q, float* k, float* v, float* output, float* dOutput, float* logSumExp,
            int batch, int tokenCount, int heads, int kvHeads, int headDim, float* delta, float* dQ, float* dK, float* dV)
        {
            this.q = q; this.k = k; this.v = v; this.output = output; this.dOutput = dOutput; this.logSumExp = logSumExp;
            this.batch = batch; this.tokenCount = tokenCount; this.heads = heads; this.kvHeads = kvHeads; this.headDim = headDim;
            this.delta = delta; this.dQ = dQ; this.dK = dK; this.dV = dV;
        }

        /// <summary>One (batch, kv head): owns the dK/dV rows of that kv head and the dQ rows of its query heads.</summary>
        public void Execute(int index)
        {
            int b = index / kvHeads, g = index % kvHeads;
            int groupSize = heads / kvHeads;
            long qStride = (long)heads * headDim, kvStride = (long)kvHeads * headDim;
            long qBatch = b * tokenCount * qStride, kvBatch = b * tokenCount * kvStride + g * headDim;
            float* kBase = k + kvBatch, vBase = v + kvBatch;
            float scale = 1f / MathF.Sqrt(headDim);

            int blockFloats = QueryBlock * KeyBlock;
            float* scratch = Scratch.Get(2 * headDim * KeyBlock + 4 * blockFloats + KeyBlock + 2 * KeyBlock * headDim);
            float* kT = scratch;                                // [headDim, KeyBlock]
            float* vT = kT + headDim * KeyBlock;                // [headDim, KeyBlock]
            float* probs = vT + headDim * KeyBlock;             // [QueryBlock, KeyBlock]
            float* dScores = probs + blockFloats;               // [QueryBlock, KeyBlock], scaled
            float* probsT = dScores + blockFloats;              // [KeyBlock, QueryBlock]
            float* dScoresT = probsT + blockFloats;             // [KeyBlock, QueryBlock]
            float* dProbs = dScoresT + blockFloats;             // [KeyBlock]
            float* dKBlock = dProbs + KeyBlock;                 // [KeyBlock, headDim]
            float* dVBlock = dKBlock + KeyBlock * headDim;      // [KeyBlock, headDim]

            // delta_i = rowsum(dO_i ⊙ O_i), the softmax backward's row term.
            for (int h = g * groupSize; h < (g + 1) * groupSize; h++)
                for (int i = 0; i < tokenCount; i++)
                {
                    long row = qBatch + i * qStride + h * headDim;
                    delta[((long)b * heads + h) * tokenCount + i] = TensorPrimitives.Dot(
                        new ReadOnlySpan<float>(dOutput + row, headDim), new ReadOnlySpan<float>(output + row, headDim));
                }

            for (int keyStart = 0; keyStart < tokenCount; keyStart += KeyBlock)
            {
                int keyCount = Math.Min(KeyBlock, tokenCount - keyStart);
                Transpose(kBase + keyStart * kvStride, kvStride, keyCount, headDim, kT, KeyBlock);
                Transpose(vBase + keyStart * kvStride, kvStride, keyCount, headDim, vT, KeyBlock);
                new Span<float>(dKBlock, keyCount * headDim).Clear();
                new Span<float>(dVBlock, keyCount * headDim).Clear();

                for (int h = g * groupSize; h < (g + 1) * groupSize; h++)
                {
                    float* qBase = q + qBatch + h * headDim;
                    float* dOBase = dOutput + qBatch + h * headDim;
                    float* dQBase = dQ == null ? null : dQ + qBatch + h * headDim;
                    float* lse = logSumExp + ((long)b * heads + h) * tokenCount;
                    float* rowDelta = delta + ((long)b * heads + h) * tokenCount;
                    for (int rowStart = keyStart; rowStart < tokenCount; rowStart += QueryBlock)
                    {
                        int rowCount = Math.Min(QueryBlock, tokenCount - rowStart);
                        for (int r = 0; r < rowCount; r++)
                        {
                            int i = rowStart + r;
                            int valid = Math.Min(keyCount, i - keyStart + 1);
                            int width = Math.Min((valid + 15) & ~15, keyCount);
                            float* p = probs + r * KeyBlock;
                            float* dS = dScores + r * KeyBlock;
                            new Span<float>(p, width).Clear();
                            AddWeightedRows(qBase + i * qStride, headDim, kT, KeyBlock, width, p);
                            var pSpan = new Span<float>(p, valid);
                            ScaleShift(p, valid, scale, -lse[i]);
                            TensorPrimitives.Exp(pSpan, pSpan);
                            FlushTinyAndSum(p, valid);
                            new Span<float>(p + valid, keyCount - valid).Clear();

                            new Span<float>(dProbs, width).Clear();
                            AddWeightedRows(dOBase + i * qStride, headDim, vT, KeyBlock, width, dProbs);
                            // dS = P ⊙ (dP − delta) · scale
                            var dSSpan = new Span<float>(dS, valid);
                            TensorPrimitives.Subtract(new ReadOnlySpan<float>(dProbs, valid), rowDelta[i], dSSpan);
                            TensorPrimitives.Multiply(dSSpan, pSpan, dSSpan);
                            TensorPrimitives.Multiply(dSSpan, scale, dSSpan);
                            new Span<float>(dS + valid, keyCount - valid).Clear();

                            if (dQBase != null) AddWeightedRows(dS, valid, kBase + keyStart * kvStride, kvStride, headDim, dQBase + i * qStride);
                        }

                        Transpose(probs, KeyBlock, rowCount, keyCount, probsT, QueryBlock);
                        Transpose(dScores, KeyBlock, rowCount, keyCount, dScoresT, QueryBlock);
                        for (int c = 0; c < keyCount; c++)
                        {
                            // Rows above the diagonal hold zeros: skip them.
                            int first = Math.Max(0, keyStart + c - rowStart);
                            int count = rowCount - first;
                            if (count <= 0) continue;
                            long rowOffset = (rowStart + first) * qStride;
                            if (dV != null) AddWeightedRows(probsT + c * QueryBlock + first, count, dOBase + rowOffset, qStride, headDim, dVBlock + c * headDim);
                            if (dK != null) AddWeightedRows(dScoresT + c * QueryBlock + first, count, qBase + rowOffset, qStride, headDim, dKBlock + c * headDim);
                        }
                    }
                }

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
            AddWeightedRows(scores, cachedTokens, vCache + g * headDim, kvStride, headDim, output + h * headDim);
            TensorPrimitives.Multiply(o, 1f / sum, o);
        }
    }

    /// <summary>dest[width] += Σ_p weights[p] · rows[p·rowStride .. + width]: a row vector times a matrix, accumulated.</summary>
    internal static void AddWeightedRows(float* weights, int count, float* rows, long rowStride, int width, float* dest)
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
                    var w = Vector512.Create(weights[p]);
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
                    var w = Vector512.Create(weights[p]);
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
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), Vector512.Create(weights[p]), a0);
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
                    var w = Vector256.Create(weights[p]);
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
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(r), Vector256.Create(weights[p]), a0);
                a0.Store(dest + c);
            }
        }
        for (; c < width; c++)
        {
            float sum = dest[c];
            float* r = rows + c;
            for (int p = 0; p < count; p++, r += rowStride) sum = MathF.FusedMultiplyAdd(*r, weights[p], sum);
            dest[c] = sum;
        }
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
