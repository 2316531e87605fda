using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Samples responses from a causal LM for tuning (RL rollouts, preference data, evaluation) through the
/// <see cref="TransformerDecoder"/> that serving uses, so the rollouts come from the same forward pass, LoRA
/// adapters included: each row's prompt is prefilled into a cache slot, then the active rows decode together,
/// one token each per step; a finished row's slot takes the next waiting row. Prompts may differ in length.
/// Tokens are drawn by a <see cref="Sampler"/> from the caller's random stream: seeded and reproducible.
/// </summary>
public sealed class PolicySampler
{
    /// <summary>Rows decoded together at most; more wait for a free slot (the cache holds this many sequences).</summary>
    public const int MaxSlots = 16;

    readonly Transformer model;
    readonly ComputeContext? compute;
    TransformerDecoder? decoder;

    /// <param name="compute">The threads the kernels run on; null means <see cref="ComputeContext.Default"/>.</param>
    public PolicySampler(Transformer model, ComputeContext? compute = null)
    {
        this.model = model;
        this.compute = compute;
    }

    /// <summary>
    /// For each prompt, <paramref name="samplesPerPrompt"/> responses of at most <paramref name="maxNewTokens"/> ids
    /// (fewer where the model's context ends first), each ending with <paramref name="stopId"/> when the model
    /// produced it. Results are ordered prompt by prompt. Temperature 0 is greedy.
    /// </summary>
    public int[][] Sample(IReadOnlyList<int[]> prompts, int samplesPerPrompt, int maxNewTokens, float temperature, int stopId, DeterministicRandom random)
    {
        if (samplesPerPrompt < 1) throw new ArgumentException($"samplesPerPrompt must be positive, got {samplesPerPrompt}", nameof(samplesPerPrompt));
        if (maxNewTokens < 1) throw new ArgumentException($"maxNewTokens must be positive, got {maxNewTokens}", nameof(maxNewTokens));
        int maxSeq = model.Config.MaxSeq, vocab = model.Config.VocabSize;
        int rows = prompts.Count * samplesPerPrompt;
        var results = new int[rows][];
        if (rows == 0) return results;
        int context = 0;
        foreach (var prompt in prompts)
        {
            if (prompt.Length >= maxSeq) throw new ArgumentException($"a prompt of {prompt.Length} tokens leaves no room in the model's context of {maxSeq}", nameof(prompts));
            context = Math.Max(context, Math.Min(maxSeq, prompt.Length + maxNewTokens));
        }
        var decoder = Decoder(Math.Min(rows, MaxSlots), context);
        var sampler = new Sampler(new SamplingOptions { Temperature = temperature }, vocab, random);

        // Row r is sample r % samplesPerPrompt of prompt r / samplesPerPrompt; a slot holds one row at a time.
        var responses = new List<int>[rows];
        var rowOf = new int[decoder.SlotCount]; // [slots] row in each slot
        var activeSlots = new int[decoder.SlotCount]; // [active] slots still generating, in the order they started
        var nextTokens = new int[decoder.SlotCount]; // [active] each active slot's last token
        var logits = new float[decoder.SlotCount * vocab]; // [active, vocab]
        int active = 0, nextRow = 0;
        while (active > 0 || nextRow < rows)
        {
            // Fill free slots: prefill the prompt, draw the first token.
            for (int slot = 0; slot < decoder.SlotCount && nextRow < rows;)
            {
                if (activeSlots.AsSpan(0, active).Contains(slot)) { slot++; continue; }
                int row = nextRow++;
                var first = logits.AsSpan(0, vocab);
                decoder.Prefill(slot, prompts[row / samplesPerPrompt], first);
                responses[row] = [];
                rowOf[slot] = row;
                int token = sampler.Sample(first, []);
                if (Append(row, token)) { decoder.Release(slot); continue; } // done at once: the slot takes the next row
                activeSlots[active] = slot;
                nextTokens[active] = token;
                active++;
                slot++;
            }
            if (active == 0) continue;
            // One decode step for every active row; finished rows free their slots.
            decoder.Decode(activeSlots.AsSpan(0, active), nextTokens.AsSpan(0, active), logits.AsSpan(0, active * vocab));
            int kept = 0;
            for (int i = 0; i < active; i++)
            {
                int slot = activeSlots[i], row = rowOf[slot];
                int token = sampler.Sample(logits.AsSpan(i * vocab, vocab), []);
                if (Append(row, token)) { decoder.Release(slot); continue; }
                activeSlots[kept] = slot;
                nextTokens[kept] = token;
                kept++;
            }
            active = kept;
        }
        for (int r = 0; r < rows; r++) results[r] = [.. responses[r]];
        return results;

        // Adds a token to a row's response; true when the row is done (stop token, token budget or context used up).
        bool Append(int row, int token)
        {
            var response = responses[row];
            response.Add(token);
            int length = prompts[row / samplesPerPrompt].Length + response.Count;
            return token == stopId || response.Count >= maxNewTokens || length >= maxSeq;
        }
    }

