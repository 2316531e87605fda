using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Loom.Tensors;

namespace Loom.Retrieval.MiniLm;

/// <summary>
/// A BERT encoder (post-LayerNorm: absolute position and token-type embeddings, then per layer self-attention and a GELU
/// feed-forward block, each added to its input and LayerNorm-ed) on Loom's kernels, followed by sentence-transformers'
/// pooling: the mean of the token states, then unit length. Texts are not padded: the tokens of all texts of a call
/// form one [tokens, hidden] matrix for the projections (one GEMM each), and attention runs per text and head over that
/// text's own tokens, so a text's embedding does not depend on the others in its batch.
/// Not thread-safe: one call at a time (buffers are reused across calls).
/// </summary>
internal sealed unsafe class BertEncoder : IDisposable
{
    readonly BertWeights weights;
    readonly ComputeContext compute;
    readonly NormJob normJob = new();
    readonly GeluJob geluJob = new();
    readonly AttentionJob attentionJob = new();
    float* state;    // [tokens, hidden]
    float* qkv;      // [tokens, 3·hidden]
    float* context;  // [tokens, hidden]
    float* inner;    // [tokens, intermediate]
    int capacity;    // tokens the buffers hold

    /// <param name="compute">Threads for the kernels; null: <see cref="ComputeContext.Default"/>.</param>
    public BertEncoder(BertWeights weights, ComputeContext? compute)
    {
        this.weights = weights;
        this.compute = compute ?? ComputeContext.Default;
    }

    public BertConfig Config => weights.Config;

