using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>Log-probabilities of responses under a causal LM: per token and summed per sequence.</summary>
public static class SequenceLogProbs
{
    /// <summary>
    /// Per-token log-probabilities [batch·tokens] (0 outside the response) of the rows of <paramref name="batch"/>
    /// (built by <see cref="TokenBatch.ForLogProbs"/>).
    /// </summary>
    public static Tensor TokenLogProbs(Tape tape, Transformer model, TokenBatch batch)
    {
        var logits = model.Forward(tape, batch.Ids, batch.Batch, batch.Tokens); // [batch, tokens, vocab]
        return tape.TokenLogProbs(logits, batch.Targets, TokenBatch.IgnoreIndex); // [batch·tokens]
    }

    /// <summary>Sequence log-probabilities log π(response | prompt) [batch].</summary>
    public static Tensor Sequences(Tape tape, Transformer model, TokenBatch batch) =>
        tape.SegmentSum(TokenLogProbs(tape, model, batch), batch.SegmentOf, batch.Batch); // [batch]

    /// <summary>Sequence log-probabilities of many sequences without recording, in chunks, on <paramref name="compute"/> (null: the default context).</summary>
    public static float[] Compute(Transformer model, IReadOnlyList<TokenSequence> sequences, int chunk = 16, ComputeContext? compute = null)
    {
        var tape = new Tape(compute) { Recording = false };
        var result = new float[sequences.Count];
        for (int start = 0; start < sequences.Count; start += chunk)
        {
            tape.Reset();
            var batch = TokenBatch.ForLogProbs([.. sequences.Skip(start).Take(chunk)], model.Config.MaxSeq);
            Sequences(tape, model, batch).Span.CopyTo(result.AsSpan(start));
        }
        return result;
    }

    /// <summary>
    /// A Monte Carlo estimate of KL(policy ‖ reference) per response: sample one response per prompt from the
    /// policy and average log π(y|x) − log π_ref(y|x) (nats per response). Runs on <paramref name="compute"/> (null: the default context).
    /// </summary>
    public static float SampledKl(Transformer policy, Transformer reference, IReadOnlyList<int[]> promptIds, int maxNewTokens, int stopId, ulong seed,
        ComputeContext? compute = null)
    {
        if (promptIds.Count == 0) return float.NaN;
        var samples = new PolicySampler(policy, compute).Sample(promptIds, 1, maxNewTokens, 1f, stopId, new DeterministicRandom(seed));
        var sequences = promptIds.Select((p, i) => TokenSequence.FromSample(p, samples[i])).Where(s => s.Ids.Length > 1).ToList();
        var policyLogProbs = Compute(policy, sequences, compute: compute);
        var referenceLogProbs = Compute(reference, sequences, compute: compute);
        double total = 0;
        for (int i = 0; i < sequences.Count; i++) total += policyLogProbs[i] - referenceLogProbs[i];
        return (float)(total / sequences.Count);
    }

    /// <summary>
    /// The id that ends an assistant turn in the chat format (null: Loom's <c>&lt;|end|&gt;</c>): its first stop sequence
    /// that is one token of the vocabulary. A one-line error when the tokenizer has none.
    /// </summary>
    public static int EndId(ITokenizer tokenizer, IChatFormat? format = null)
    {
        var stops = (format ?? LoomChatFormat.Instance).StopSequences;
        foreach (var stop in stops)
            if (tokenizer.TokenToId(stop) is int id) return id;
        throw new InvalidDataException($"the tokenizer has no token for the end of a chat turn ({string.Join(" or ", stops)}); chat tuning needs it");
    }
}
