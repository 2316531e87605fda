using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Loom.Tensors;

/// <summary>
/// Losses over logits: cross-entropy (next-token training) and per-token log-probabilities
/// (sequence scores for DPO and PPO). Both work row by row in vocabulary chunks with an online
/// max and sum, keep only the per-row log-sum-exp ([rows]) for backward, and never allocate a
/// second [rows, vocab] buffer: backward writes the gradient into the logits' own storage and
/// makes that storage the logits' gradient (see <see cref="Tape.TryAliasGrad"/>). So after
/// backward the logits hold their gradient, not their values; a loss must be the only consumer
/// of its logits for this to happen. When anything else still needs the logits' values (an op
/// recorded earlier that reads them, a producer that reads its output, a gradient already
/// accumulated, or logits that are not a tape activation) the gradient goes to a separate
/// buffer instead.
/// </summary>
public static class LossOps
{
    const int Chunk = 1024;

    /// <summary>
    /// Mean over rows whose target ≠ <paramref name="ignoreIndex"/> of −log softmax(logits)[target].
    /// logits [..., vocab] (leading axes flattened to rows); targets [rows], kept unchanged by the
    /// caller until backward. Returns [1]; 0 when every row is ignored.
    /// </summary>
    public static Tensor CrossEntropy(this Tape tape, Tensor logits, int[] targets, int ignoreIndex = -100)
    {
        var logSumExp = RowLogSumExp(tape, logits, targets, ignoreIndex); // [rows]
        int rows = logits.Rows, vocab = logits.Dim(-1), count = 0;
        double total = 0;
        var values = logits.Span;
        var lse = logSumExp.Span;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == ignoreIndex) continue;
            total += lse[r] - values[r * vocab + targets[r]];
            count++;
        }
        var loss = tape.Allocate(1); // [1]
        loss[0] = count == 0 ? 0f : (float)(total / count);
        if (tape.NeedsGrad(logits))
            tape.Record(new TapeEntry { Op = LossBackward.CrossEntropy, Output = loss, A = logits, B = logSumExp, Indices = targets, I0 = ignoreIndex, I1 = count });
        return loss;
    }

    /// <summary>
    /// log softmax(logits)[target] per row; 0 (and no gradient) where target = <paramref name="ignoreIndex"/>.
    /// logits [..., vocab]; targets [rows], kept unchanged by the caller until backward. Returns [rows].
    /// </summary>
    public static Tensor TokenLogProbs(this Tape tape, Tensor logits, int[] targets, int ignoreIndex = -100)
    {
        var logSumExp = RowLogSumExp(tape, logits, targets, ignoreIndex); // [rows]
        int rows = logits.Rows, vocab = logits.Dim(-1);
        var logProbs = tape.Allocate(rows); // [rows]
        var values = logits.Span;
        var lse = logSumExp.Span;
        var output = logProbs.Span;
        for (int r = 0; r < rows; r++)
            output[r] = targets[r] == ignoreIndex ? 0f : values[r * vocab + targets[r]] - lse[r];
        if (tape.NeedsGrad(logits))
            tape.Record(new TapeEntry { Op = LossBackward.TokenLogProbs, Output = logProbs, A = logits, B = logSumExp, Indices = targets, I0 = ignoreIndex });
        return logProbs;
    }

    static unsafe Tensor RowLogSumExp(Tape tape, Tensor logits, int[] targets, int ignoreIndex)
    {
        int rows = logits.Rows, vocab = logits.Dim(-1);
        if (targets.Length != rows)
            throw new ArgumentException($"{targets.Length} targets for {rows} rows of logits {logits.ShapeText}", nameof(targets));
        for (int r = 0; r < rows; r++)
            if (targets[r] != ignoreIndex && (uint)targets[r] >= (uint)vocab)
                throw new ArgumentException($"target {targets[r]} at row {r} is outside [0, {vocab}) and is not the ignore index {ignoreIndex}", nameof(targets));
        var logSumExp = tape.Allocate(rows); // [rows]
        var job = RowJob.Cached ??= new RowJob();
        job.Set(logits.Pointer, targets, ignoreIndex, rows, vocab, logSumExp.Pointer);
        job.backward = false;
        tape.Compute.Run(ComputeContext.Blocks(rows, vocab * 4, out job.perBlock), job);
        job.targets = [];
        return logSumExp;
    }

    sealed class LossBackward : IBackward
    {
        public static readonly LossBackward CrossEntropy = new(true);
        public static readonly LossBackward TokenLogProbs = new(false);
        readonly bool mean;

        LossBackward(bool mean) => this.mean = mean;

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var logits = e.A!; // [rows, vocab]
            int rows = logits.Rows, vocab = logits.Dim(-1);
            var job = RowJob.Cached ??= new RowJob();
            job.Set(logits.Pointer, e.Indices!, e.I0, rows, vocab, e.B!.Pointer);
            job.backward = true;
            job.inPlace = tape.TryAliasGrad(logits);
            job.dLogits = job.inPlace ? logits.Pointer : tape.GradOf(logits).Pointer;
            job.dOutput = e.Output.Grad!.Pointer;
            // d(−log p_t)/dx = softmax − onehot; d(log p_t)/dx = onehot − softmax.
            job.perRow = !mean;
            job.rowScale = mean && e.I1 > 0 ? e.Output.Grad![0] / e.I1 : 0f;
            tape.Compute.Run(ComputeContext.Blocks(rows, vocab * 4, out job.perBlock), job);
            job.targets = [];
        }
    }

    /// <summary>Forward: per-row log-sum-exp. Backward: dLogits (+)= scale·(softmax − onehot) per row.</summary>
    sealed unsafe class RowJob : IParallelWork
    {
        [ThreadStatic] public static RowJob? Cached;
        public float* logits, logSumExp, dLogits, dOutput;
        public int[] targets = [];
        public int ignoreIndex, rows, vocab, perBlock;
        public bool backward, inPlace, perRow;
        public float rowScale; // the scale of every row, unless perRow: then −dOutput[r]

        public void Set(float* logits, int[] targets, int ignoreIndex, int rows, int vocab, float* logSumExp)
        {
            this.logits = logits; this.targets = targets; this.ignoreIndex = ignoreIndex;
            this.rows = rows; this.vocab = vocab; this.logSumExp = logSumExp;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            Span<float> scratch = stackalloc float[Chunk];
            int end = Math.Min(rows, (index + 1) * perBlock);
            for (int r = index * perBlock; r < end; r++)
            {
                float* row = logits + (long)r * vocab;
                bool ignored = targets[r] == ignoreIndex;
                if (!backward)
                {
                    logSumExp[r] = ignored ? 0f : LogSumExp(row, scratch);
                    continue;
                }
                float* dRow = dLogits + (long)r * vocab;
                if (ignored)
                {
                    if (inPlace) new Span<float>(dRow, vocab).Clear();
                    continue;
                }
                float scale = perRow ? -dOutput[r] : rowScale;
                float lse = logSumExp[r];
                for (int start = 0; start < vocab; start += Chunk)
                {
                    int width = Math.Min(Chunk, vocab - start);
                    var x = new ReadOnlySpan<float>(row + start, width);
                    var probabilities = scratch[..width];
                    TensorPrimitives.Subtract(x, lse, probabilities);
                    TensorPrimitives.Exp(probabilities, probabilities);
                    var target = new Span<float>(dRow + start, width);
                    if (inPlace) TensorPrimitives.Multiply(probabilities, scale, target);
                    else TensorPrimitives.FusedMultiplyAdd(probabilities, scale, target, target);
                }
                dRow[targets[r]] -= scale;
            }
        }

        /// <summary>log Σ exp(row) in one pass over vocabulary chunks, rescaling the running sum when the max grows.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        float LogSumExp(float* row, Span<float> scratch)
        {
            float max = float.NegativeInfinity;
            double sum = 0;
            for (int start = 0; start < vocab; start += Chunk)
            {
                int width = Math.Min(Chunk, vocab - start);
                var x = new ReadOnlySpan<float>(row + start, width);
                float chunkMax = TensorPrimitives.Max(x);
                if (chunkMax > max)
                {
                    sum *= Math.Exp((double)max - chunkMax);
                    max = chunkMax;
                }
                var shifted = scratch[..width];
                TensorPrimitives.Subtract(x, max, shifted);
                TensorPrimitives.Exp(shifted, shifted);
                sum += TensorPrimitives.Sum(shifted);
            }
            return (float)(max + Math.Log(sum));
        }
    }
}
