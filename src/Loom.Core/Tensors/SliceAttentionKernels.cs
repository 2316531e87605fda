using System.Numerics.Tensors;

namespace Loom.Tensors;

internal static unsafe partial class AttentionKernels
{
    /// <summary>
    /// Blocked causal attention of consecutive queries of one sequence, at positions start + r (any start), over the
    /// sequence's cache up to each query's own position: one head, query rows [rowStart, rowStart + rowCount) with
    /// rowCount ≤ <see cref="QueryBlock"/>. Each block of <see cref="KeyBlock"/> cached keys is transposed once and read
    /// by all the rows together (a prompt slice costs about one pass over its keys, not one per query), with the online
    /// softmax of <see cref="Forward"/>. The arithmetic does not depend on the thread that runs it. With a
    /// <paramref name="window"/> above 0 a query at position p sees keys p − window + 1 .. p only.
    /// </summary>
    internal static void SliceHead(
        float* q /*[queries, heads*headDim]*/, float* kCache /*[cachedTokens, kvHeads*headDim]*/, float* vCache /*[cachedTokens, kvHeads*headDim]*/,
        int start, int rowStart, int rowCount, int head, int heads, int kvHeads, int headDim, int window,
        float* output /*[queries, heads*headDim]*/)
    {
        int g = head / (heads / kvHeads);
        long qStride = (long)heads * headDim, kvStride = (long)kvHeads * headDim;
        float* qBase = q + rowStart * qStride + head * headDim;        // row r at qBase + r·qStride
        float* outBase = output + rowStart * qStride + head * headDim;
        float* kBase = kCache + g * headDim, vBase = vCache + g * headDim; // key j at kBase + j·kvStride
        int first = start + rowStart, end = first + rowCount;              // the rows' positions: [first, end)
        float scale = 1f / MathF.Sqrt(headDim);

        float* scratch = Scratch.Get(headDim * KeyBlock + QueryBlock * KeyBlock + 2 * QueryBlock);
        float* keysTransposed = scratch;                          // [headDim, KeyBlock]
        float* scores = keysTransposed + headDim * KeyBlock;      // [QueryBlock, KeyBlock]
        float* rowMax = scores + QueryBlock * KeyBlock;           // [QueryBlock]
        float* rowSum = rowMax + QueryBlock;                      // [QueryBlock]
        for (int r = 0; r < rowCount; r++)
        {
            rowMax[r] = float.NegativeInfinity;
            rowSum[r] = 0;
            new Span<float>(outBase + r * qStride, headDim).Clear();
        }

        for (int keyStart = window > 0 ? Math.Max(0, first - window + 1) : 0; keyStart < end; keyStart += KeyBlock)
        {
            int keyCount = Math.Min(KeyBlock, end - keyStart);
            // The rows that see a key of this block: from the first whose position reaches it to the last whose window does.
            int rowFirst = Math.Max(0, keyStart - first);
            int rowEnd = window > 0 ? Math.Min(rowCount, keyStart + keyCount - 1 + window - first) : rowCount;
            if (rowFirst >= rowEnd) continue;
            Transpose(kBase + keyStart * kvStride, kvStride, keyCount, headDim, keysTransposed, KeyBlock);
            int rows = rowEnd - rowFirst;
            new Span<float>(scores + rowFirst * KeyBlock, rows * KeyBlock).Clear();
            AddWeightedRowsMany(qBase + rowFirst * qStride, qStride, 1, rows, headDim, keysTransposed, KeyBlock, keyCount,
                scores + rowFirst * KeyBlock, KeyBlock);
            for (int r = rowFirst; r < rowEnd; r++)
            {
                float* p = scores + r * KeyBlock;
                int position = first + r;
                int valid = Math.Min(keyCount, position - keyStart + 1); // keys of the block at or before the row
                if (window > 0 && !MaskOutsideWindow(p, position - window + 1 - keyStart, valid, keyCount)) continue;
                float newMax = MathF.Max(rowMax[r], scale * PaddedMax(p, valid));
                float blockSum = PaddedExp(p, valid, scale, -newMax);
                new Span<float>(p + valid, keyCount - valid).Clear();
                float correction = MathF.Exp(rowMax[r] - newMax);
                if (correction < TinyProbability) correction = 0;
                if (correction != 1f)
                {
                    var o = new Span<float>(outBase + r * qStride, headDim);
                    TensorPrimitives.Multiply(o, correction, o);
                }
                rowSum[r] = rowSum[r] * correction + blockSum;
                rowMax[r] = newMax;
            }
            AddWeightedRowsMany(scores + rowFirst * KeyBlock, KeyBlock, 1, rows, keyCount, vBase + keyStart * kvStride, kvStride, headDim,
                outBase + rowFirst * qStride, qStride);
        }

        for (int r = 0; r < rowCount; r++)
        {
            var o = new Span<float>(outBase + r * qStride, headDim);
            TensorPrimitives.Multiply(o, 1f / rowSum[r], o);
        }
    }
}