    /// <summary>One L2-normalised embedding [hidden] per text, from its token ids and token-type ids (same lengths).</summary>
    public float[][] Encode(IReadOnlyList<int[]> tokenIds, IReadOnlyList<int[]> typeIds, CancellationToken cancellationToken)
    {
        var c = weights.Config;
        int texts = tokenIds.Count, hidden = c.Hidden;
        var starts = new int[texts + 1];
        for (int s = 0; s < texts; s++)
        {
            int length = tokenIds[s].Length;
            if (length == 0) throw new ArgumentException($"text {s} has no tokens (a BERT input holds at least [CLS] and [SEP])", nameof(tokenIds));
            if (length > c.MaxPositions) throw new ArgumentException($"text {s} has {length} tokens, more than the {c.MaxPositions} positions of the model", nameof(tokenIds));
            if (typeIds[s].Length != length) throw new ArgumentException($"text {s} has {length} token ids but {typeIds[s].Length} type ids", nameof(typeIds));
            starts[s + 1] = starts[s] + length;
        }
        int tokens = starts[texts];
        Ensure(tokens);

        Embed(tokenIds, typeIds, starts);
        Normalize(state, null, weights.EmbeddingNormWeight, weights.EmbeddingNormBias, tokens);
        foreach (var layer in weights.Layers)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // qkv = state · Wqkv + bqkv                                      // [tokens, 3·hidden]
            Gemm.Multiply(state, layer.QkvWeight, tokens, hidden, 3 * hidden, qkv, false, false, false, compute);
            AddBias(qkv, layer.QkvBias, tokens, 3 * hidden);
            // context = softmax(q·kᵀ/√headDim)·v, per text and head         // [tokens, hidden]
            attentionJob.Set(qkv, context, starts, c.Heads, c.HeadDim, hidden, compute);
            compute.Run(texts * c.Heads, attentionJob);
            // state = LayerNorm(state + context · Wo + bo)                   // [tokens, hidden]
            Gemm.Multiply(context, layer.AttentionOutWeight, tokens, hidden, hidden, state, false, false, true, compute);
            Normalize(state, layer.AttentionOutBias, layer.AttentionNormWeight, layer.AttentionNormBias, tokens);
            // inner = GELU(state · Wup + bup)                                // [tokens, intermediate]
            Gemm.Multiply(state, layer.UpWeight, tokens, hidden, c.Intermediate, inner, false, false, false, compute);
            int blocks = ComputeContext.Blocks(tokens, 16 * c.Intermediate, out int rowsPerBlock);
            geluJob.Set(inner, layer.UpBias, c.Intermediate, tokens, rowsPerBlock);
            compute.Run(blocks, geluJob);
            // state = LayerNorm(state + inner · Wdown + bdown)               // [tokens, hidden]
            Gemm.Multiply(inner, layer.DownWeight, tokens, c.Intermediate, hidden, state, false, false, true, compute);
            Normalize(state, layer.DownBias, layer.OutputNormWeight, layer.OutputNormBias, tokens);
        }
        return Pool(starts);
    }

    /// <summary>state[t] = word[id] + position[t − start of its text] + type[typeId].</summary>
    void Embed(IReadOnlyList<int[]> tokenIds, IReadOnlyList<int[]> typeIds, int[] starts)
    {
        var c = weights.Config;
        int hidden = c.Hidden;
        for (int s = 0; s < tokenIds.Count; s++)
        {
            for (int p = 0; p < tokenIds[s].Length; p++)
            {
                int id = tokenIds[s][p], type = typeIds[s][p];
                if ((uint)id >= (uint)c.VocabSize) throw new ArgumentException($"token id {id} is outside the vocabulary of {c.VocabSize}", nameof(tokenIds));
                if ((uint)type >= (uint)c.TypeVocabSize) throw new ArgumentException($"token type {type} is outside the {c.TypeVocabSize} types", nameof(typeIds));
                var row = new Span<float>(state + (long)(starts[s] + p) * hidden, hidden);
                TensorPrimitives.Add(
                    new ReadOnlySpan<float>(weights.WordEmbeddings + (long)id * hidden, hidden),
                    new ReadOnlySpan<float>(weights.PositionEmbeddings + (long)p * hidden, hidden), row);
                TensorPrimitives.Add(row, new ReadOnlySpan<float>(weights.TokenTypeEmbeddings + (long)type * hidden, hidden), row);
            }
        }
    }

    void AddBias(float* rows, float* bias, int rowCount, int width)
    {
        var b = new ReadOnlySpan<float>(bias, width);
        for (int r = 0; r < rowCount; r++)
        {
            var row = new Span<float>(rows + (long)r * width, width);
            TensorPrimitives.Add(row, b, row);
        }
    }

    /// <summary>rows[r] = LayerNorm(rows[r] + bias) · weight + normBias, in place; bias may be null.</summary>
    void Normalize(float* rows, float* bias, float* weight, float* normBias, int rowCount)
    {
        int hidden = weights.Config.Hidden;
        int blocks = ComputeContext.Blocks(rowCount, 8 * hidden, out int rowsPerBlock);
        normJob.Set(rows, bias, weight, normBias, hidden, weights.Config.LayerNormEpsilon, rowCount, rowsPerBlock);
        compute.Run(blocks, normJob);
    }

    /// <summary>Each text's mean token state, scaled to unit length (sentence-transformers' mean pooling and Normalize).</summary>
    float[][] Pool(int[] starts)
    {
        int hidden = weights.Config.Hidden, texts = starts.Length - 1;
        var vectors = new float[texts][];
        var sum = new double[hidden];
        for (int s = 0; s < texts; s++)
        {
            Array.Clear(sum);
            for (int t = starts[s]; t < starts[s + 1]; t++)
            {
                float* row = state + (long)t * hidden;
                for (int d = 0; d < hidden; d++) sum[d] += row[d];
            }
            int count = starts[s + 1] - starts[s];
            var vector = new float[hidden];
            double norm = 0;
            for (int d = 0; d < hidden; d++)
            {
                vector[d] = (float)(sum[d] / count);
                norm += (double)vector[d] * vector[d];
            }
            float scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
            TensorPrimitives.Multiply(vector, scale, vector);
            vectors[s] = vector;
        }
        return vectors;
    }

    void Ensure(int tokens)
    {
        if (tokens <= capacity) return;
        Free();
        int rows = Math.Max(tokens, 2 * capacity);
        var c = weights.Config;
        state = Allocate((long)rows * c.Hidden);
        qkv = Allocate((long)rows * 3 * c.Hidden);
        context = Allocate((long)rows * c.Hidden);
        inner = Allocate((long)rows * c.Intermediate);
        capacity = rows;
    }

    static float* Allocate(long floats) => (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);

    void Free()
    {
        NativeMemory.AlignedFree(state);
        NativeMemory.AlignedFree(qkv);
        NativeMemory.AlignedFree(context);
        NativeMemory.AlignedFree(inner);
        state = qkv = context = inner = null;
        capacity = 0;
    }

    public void Dispose() => Free();

    /// <summary>LayerNorm of blocks of rows, in place: (x + bias − mean) / √(variance + ε) · weight + normBias.</summary>
    sealed class NormJob : IParallelWork
    {
        float* rows, bias, weight, normBias;
        int width, rowCount, rowsPerBlock;
        float epsilon;

        public void Set(float* rows, float* bias, float* weight, float* normBias, int width, float epsilon, int rowCount, int rowsPerBlock)
        {
            this.rows = rows;
            this.bias = bias;
            this.weight = weight;
            this.normBias = normBias;
            (this.width, this.epsilon, this.rowCount, this.rowsPerBlock) = (width, epsilon, rowCount, rowsPerBlock);
        }

        public void Execute(int index)
        {
            int end = Math.Min(rowCount, (index + 1) * rowsPerBlock);
            var w = new ReadOnlySpan<float>(weight, width);
            var b = new ReadOnlySpan<float>(normBias, width);
            for (int r = index * rowsPerBlock; r < end; r++)
            {
                var row = new Span<float>(rows + (long)r * width, width);
                if (bias is not null) TensorPrimitives.Add(row, new ReadOnlySpan<float>(bias, width), row);
                double mean = 0;
                for (int d = 0; d < width; d++) mean += row[d];
                mean /= width;
                double variance = 0;
                for (int d = 0; d < width; d++) variance += (row[d] - mean) * (row[d] - mean);
                variance /= width;
                float invStdDev = (float)(1 / Math.Sqrt(variance + epsilon));
                TensorPrimitives.Subtract(row, (float)mean, row);
                TensorPrimitives.Multiply(row, invStdDev, row);
                TensorPrimitives.FusedMultiplyAdd(row, w, b, row);
            }
        }
    }

    /// <summary>
    /// rows[r] = GELU(rows[r] + bias) with GELU(x) = x·Φ(x) = max(x, 0) − ½·|x|·erfc(|x|/√2), erfc by Abramowitz and
    /// Stegun 7.1.26 (absolute error under 1.5e-7): erfc(u) ≈ t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−u²), t = 1/(1 + p·u).
    /// </summary>
    sealed class GeluJob : IParallelWork
    {
        const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
        [ThreadStatic] static float[]? scratch;
        float* rows, bias;
        int width, rowCount, rowsPerBlock;

        public void Set(float* rows, float* bias, int width, int rowCount, int rowsPerBlock)
        {
            this.rows = rows;
            this.bias = bias;
            (this.width, this.rowCount, this.rowsPerBlock) = (width, rowCount, rowsPerBlock);
        }

        public void Execute(int index)
        {
            if (scratch is null || scratch.Length < 3 * width) scratch = new float[3 * width];
            var magnitude = scratch.AsSpan(0, width);
            var t = scratch.AsSpan(width, width);
            var series = scratch.AsSpan(2 * width, width);
            var b = new ReadOnlySpan<float>(bias, width);
            int end = Math.Min(rowCount, (index + 1) * rowsPerBlock);
            for (int r = index * rowsPerBlock; r < end; r++)
            {
                var x = new Span<float>(rows + (long)r * width, width);
                TensorPrimitives.Add(x, b, x);
                TensorPrimitives.Abs(x, magnitude);                                  // |x|
                TensorPrimitives.Multiply(magnitude, 1 / MathF.Sqrt(2), t);          // u = |x|/√2
                TensorPrimitives.Multiply(t, t, series);
                TensorPrimitives.Negate(series, series);
                TensorPrimitives.Exp(series, series);                                // e^(−u²)
                TensorPrimitives.Multiply(series, magnitude, series);                // |x|·e^(−u²)
                TensorPrimitives.Multiply(t, P, t);
                TensorPrimitives.Add(t, 1f, t);
                TensorPrimitives.Reciprocal(t, t);                                   // t = 1/(1 + p·u)
                TensorPrimitives.Multiply(series, t, series);                        // |x|·t·e^(−u²)
                var polynomial = magnitude;                                          // |x| is no longer needed
                TensorPrimitives.Multiply(t, A5, polynomial);
                TensorPrimitives.Add(polynomial, A4, polynomial);
                TensorPrimitives.MultiplyAdd(polynomial, t, A3, polynomial);
                TensorPrimitives.MultiplyAdd(polynomial, t, A2, polynomial);
                TensorPrimitives.MultiplyAdd(polynomial, t, A1, polynomial);         // a1 + t·(a2 + t·(a3 + t·(a4 + t·a5)))
                TensorPrimitives.Multiply(series, polynomial, series);               // |x|·erfc(|x|/√2)
                TensorPrimitives.Max(x, 0f, x);
                TensorPrimitives.MultiplyAdd(series, -0.5f, x, x);                           // max(x, 0) − ½·|x|·erfc
            }
        }
    }

    /// <summary>
    /// One text's attention in one head per index: scores = q·kᵀ/√headDim over the text's tokens [tokens, tokens],
    /// softmax per row, then scores · v into the head's columns of context. q, k and v are copied out of the fused
    /// [tokens, 3·hidden] rows into contiguous [tokens, headDim] blocks so each product is one GEMM (inline: this runs
    /// inside a parallel work item).
    /// </summary>
    sealed class AttentionJob : IParallelWork
    {
        [ThreadStatic] static float[]? scratch;
        float* qkv, context;
        int[] starts = [];
        int heads, headDim, hidden;
        ComputeContext compute = null!;

        public void Set(float* qkv, float* context, int[] starts, int heads, int headDim, int hidden, ComputeContext compute)
        {
            this.qkv = qkv;
            this.context = context;
            (this.starts, this.heads, this.headDim, this.hidden, this.compute) = (starts, heads, headDim, hidden, compute);
        }

        public void Execute(int index)
        {
            int text = index / heads, head = index % heads;
            int start = starts[text], length = starts[text + 1] - start;
            int block = length * headDim;
            int need = 4 * block + length * length;
            if (scratch is null || scratch.Length < need) scratch = new float[Math.Max(need, 2 * (scratch?.Length ?? 0))];
            fixed (float* buffer = scratch)
            {
                float* q = buffer, k = q + block, v = k + block, output = v + block; // each [tokens, headDim]
                float* scores = output + block;                                      // [tokens, tokens]
                long stride = 3L * hidden;
                for (int t = 0; t < length; t++)
                {
                    float* row = qkv + (start + t) * stride + head * headDim;
                    new ReadOnlySpan<float>(row, headDim).CopyTo(new Span<float>(q + t * headDim, headDim));
                    new ReadOnlySpan<float>(row + hidden, headDim).CopyTo(new Span<float>(k + t * headDim, headDim));
                    new ReadOnlySpan<float>(row + 2 * hidden, headDim).CopyTo(new Span<float>(v + t * headDim, headDim));
                }
                Gemm.Multiply(q, k, length, headDim, length, scores, false, true, false, compute); // inline inside a work item
                float scale = 1 / MathF.Sqrt(headDim);
                for (int t = 0; t < length; t++)
                {
                    var row = new Span<float>(scores + (long)t * length, length);
                    // Scaled and shifted by the row's largest score: TensorPrimitives.SoftMax does not shift, and e^x
                    // overflows above 88 (long texts with repeated words reach that).
                    float largest = TensorPrimitives.Max(row);
                    TensorPrimitives.Subtract(row, largest, row);
                    TensorPrimitives.Multiply(row, scale, row);
                    TensorPrimitives.SoftMax(row, row);
                }
                Gemm.Multiply(scores, v, length, length, headDim, output, false, false, false, compute);
                for (int t = 0; t < length; t++)
                    new ReadOnlySpan<float>(output + t * headDim, headDim).CopyTo(new Span<float>(context + (long)(start + t) * hidden + head * headDim, headDim));
            }
        }
    }
}
