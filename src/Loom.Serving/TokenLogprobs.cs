using System.Text;
using Loom.Text;

namespace Loom.Serving;

/// <summary>Log-probabilities of a logits row: the chosen token's and the most likely alternatives (what OpenAI's logprobs report).</summary>
public static class TokenLogprobs
{
    /// <summary>The largest number of alternatives a request may ask for (OpenAI's top_logprobs limit).</summary>
    public const int MaxTop = 20;

    /// <summary>
    /// log-softmax of <paramref name="logits"/> [vocab] at <paramref name="chosen"/>, and the <paramref name="top"/> most likely
    /// tokens (ties: the lower id first). Masked tokens (-infinity) have log-probability -infinity and are never alternatives.
    /// </summary>
    public static TokenLogprob Compute(ReadOnlySpan<float> logits, int chosen, int top, ITokenizer tokenizer)
    {
        if (top is < 0 or > MaxTop) throw new ArgumentOutOfRangeException(nameof(top), $"top must be in [0, {MaxTop}], got {top}");
        float max = float.NegativeInfinity;
        foreach (float logit in logits) max = Math.Max(max, logit);
        double sum = 0;
        foreach (float logit in logits) sum += Math.Exp(logit - max);
        float logSum = max + (float)Math.Log(sum);

        // The `top` best ids by a partial insertion sort: top is at most 20.
        Span<int> best = stackalloc int[top];
        int count = 0;
        for (int id = 0; id < logits.Length && top > 0; id++)
        {
            if (float.IsNegativeInfinity(logits[id]) || (count == top && logits[id] <= logits[best[count - 1]])) continue;
            int at = count < top ? count++ : count - 1;
            while (at > 0 && logits[best[at - 1]] < logits[id]) { best[at] = best[at - 1]; at--; }
            best[at] = id;
        }
        var alternatives = new TokenAlternative[count];
        for (int i = 0; i < count; i++) alternatives[i] = Alternative(best[i], logits[best[i]] - logSum, tokenizer);
        return new TokenLogprob(Alternative(chosen, logits[chosen] - logSum, tokenizer), alternatives);
    }

    static TokenAlternative Alternative(int id, float logprob, ITokenizer tokenizer)
    {
        byte[] bytes = tokenizer is ByteLevelBpeTokenizer bpe ? bpe.DecodeBytes([id]) : Encoding.UTF8.GetBytes(tokenizer.Decode([id]));
        return new TokenAlternative(id, tokenizer.Decode([id]), bytes, logprob);
    }
}
