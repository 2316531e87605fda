using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Reward-model training (TRL's RewardTrainer, InstructGPT's RM): the Bradley–Terry loss −log σ(r_chosen − r_rejected)
/// on preference pairs; held-out pairwise accuracy (the share of held-out pairs with r_chosen &gt; r_rejected).
/// </summary>
public static class RewardTuner
{
    public static (TuneResult Result, RewardModel Model) Run(Transformer start, ITokenizer tokenizer, IReadOnlyList<PreferencePair> pairs, TuneOptions options,
        Action<TuneEvent>? report = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (pairs.Count < 2) throw new ArgumentException($"a reward model needs at least 2 preference pairs, got {pairs.Count}");
        var random = new DeterministicRandom(options.Seed);
        var reward = RewardModel.FromLanguageModel(start);
        var headRandom = new DeterministicRandom(options.Seed ^ 0x5C0BEUL);
        var head = reward.Head.Span;
        for (int i = 0; i < head.Length; i++) head[i] = (float)headRandom.NextGaussian() * Transformer.InitStdDev;

        var encoded = pairs.Select(p => (Chosen: TokenSequence.FromResponse(p.Prompt, p.Chosen, tokenizer, options.ChatFormat), Rejected: TokenSequence.FromResponse(p.Prompt, p.Rejected, tokenizer, options.ChatFormat))).ToList();
        var order = TuningLoop.Shuffle(encoded.Count, random);
        int held = (int)(encoded.Count * options.EvalFraction);
        var evalSet = order.Take(held).Select(i => encoded[i]).ToList();
        var trainSet = order.Skip(held).Select(i => encoded[i]).ToList();

        var trainable = options.Lora is LoraOptions lora ? [.. Lora.Attach(start, lora, options.Seed), reward.Head] : reward.Parameters;
        using var loop = new TuningLoop(options, options.Steps, trainable, report);
        int batchSize = Math.Min(options.Batch, trainSet.Count);
        var chosenRows = Enumerable.Range(0, batchSize).ToArray();
        var rejectedRows = Enumerable.Range(batchSize, batchSize).ToArray();
        int cursor = trainSet.Count, stepsDone = 0;
        int[] epochOrder = [];
        for (int step = 0; step < options.Steps && !cancellationToken.IsCancellationRequested; step++)
        {
            var picked = new List<TokenSequence>(2 * batchSize);
            var rejected = new List<TokenSequence>(batchSize);
            for (int i = 0; i < batchSize; i++)
            {
                if (cursor == trainSet.Count) { epochOrder = TuningLoop.Shuffle(trainSet.Count, random); cursor = 0; }
                var pair = trainSet[epochOrder[cursor++]];
                picked.Add(pair.Chosen);
                rejected.Add(pair.Rejected);
            }
            picked.AddRange(rejected);
            var batch = TokenBatch.ForScores(picked, start.Config.MaxSeq);
            loop.Tape.Reset();
            var rewards = reward.Rewards(loop.Tape, batch); // [2·batch, 1]
            var chosenRewards = loop.Tape.GatherRows(rewards, chosenRows); // [batch, 1]
            var rejectedRewards = loop.Tape.GatherRows(rewards, rejectedRows); // [batch, 1]
            var loss = loop.Tape.BradleyTerryLoss(chosenRewards, rejectedRewards); // [1]
            float lossValue = loss.Scalar();
            int correct = 0;
            double margin = 0;
            for (int i = 0; i < batchSize; i++)
            {
                float difference = chosenRewards[i] - rejectedRewards[i];
                margin += difference;
                if (difference > 0) correct++;
            }
            var (learningRate, norm) = loop.Optimize(step, loss);
            stepsDone = step + 1;
            loop.Log(stepsDone, false, ("loss", lossValue), ("accuracy", (float)correct / batchSize), ("margin", (float)(margin / batchSize)),
                ("lr", learningRate), ("grad_norm", norm));
            if (evalSet.Count > 0 && loop.EvaluationDue(stepsDone))
            {
                var (accuracy, evalMargin) = Accuracy(reward, evalSet, loop.Compute);
                loop.Log(stepsDone, true, ("accuracy", accuracy), ("margin", evalMargin));
            }
        }
        if (options.Lora is not null) Lora.Merge(start);
        reward.Save(Path.Combine(options.OutputFolder, TuningLoop.CheckpointFolderName), tokenizer);
        return (loop.Result(stepsDone), reward);
    }

    /// <summary>Share of pairs with r_chosen &gt; r_rejected, and the mean margin, scored on <paramref name="compute"/> (null: the default context).</summary>
    public static (float Accuracy, float Margin) Accuracy(RewardModel reward, IReadOnlyList<(TokenSequence Chosen, TokenSequence Rejected)> pairs,
        ComputeContext? compute = null)
    {
        var chosen = reward.Score([.. pairs.Select(p => p.Chosen)], compute: compute);
        var rejected = reward.Score([.. pairs.Select(p => p.Rejected)], compute: compute);
        int correct = 0;
        double margin = 0;
        for (int i = 0; i < pairs.Count; i++)
        {
            if (chosen[i] > rejected[i]) correct++;
            margin += chosen[i] - rejected[i];
        }
        return ((float)correct / pairs.Count, (float)(margin / pairs.Count));
    }
}
