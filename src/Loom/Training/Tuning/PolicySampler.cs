using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Samples responses from a causal LM for tuning (RL rollouts, preference data, evaluation): rows whose prompts
/// have the same length are decoded together, each step running the model over the whole prefix in inference
/// mode (no tape, no KV cache: fine for the short sequences of tuning runs). Seeded and reproducible.
/// </summary>
public sealed class PolicySampler
{
    readonly Transformer model;
    readonly Tape tape = new() { Recording = false };

    public PolicySampler(Transformer model) => this.model = model;

    /// <summary>
    /// For each prompt, <paramref name="samplesPerPrompt"/> responses of at most <paramref name="maxNewTokens"/> ids,
    /// each ending with <paramref name="stopId"/> when the model produced it. Results are ordered prompt by prompt.
    /// Temperature 0 is greedy.
    /// </summary>
    public int[][] Sample(IReadOnlyList<int[]> prompts, int samplesPerPrompt, int maxNewTokens, float temperature, int stopId, DeterministicRandom random)
    {
        var results = new int[prompts.Count * samplesPerPrompt][];
        foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Length))
        {
            var members = group.ToList();
            int promptLength = group.Key;
            int steps = Math.Min(maxNewTokens, model.Config.MaxSeq - promptLength);
            if (steps <= 0) throw new ArgumentException($"a prompt of {promptLength} tokens leaves no room in the model's context of {model.Config.MaxSeq}");
            int rows = members.Count * samplesPerPrompt;
            var sequences = new List<int>[rows];
            var done = new bool[rows];
            for (int m = 0; m < members.Count; m++)
                for (int s = 0; s < samplesPerPrompt; s++)
                    sequences[m * samplesPerPrompt + s] = [.. prompts[members[m]]];
            var last = new int[rows];
            var probabilities = new float[model.Config.VocabSize];
            for (int step = 0; step < steps && done.Contains(false); step++)
            {
                int length = promptLength + step;
                var ids = new int[rows * length];
                for (int r = 0; r < rows; r++)
                {
                    for (int p = 0; p < length; p++) ids[r * length + p] = sequences[r][p];
                    last[r] = r * length + length - 1;
                }
                tape.Reset();
                var hidden = model.ForwardHidden(tape, ids, rows, length); // [rows, length, dim]
                var final = tape.GatherRows(hidden, last); // [rows, dim]
                var logits = tape.MatMul(final, model.LmHead, transposeW: true); // [rows, vocab]
                int vocab = model.Config.VocabSize;
                for (int r = 0; r < rows; r++)
                {
                    int next = done[r] ? stopId : Choose(logits.Span.Slice(r * vocab, vocab), temperature, probabilities, random);
                    sequences[r].Add(next);
                    if (next == stopId) done[r] = true;
                }
            }
            for (int m = 0; m < members.Count; m++)
                for (int s = 0; s < samplesPerPrompt; s++)
                {
                    var sequence = sequences[m * samplesPerPrompt + s];
                    var response = sequence.Skip(promptLength).ToList();
                    int stop = response.IndexOf(stopId);
                    if (stop >= 0) response.RemoveRange(stop + 1, response.Count - stop - 1);
                    results[members[m] * samplesPerPrompt + s] = [.. response];
                }
        }
        return results;
    }

    /// <summary>A token from softmax(logits / temperature), or the arg-max when temperature is 0.</summary>
    static int Choose(ReadOnlySpan<float> logits, float temperature, float[] probabilities, DeterministicRandom random)
    {
        if (temperature <= 0f) return Sampler.ArgMax(logits);
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = MathF.Max(max, v);
        double total = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            probabilities[i] = MathF.Exp((logits[i] - max) / temperature);
            total += probabilities[i];
        }
        double u = random.NextDouble() * total;
        for (int i = 0; i < logits.Length; i++)
        {
            u -= probabilities[i];
            if (u <= 0) return i;
        }
        return logits.Length - 1;
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

    public BestOfN(Transformer policy, RewardModel rewardModel, ITokenizer tokenizer)
    {
        sampler = new PolicySampler(policy);
        this.rewardModel = rewardModel;
        this.tokenizer = tokenizer;
    }

    /// <summary>The n responses to <paramref name="prompt"/> with their rewards, highest reward first.</summary>
    public IReadOnlyList<(string Response, float Reward)> Generate(IReadOnlyList<ChatTurn> prompt, int n, int maxNewTokens, float temperature, DeterministicRandom random)
    {
        if (n < 1) throw new ArgumentException($"--best-of must be positive, got {n}");
        int stopId = tokenizer.TokenToId(ChatTemplate.End) ?? throw new InvalidDataException($"the tokenizer has no {ChatTemplate.End} token");
        var (promptIds, _) = ChatTemplate.Encode(prompt, tokenizer, addGenerationPrompt: true);
        var samples = sampler.Sample([promptIds], n, maxNewTokens, temperature, stopId, random);
        var texts = samples.Select(s => tokenizer.Decode(s, skipSpecialTokens: true)).ToList();
        var rewards = rewardModel.Score([.. texts.Select(t => TokenSequence.FromResponse(prompt, t, tokenizer))]);
        return [.. texts.Select((t, i) => (t, rewards[i])).OrderByDescending(x => x.Item2)];
    }
}
