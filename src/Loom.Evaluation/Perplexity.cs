using System.Text;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Evaluation;

/// <summary>Language-modelling quality of a model on a token sequence.</summary>
public sealed record PerplexityResult(
    double Loss,        // mean negative log-likelihood per predicted token, in nats
    double Perplexity,  // exp(Loss)
    double BitsPerByte, // total negative log-likelihood in bits / UTF-8 bytes of the predicted text (tokenizer-independent)
    long Tokens,        // tokens predicted
    long Bytes);        // UTF-8 bytes those tokens decode to

/// <summary>
/// Perplexity over consecutive, non-overlapping windows of the model's context: each window of
/// MaxSeq + 1 tokens predicts its last MaxSeq from the ones before (the first token of the text is
/// never predicted). Windows are batched; the last, shorter window runs alone.
/// </summary>
public static class Perplexity
{
    /// <param name="compute">The threads the forward passes run on; null means <see cref="ComputeContext.Default"/>.</param>
    public static PerplexityResult Evaluate(Transformer model, ITokenizer tokenizer, ReadOnlySpan<int> tokens, int batch = 8,
        ComputeContext? compute = null, CancellationToken cancellationToken = default)
    {
        if (tokens.Length < 2) throw new ArgumentException($"perplexity needs at least 2 tokens, got {tokens.Length}");
        int block = model.Config.MaxSeq;
        var tape = new Tape(compute) { Recording = false };
        int fullWindows = (tokens.Length - 1) / block;
        int tail = (tokens.Length - 1) % block;
        double nats = 0;
        long predicted = 0;
        var ids = new int[batch * block];
        var targets = new int[batch * block];
        for (int first = 0; first < fullWindows; first += batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int rows = Math.Min(batch, fullWindows - first);
            if (rows != batch)
            {
                ids = new int[rows * block];
                targets = new int[rows * block];
            }
            for (int r = 0; r < rows; r++)
            {
                int start = (first + r) * block;
                tokens.Slice(start, block).CopyTo(ids.AsSpan(r * block));
                tokens.Slice(start + 1, block).CopyTo(targets.AsSpan(r * block));
            }
            tape.Reset();
            nats += (double)model.Loss(tape, ids, targets, rows, block).Scalar() * rows * block;
            predicted += (long)rows * block;
        }
        if (tail > 0)
        {
            int start = fullWindows * block;
            tape.Reset();
            nats += (double)model.Loss(tape, tokens.Slice(start, tail).ToArray(), tokens.Slice(start + 1, tail).ToArray(), 1, tail).Scalar() * tail;
            predicted += tail;
        }
        long bytes = Encoding.UTF8.GetByteCount(tokenizer.Decode(tokens[1..]));
        double loss = nats / predicted;
        return new PerplexityResult(loss, Math.Exp(loss), nats / Math.Log(2) / Math.Max(bytes, 1), predicted, bytes);
    }
}
