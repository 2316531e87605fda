using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Samples responses from a causal LM for tuning (RL rollouts, preference data, evaluation): rows whose prompts
/// have the same length are decoded together, one position per step with a key/value cache, in inference mode
/// (nothing recorded). Seeded and reproducible.
/// </summary>
public sealed class PolicySampler
{
    readonly Transformer model;
    readonly Tape tape;

    /// <param name="model">The policy (read-only).</param>
    /// <param name="compute">The threads the kernels run on; null means <see cref="ComputeContext.Default"/>.</param>
    public PolicySampler(Transformer model, ComputeContext? compute = null)
    {
        this.model = model;
        tape = new Tape(compute) { Recording = false };
    }

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
            var cache = new KvCache(model.Config, rows, promptLength + steps);
            var probabilities = new float[model.Config.VocabSize];
            var next = new int[rows];
            int vocab = model.Config.VocabSize;
            // Prefill one position at a time (rows share the prompt length, so they share positions), then decode.
            for (int position = 0; position < promptLength + steps - 1 && done.Contains(false); position++)
            {
                for (int r = 0; r < rows; r++) next[r] = sequences[r][position];
                var logits = Step(next, rows, position, cache); // [rows, 1, vocab]
                if (position < promptLength - 1) continue;
                for (int r = 0; r < rows; r++)
                {
                    int token = done[r] ? stopId : Choose(logits.Span.Slice(r * vocab, vocab), temperature, probabilities, random);
                    sequences[r].Add(token);
                    if (token == stopId) done[r] = true;
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

    /// <summary>
    /// Runs one position of every row through the model, appending its keys and values to <paramref name="cache"/>:
    /// ids [rows] at <paramref name="position"/> → next-token logits [rows, 1, vocab]. LoRA adapters apply.
    /// </summary>
    Tensor Step(int[] ids, int rows, int position, KvCache cache)
    {
        var config = model.Config;
        int kvDim = config.KvDim, queryDim = config.Heads * config.HeadDim;
        tape.Reset();
        var x = tape.Embedding(model.TokenEmbedding, ids, rows, 1); // [rows, 1, dim]
        for (int layer = 0; layer < model.Blocks.Count; layer++)
        {
            var attention = model.Blocks[layer].Attention;
            var h = tape.RmsNorm(x, attention.Norm, config.NormEps); // [rows, 1, dim]
            var q = LoraAdapter.Linear(tape, h, attention.Query, attention.Adapters); // [rows, 1, heads·headDim]
            var k = LoraAdapter.Linear(tape, h, attention.Key, attention.Adapters); // [rows, 1, kvDim]
            var v = LoraAdapter.Linear(tape, h, attention.Value, attention.Adapters); // [rows, 1, kvDim]
            q = tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta, position);
            k = tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta, position);
            var attended = tape.Allocate(rows, 1, queryDim); // [rows, 1, heads·headDim]
            for (int r = 0; r < rows; r++)
            {
                var keys = cache.Keys[layer].AsSpan(r * cache.Length * kvDim, cache.Length * kvDim); // [length, kvDim]
                var values = cache.Values[layer].AsSpan(r * cache.Length * kvDim, cache.Length * kvDim); // [length, kvDim]
                k.Span.Slice(r * kvDim, kvDim).CopyTo(keys[(position * kvDim)..]);
                v.Span.Slice(r * kvDim, kvDim).CopyTo(values[(position * kvDim)..]);
                AttentionOps.DecodeAttention(q.Span.Slice(r * queryDim, queryDim), keys, values, position + 1, config.Heads, config.KvHeads,
                    attended.Span.Slice(r * queryDim, queryDim), tape.Compute);
            }
            x = tape.Add(x, LoraAdapter.Linear(tape, attended, attention.Output, attention.Adapters)); // [rows, 1, dim]
            x = tape.Add(x, model.Blocks[layer].Mlp.Forward(tape, x)); // [rows, 1, dim]
        }
        x = tape.RmsNorm(x, model.FinalNorm, config.NormEps); // [rows, 1, dim]
        return tape.MatMul(x, model.LmHead, transposeW: true); // [rows, 1, vocab]
    }

    /// <summary>Keys and values of every layer for every row: [layers][rows, length, kvDim].</summary>
    sealed class KvCache
    {
        public KvCache(LlamaConfig config, int rows, int length)
        {
            Length = length;
            Keys = [.. Enumerable.Range(0, config.Layers).Select(_ => new float[rows * length * config.KvDim])];
            Values = [.. Enumerable.Range(0, config.Layers).Select(_ => new float[rows * length * config.KvDim])];
        }

        public int Length { get; }
        public float[][] Keys { get; } // [layers][rows, length, kvDim]
        public float[][] Values { get; } // [layers][rows, length, kvDim]
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
    readonly ComputeContext? compute;

    /// <param name="compute">The threads sampling and scoring run on; null means <see cref="ComputeContext.Default"/>.</param>
    public BestOfN(Transformer policy, RewardModel rewardModel, ITokenizer tokenizer, ComputeContext? compute = null)
    {
        this.compute = compute;
        sampler = new PolicySampler(policy, compute);
        this.rewardModel = rewardModel;
        this.tokenizer = tokenizer;
    }

    /// <summary>The n responses to <paramref name="prompt"/> with their rewards, highest reward first.</summary>
    public IReadOnlyList<(string Response, float Reward)> Generate(IReadOnlyList<ChatTurn> prompt, int n, int maxNewTokens, float temperature, DeterministicRandom random)
    {
        if (n < 1) throw new ArgumentException($"BestOfN.Generate: n must be positive, got {n}");
        int stopId = tokenizer.TokenToId(ChatTemplate.End) ?? throw new InvalidDataException($"the tokenizer has no {ChatTemplate.End} token");
        var (promptIds, _) = ChatTemplate.Encode(prompt, tokenizer, addGenerationPrompt: true);
        var samples = sampler.Sample([promptIds], n, maxNewTokens, temperature, stopId, random);
        var texts = samples.Select(s => tokenizer.Decode(s, skipSpecialTokens: true)).ToList();
        var rewards = rewardModel.Score([.. texts.Select(t => TokenSequence.FromResponse(prompt, t, tokenizer))], compute: compute);
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
