using Loom.Tensors;

namespace Loom.Models;

/// <summary>How the next token is chosen. Null or default fields mean "off"; <see cref="Temperature"/> 0 is greedy.</summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0 picks the most likely token (greedy).</summary>
    public float Temperature { get; init; } = 1f;
    /// <summary>Keep only the K most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probabilities sum to at least P (nucleus); 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens whose probability is below MinP times the most likely token's; 0 keeps all.</summary>
    public float MinP { get; init; }
    /// <summary>CTRL-style penalty on tokens already present: positive logits divided by it, negative multiplied; 1 is off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Subtracted from a token's logit once per earlier occurrence (OpenAI frequency_penalty).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Subtracted from a token's logit if it occurred at all (OpenAI presence_penalty).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>How many of the most recent tokens the penalties look at; 0 means all.</summary>
    public int PenaltyWindow { get; init; }
    /// <summary>Seed of the sampling random stream; null draws one from the system.</summary>
    public int? Seed { get; init; }
    /// <summary>Added to the logits of these token ids before sampling (OpenAI logit_bias), each in [-100, 100]; null adds nothing.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0f };

    /// <summary>Throws a one-line error naming the field when a value is out of range.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be >= 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top_k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min_p must be in [0, 1], got {MinP}");
        if (!(RepetitionPenalty > 0)) throw new ArgumentException($"repetition_penalty must be > 0, got {RepetitionPenalty}");
        if (PenaltyWindow < 0) throw new ArgumentException($"penalty window must be >= 0, got {PenaltyWindow}");
        if (LogitBias is null) return;
        foreach (var (token, bias) in LogitBias)
        {
            if (token < 0) throw new ArgumentException($"SamplingOptions.LogitBias: token id {token} is negative");
            if (!(bias >= -100 && bias <= 100)) throw new ArgumentException($"SamplingOptions.LogitBias[{token}] must be in [-100, 100], got {bias}");
        }
    }
}

/// <summary>
/// Turns one row of logits into a token: penalties, temperature, then top-k, top-p and min-p
/// filters, then a draw. Buffers are sized once for the vocabulary, so sampling allocates nothing.
/// With the filters and penalties off it draws from softmax(logits / temperature) by inverting the
/// cumulative distribution at one uniform number; at temperature 0 it takes the arg-max.
/// One sampler per sequence (it owns that sequence's random stream), or one for many sequences that
/// share a caller's stream.
/// </summary>
public sealed class Sampler
{
    readonly SamplingOptions options;
    readonly DeterministicRandom random;
    readonly int[] order;       // [vocab] candidate token ids, sorted by logit when filters need it
    readonly float[] probs;     // [vocab] probabilities in the order of `order`
    readonly int[] counts;      // [vocab] occurrences of each token in the penalty window
    readonly float[] sortKeys;  // [vocab] negated logits, the sort keys

    /// <param name="options">How to choose.</param>
    /// <param name="vocabSize">Entries of a logits row.</param>
    /// <param name="random">The stream to draw from; null makes one from <see cref="SamplingOptions.Seed"/> (or a fresh seed).</param>
    public Sampler(SamplingOptions options, int vocabSize, DeterministicRandom? random = null)
    {
        options.Validate();
        foreach (int token in options.LogitBias?.Keys ?? [])
            if (token >= vocabSize) throw new ArgumentException($"SamplingOptions.LogitBias: token id {token} is outside the vocabulary of {vocabSize}");
        this.options = options;
        this.random = random ?? new DeterministicRandom(options.Seed is int seed ? unchecked((ulong)seed) : (ulong)Random.Shared.NextInt64());
        order = new int[vocabSize];
        probs = new float[vocabSize];
        counts = new int[vocabSize];
        sortKeys = new float[vocabSize];
    }

    public SamplingOptions Options => options;

