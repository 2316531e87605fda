using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>Settings of online RL with GRPO.</summary>
public sealed record GrpoOptions
{
    /// <summary>Responses sampled per prompt (G); advantages are normalised within each group.</summary>
    public int GroupSize { get; init; } = 8;
    /// <summary>Longest response, in tokens.</summary>
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>Sampling temperature of the rollouts.</summary>
    public float Temperature { get; init; } = 1f;
    /// <summary>β: weight of the k3 KL penalty to the frozen reference, per token.</summary>
    public float KlCoefficient { get; init; } = 0.04f;
    /// <summary>ε of the clipped ratio.</summary>
    public float ClipEpsilon { get; init; } = 0.2f;

    public GrpoOptions Validate()
    {
        if (GroupSize < 2) throw new ArgumentException($"GrpoOptions.GroupSize must be at least 2, got {GroupSize}");
        if (MaxNewTokens < 1) throw new ArgumentException($"GrpoOptions.MaxNewTokens must be positive, got {MaxNewTokens}");
        if (!(Temperature > 0)) throw new ArgumentException($"GrpoOptions.Temperature must be positive, got {Temperature}");
        if (!(KlCoefficient >= 0)) throw new ArgumentException($"GrpoOptions.KlCoefficient must be ≥ 0, got {KlCoefficient}");
        if (!(ClipEpsilon > 0)) throw new ArgumentException($"GrpoOptions.ClipEpsilon must be positive, got {ClipEpsilon}");
        return this;
    }
}

/// <summary>
/// Online RL from a reward model with GRPO (Shao et al. 2024; TRL's GRPOTrainer): each step samples G responses to
/// each of <see cref="TuneOptions.Batch"/> prompts from the current policy, scores them with the reward model,
/// normalises rewards within each group into advantages (r − mean) / (std + 1e-4), and minimises the clipped
/// surrogate with a k3 KL penalty to the frozen starting model (one gradient step per batch of rollouts, so the
/// old policy is the current one). Reports reward, KL and response length.
/// </summary>
public static class GrpoTuner
{
    public static TuneResult Run(Transformer model, RewardModel rewardModel, ITokenizer tokenizer, IReadOnlyList<IReadOnlyList<ChatTurn>> prompts,
        TuneOptions options, GrpoOptions grpo, Action<TuneEvent>? report = null, string? baseModel = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        grpo.Validate();
        if (prompts.Count == 0) throw new ArgumentException("no prompts to train on");
        if (rewardModel.Model.Config.VocabSize != model.Config.VocabSize)
            throw new ArgumentException($"the reward model's vocabulary ({rewardModel.Model.Config.VocabSize}) differs from the policy's ({model.Config.VocabSize})");
        var random = new DeterministicRandom(options.Seed);
        int stopId = SequenceLogProbs.EndId(tokenizer, options.ChatFormat);
        var promptIds = prompts.Select(p => (options.ChatFormat ?? LoomChatFormat.Instance).Encode(p, tokenizer, addGenerationPrompt: true).Ids).ToList();
        var reference = TuningLoop.FrozenCopy(model);
        var trainable = TuningLoop.Trainable(model, options);
        using var loop = new TuningLoop(options, options.Steps, trainable, report);
        var sampler = new PolicySampler(model, loop.Compute);
        var referenceTape = new Tape(loop.Compute) { Recording = false };
        int promptsPerStep = Math.Min(options.Batch, prompts.Count), group = grpo.GroupSize;
        int cursor = prompts.Count, stepsDone = 0;
        int[] epochOrder = [];
        for (int step = 0; step < options.Steps && !cancellationToken.IsCancellationRequested; step++)
        {
            var picked = new int[promptsPerStep];
            for (int i = 0; i < promptsPerStep; i++)
            {
                if (cursor == prompts.Count) { epochOrder = TuningLoop.Shuffle(prompts.Count, random); cursor = 0; }
                picked[i] = epochOrder[cursor++];
            }
            // Rollouts from the current policy, scored by the reward model.
            var responses = sampler.Sample([.. picked.Select(i => promptIds[i])], group, grpo.MaxNewTokens, grpo.Temperature, stopId, random);
            var texts = responses.Select(r => tokenizer.Decode(r, skipSpecialTokens: true)).ToList();
            var rewards = rewardModel.Score([.. texts.Select((t, k) => TokenSequence.FromResponse(prompts[picked[k / group]], t, tokenizer, options.ChatFormat))], compute: loop.Compute);
            var advantages = new float[rewards.Length];
            for (int p = 0; p < promptsPerStep; p++)
            {
                var slice = rewards.AsSpan(p * group, group);
                double mean = 0, variance = 0;
                foreach (float r in slice) mean += r;
                mean /= group;
                foreach (float r in slice) variance += (r - mean) * (r - mean);
                double std = Math.Sqrt(variance / (group - 1));
                for (int s = 0; s < group; s++) advantages[p * group + s] = (float)((slice[s] - mean) / (std + 1e-4));
            }

            var sequences = responses.Select((r, k) => TokenSequence.FromSample(promptIds[picked[k / group]], r)).ToList();
            var batch = TokenBatch.ForLogProbs(sequences, model.Config.MaxSeq);
            referenceTape.Reset();
            var referenceLogProbs = SequenceLogProbs.TokenLogProbs(referenceTape, reference, batch); // [rows·tokens]
            var tape = loop.Tape;
            tape.Reset();
            var logProbs = SequenceLogProbs.TokenLogProbs(tape, model, batch); // [rows·tokens]
            var oldLogProbs = Tensor.From(logProbs.Span, logProbs.Length); // [rows·tokens], the policy that sampled
            var tokenAdvantages = new Tensor(logProbs.Length); // [rows·tokens]
            var mask = new Tensor(logProbs.Length); // [rows·tokens]
            double kl = 0;
            int counted = 0;
            for (int i = 0; i < batch.SegmentOf.Length; i++)
            {
                int row = batch.SegmentOf[i];
                if (row < 0) continue;
                tokenAdvantages[i] = advantages[row];
                mask[i] = 1f;
                double delta = referenceLogProbs[i] - logProbs[i];
                kl += Math.Exp(delta) - delta - 1;
                counted++;
            }
            var loss = tape.ClippedPolicyLoss(logProbs, oldLogProbs, referenceLogProbs, tokenAdvantages, mask, grpo.ClipEpsilon, grpo.KlCoefficient); // [1]
            float lossValue = loss.Scalar();
            var (learningRate, norm) = loop.Optimize(step, loss);
            stepsDone = step + 1;
            loop.Log(stepsDone, false, ("loss", lossValue), ("reward", rewards.Average()), ("reward_std", StdDev(rewards)),
                ("kl", counted == 0 ? 0f : (float)(kl / counted)), ("kl_per_response", (float)(kl / sequences.Count)),
                ("response_tokens", (float)responses.Average(r => r.Length)), ("lr", learningRate), ("grad_norm", norm));
        }
        TuningLoop.SavePolicy(model, tokenizer, options, baseModel);
        return loop.Result(stepsDone);
    }

    static float StdDev(float[] values)
    {
        double mean = values.Average(), total = 0;
        foreach (float v in values) total += (v - mean) * (v - mean);
        return (float)Math.Sqrt(total / values.Length);
    }
}