    /// <summary>The decoder, remade when a call needs more slots or a longer context than the last one had.</summary>
    TransformerDecoder Decoder(int slots, int context)
    {
        if (decoder is null || decoder.SlotCount < slots || decoder.ContextLength < context)
        {
            decoder?.Dispose();
            decoder = new TransformerDecoder(model, Math.Max(slots, decoder?.SlotCount ?? 0), Math.Max(context, decoder?.ContextLength ?? 0), compute);
        }
        return decoder;
    }
}

/// <summary>
/// Best-of-n at generation time: sample n responses from a policy, score each with a reward model, return them
/// best first. Raises quality without training; the reward model, not the user's judge, chooses.
/// </summary>
public sealed class BestOfN
{
    readonly PolicySampler sampler;
    readonly RewardModel rewardModel;
    readonly ITokenizer tokenizer;
    readonly ComputeContext? compute;
    readonly IChatFormat format;

    /// <param name="compute">The threads sampling and scoring run on; null means <see cref="ComputeContext.Default"/>.</param>
    /// <param name="format">The policy's chat format; null means Loom's.</param>
    public BestOfN(Transformer policy, RewardModel rewardModel, ITokenizer tokenizer, ComputeContext? compute = null, IChatFormat? format = null)
    {
        this.compute = compute;
        this.format = format ?? LoomChatFormat.Instance;
        sampler = new PolicySampler(policy, compute);
        this.rewardModel = rewardModel;
        this.tokenizer = tokenizer;
    }

    /// <summary>The n responses to <paramref name="prompt"/> with their rewards, highest reward first.</summary>
    public IReadOnlyList<(string Response, float Reward)> Generate(IReadOnlyList<ChatTurn> prompt, int n, int maxNewTokens, float temperature, DeterministicRandom random)
    {
        if (n < 1) throw new ArgumentException($"best-of-n needs n >= 1, got {n}", nameof(n));
        int stopId = SequenceLogProbs.EndId(tokenizer, format);
        var (promptIds, _) = format.Encode(prompt, tokenizer, addGenerationPrompt: true);
        var samples = sampler.Sample([promptIds], n, maxNewTokens, temperature, stopId, random);
        var texts = samples.Select(s => tokenizer.Decode(s, skipSpecialTokens: true)).ToList();
        var rewards = rewardModel.Score([.. texts.Select(t => TokenSequence.FromResponse(prompt, t, tokenizer, format))], compute: compute);
        return [.. texts.Select((t, i) => (t, rewards[i])).OrderByDescending(x => x.Item2)];
    }

    /// <summary>
    /// Ranks continuations made elsewhere (e.g. by the serving engine) of a plain-text prompt: each is scored as the
    /// text prompt + continuation, tokenized by <paramref name="tokenizer"/> (the reward model's). Highest reward first.
    /// Scored on <paramref name="compute"/> (null: the default context).
    /// </summary>
    public static IReadOnlyList<(string Response, float Reward)> Rank(RewardModel rewardModel, ITokenizer tokenizer, string prompt, IReadOnlyList<string> continuations,
        ComputeContext? compute = null)
    {
        var sequences = continuations.Select(c =>
        {
            var ids = tokenizer.Encode(prompt + c);
            return new TokenSequence(ids, new bool[ids.Length]);
        }).ToList();
        var rewards = rewardModel.Score(sequences, compute: compute);
        return [.. continuations.Select((c, i) => (c, rewards[i])).OrderByDescending(x => x.Item2)];
    }
}
