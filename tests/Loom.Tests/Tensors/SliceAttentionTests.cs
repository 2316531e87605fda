using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>
/// Blocked attention of consecutive queries of one sequence over its cache (a prompt slice taken along a decode step, or
/// a prompt continued at a start off the 64-token blocks) against a float64 reference. Runs in the allocation collection:
/// its no-allocation check reads a process-wide counter.
/// </summary>
[Collection(nameof(AllocationCollection))]
public class SliceAttentionTests
{
    const int Slots = 3, SliceSlot = 1;
    static readonly int[] DecodeSlots = [0, 2];
    static readonly int[] DecodeLengths = [37, 90]; // tokens cached in slots 0 and 2 before the step

    /// <summary>A step's inputs: caches holding each slot's past, and the new rows' q, k, v.</summary>
    sealed record Step(Tensor Q, Tensor K, Tensor V, Tensor KeyCache, Tensor ValueCache, int[] RowSlots, int[] RowStarts, int Batch, int Tokens);

    /// <summary>
    /// Slot 1 holds <paramref name="start"/> tokens and takes <paramref name="length"/> more: as one batch row of that many
    /// tokens (<paramref name="oneRow"/>), or as batch rows of one token each after two decode rows (slots 0 and 2).
    /// </summary>
    static Step MakeStep(int start, int length, int heads, int kvHeads, int headDim, bool oneRow, int seed)
    {
        var random = new Random(seed);
        int maxTokens = start + length + 100, kvWidth = kvHeads * headDim, width = heads * headDim;
        var keyCache = GradCheck.Random(random, 1.5f, Slots, maxTokens, kvWidth);   // [slots, maxTokens, kvHeads·headDim]
        var valueCache = GradCheck.Random(random, 1f, Slots, maxTokens, kvWidth);   // [slots, maxTokens, kvHeads·headDim]
        int[] rowSlots, rowStarts;
        int batch, tokens;
        if (oneRow) (rowSlots, rowStarts, batch, tokens) = ([SliceSlot], [start], 1, length);
        else
        {
            rowSlots = [.. DecodeSlots, .. Enumerable.Repeat(SliceSlot, length)];
            rowStarts = [.. DecodeLengths, .. Enumerable.Range(start, length)];
            (batch, tokens) = (DecodeSlots.Length + length, 1);
        }
        var q = GradCheck.Random(random, 1.5f, batch, tokens, width);   // [batch, tokens, heads·headDim]
        var k = GradCheck.Random(random, 1.5f, batch, tokens, kvWidth); // [batch, tokens, kvHeads·headDim]
        var v = GradCheck.Random(random, 1f, batch, tokens, kvWidth);   // [batch, tokens, kvHeads·headDim]
        return new Step(q, k, v, keyCache, valueCache, rowSlots, rowStarts, batch, tokens);
    }

    static float[] Run(Step step, int heads, int kvHeads, int window, ComputeContext compute)
    {
        var tape = new Tape(compute) { Recording = false };
        return tape.CachedAttention(step.Q, step.K, step.V, step.KeyCache, step.ValueCache, step.RowSlots, step.RowStarts, heads, kvHeads, window)
            .Span.ToArray(); // [batch, tokens, heads·headDim]
    }

    /// <summary>Each query over its slot's cached keys (the new ones written by the op) in float64.</summary>
    static double[] Reference(Step step, int heads, int kvHeads, int headDim, int window)
    {
        int width = heads * headDim, kvWidth = kvHeads * headDim, maxTokens = step.KeyCache.Dim(1);
        var keys = step.KeyCache.Span;
        var values = step.ValueCache.Span;
        var q = step.Q.Span;
        var output = new double[step.Batch * step.Tokens * width];
        for (int b = 0; b < step.Batch; b++)
            for (int t = 0; t < step.Tokens; t++)
            {
                int position = step.RowStarts[b] + t, first = window > 0 ? Math.Max(0, position - window + 1) : 0;
                long slot = (long)step.RowSlots[b] * maxTokens;
                int row = b * step.Tokens + t;
                for (int h = 0; h < heads; h++)
                {
                    int g = h / (heads / kvHeads);
                    var scores = new double[position + 1 - first];
                    for (int j = first; j <= position; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) dot += (double)q[row * width + h * headDim + d] * keys[(int)((slot + j) * kvWidth) + g * headDim + d];
                        scores[j - first] = dot / Math.Sqrt(headDim);
                    }
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int j = first; j <= position; j++)
                    {
                        double p = Math.Exp(scores[j - first] - max) / sum;
                        for (int d = 0; d < headDim; d++) output[row * width + h * headDim + d] += p * values[(int)((slot + j) * kvWidth) + g * headDim + d];
                    }
                }
            }
        return output;
    }

    // Starts on and off the 64-key blocks, slices shorter than a row group, of a whole query block and longer (one row
    // of many tokens), grouped-query heads, a sliding window; 1 and 2 threads.
    [Theory]
    [InlineData(0, 16, 4, 4, 16, 0, false, 1)]
    [InlineData(5, 3, 4, 2, 16, 0, false, 2)]
    [InlineData(63, 16, 8, 2, 32, 0, false, 1)]
    [InlineData(64, 16, 8, 2, 32, 0, false, 2)]
    [InlineData(200, 64, 4, 1, 64, 0, false, 2)]
    [InlineData(333, 7, 2, 1, 20, 0, false, 1)]
    [InlineData(130, 40, 4, 2, 16, 50, false, 2)]
    [InlineData(77, 150, 4, 2, 24, 0, true, 2)]
    [InlineData(100, 70, 2, 2, 8, 33, true, 1)]
    public void MatchesTheReference(int start, int length, int heads, int kvHeads, int headDim, int window, bool oneRow, int threads)
    {
        using var compute = new ComputeContext(threads);
        var step = MakeStep(start, length, heads, kvHeads, headDim, oneRow, start + length);
        var actual = Run(step, heads, kvHeads, window, compute);
        double error = GradCheck.RelativeError(actual.Select(x => (double)x).ToArray(), Reference(step, heads, kvHeads, headDim, window));
        Assert.True(error < 1e-5, $"relative error {error:E3}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ResultsAreBitIdenticalForOneAndTwoThreads(bool oneRow)
    {
        using var one = new ComputeContext(1);
        using var two = new ComputeContext(2);
        var step = MakeStep(1000, 48, 8, 2, 64, oneRow, 7);
        Assert.Equal(Run(step, 8, 2, 0, one), Run(step, 8, 2, 0, two));
    }

    [Fact]
    public void AStepAllocatesNothingAfterWarmUp()
    {
        var step = MakeStep(500, 16, 8, 8, 64, oneRow: false, 9);
        var tape = new Tape { Recording = false };
        Assert.Equal(0, AllocationProbe.FewestBytes(() =>
        {
            tape.Reset();
            tape.CachedAttention(step.Q, step.K, step.V, step.KeyCache, step.ValueCache, step.RowSlots, step.RowStarts, 8, 8);
        }, warmUp: 2));
    }
}