    /// <summary>
    /// Chooses the next token. <paramref name="logits"/> [vocab] is modified in place: on return it holds the logits
    /// the draw saw, penalties and <see cref="SamplingOptions.LogitBias"/> applied, before temperature.
    /// </summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (logits.Length != order.Length) throw new ArgumentException($"logits have {logits.Length} entries, the sampler was made for {order.Length}");
        ApplyPenalties(logits, history);
        if (options.LogitBias is { } biases)
            foreach (var (token, bias) in biases) logits[token] += bias;
        float invTemperature = 1f / options.Temperature;
        // A temperature so small that 1/T overflows (a subnormal such as 1e-45) is the greedy limit, not NaN.
        if (options.Temperature == 0f || options.TopK == 1 || !float.IsFinite(invTemperature)) return ArgMax(logits);

        int vocab = logits.Length;
        bool needsSort = options.TopK > 0 || options.TopP < 1f;
        for (int i = 0; i < vocab; i++) order[i] = i;
        var candidates = order.AsSpan(0, vocab);
        if (needsSort) SortByLogitDescending(logits, candidates);
        int count = options.TopK > 0 ? Math.Min(options.TopK, vocab) : vocab;

        // softmax over the candidates, in order
        float max = float.NegativeInfinity;
        for (int i = 0; i < count; i++) max = Math.Max(max, logits[candidates[i]]);
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            // A masked token (structured output, logit_bias -inf) has probability 0: no call into exp, whose special
            // case for -inf is many times slower than its common path.
            float logit = logits[candidates[i]];
            float p = logit == float.NegativeInfinity ? 0f : MathF.Exp((logit - max) * invTemperature);
            probs[i] = p;
            sum += p;
        }
        float invSum = (float)(1 / sum);
        for (int i = 0; i < count; i++) probs[i] *= invSum;

        if (options.TopP < 1f)
        {
            double cumulative = 0;
            int keep = count;
            for (int i = 0; i < count; i++)
            {
                cumulative += probs[i];
                if (cumulative >= options.TopP) { keep = i + 1; break; }
            }
            count = keep;
        }
        if (options.MinP > 0f)
        {
            float best = 0f;
            for (int i = 0; i < count; i++) best = Math.Max(best, probs[i]);
            float threshold = options.MinP * best;
            int kept = 0;
            for (int i = 0; i < count; i++)
                if (probs[i] >= threshold) { candidates[kept] = candidates[i]; probs[kept] = probs[i]; kept++; }
            count = kept;
        }

        double total = 0;
        for (int i = 0; i < count; i++) total += probs[i];
        double draw = random.NextDouble() * total;
        double running = 0;
        for (int i = 0; i < count; i++)
        {
            running += probs[i];
            if (draw < running) return candidates[i];
        }
        return candidates[count - 1];
    }

    void ApplyPenalties(Span<float> logits, ReadOnlySpan<int> history)
    {
        bool any = options.RepetitionPenalty != 1f || options.FrequencyPenalty != 0f || options.PresencePenalty != 0f;
        if (!any || history.IsEmpty) return;
        var window = options.PenaltyWindow > 0 && history.Length > options.PenaltyWindow ? history[^options.PenaltyWindow..] : history;
        foreach (int token in window)
            if ((uint)token < (uint)counts.Length) counts[token]++;
        foreach (int token in window)
        {
            if ((uint)token >= (uint)counts.Length || counts[token] == 0) continue;
            float logit = logits[token];
            if (options.RepetitionPenalty != 1f)
                logit = logit > 0 ? logit / options.RepetitionPenalty : logit * options.RepetitionPenalty;
            logit -= options.FrequencyPenalty * counts[token] + options.PresencePenalty;
            logits[token] = logit;
            counts[token] = 0; // each distinct token is penalised once
        }
    }

    /// <summary>Index of the largest logit; the lowest index wins ties.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Orders <paramref name="ids"/> (all of 0..vocab-1) by descending logit.</summary>
    void SortByLogitDescending(ReadOnlySpan<float> logits, Span<int> ids)
    {
        var keys = sortKeys.AsSpan(0, ids.Length);
        for (int i = 0; i < ids.Length; i++) keys[i] = -logits[ids[i]];
        keys.Sort(ids);
    }
}
