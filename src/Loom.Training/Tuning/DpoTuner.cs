using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Direct Preference Optimization (Rafailov et al. 2023; TRL's DPOTrainer): the loss −log σ(β·[(π_c − ref_c) − (π_r − ref_r)])
/// over preference pairs, against a frozen copy of the starting model whose sequence log-probabilities are computed once.
/// Reports loss, implicit rewards (β·(π − ref)) of chosen and rejected, their margin, accuracy (margin &gt; 0), and
/// KL(policy ‖ reference) estimated on responses sampled from the policy.
/// </summary>
public static class DpoTuner
{
    public static TuneResult Run(Transformer model, ITokenizer tokenizer, IReadOnlyList<PreferencePair> pairs, TuneOptions options, float beta = 0.1f,
        int klPrompts = 16, int maxNewTokens = 48, Action<TuneEvent>? report = null, string? baseModel = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (!(beta > 0) || !float.IsFinite(beta)) throw new ArgumentException($"DpoTuner.Run: beta must be positive, got {beta}");
        if (pairs.Count == 0) throw new ArgumentException("no preference pairs to train on");
        var random = new DeterministicRandom(options.Seed);
        int stopId = SequenceLogProbs.EndId(tokenizer, options.ChatFormat);
        var encoded = pairs.Select(p => (Chosen: TokenSequence.FromResponse(p.Prompt, p.Chosen, tokenizer, options.ChatFormat), Rejected: TokenSequence.FromResponse(p.Prompt, p.Rejected, tokenizer, options.ChatFormat))).ToList();
        var order = TuningLoop.Shuffle(encoded.Count, random);
        int held = encoded.Count >= 20 ? (int)(encoded.Count * options.EvalFraction) : 0;
        var evalIndices = order.Take(held).ToList();
        var trainIndices = order.Skip(held).ToList();

        // The reference is the starting model, frozen; its log-probabilities never change, so compute them once.
        var reference = TuningLoop.FrozenCopy(model);
        var referenceChosen = SequenceLogProbs.Compute(reference, [.. encoded.Select(e => e.Chosen)], compute: options.Compute);
        var referenceRejected = SequenceLogProbs.Compute(reference, [.. encoded.Select(e => e.Rejected)], compute: options.Compute);
        var klPromptIds = pairs.Select(p => (options.ChatFormat ?? LoomChatFormat.Instance).Encode(p.Prompt, tokenizer, addGenerationPrompt: true).Ids)
            .DistinctBy(ids => string.Join(',', ids)).Take(klPrompts).ToList();

        var trainable = TuningLoop.Trainable(model, options);
        using var loop = new TuningLoop(options, options.Steps, trainable, report);
        int batchSize = Math.Min(options.Batch, trainIndices.Count);
        int cursor = trainIndices.Count, stepsDone = 0;
        int[] epochOrder = [];
        var chosenSegments = new int[0];
        var rejectedSegments = new int[0];
        for (int step = 0; step < options.Steps && !cancellationToken.IsCancellationRequested; step++)
        {
            var picked = new int[batchSize];
            for (int i = 0; i < batchSize; i++)
            {
                if (cursor == trainIndices.Count) { epochOrder = TuningLoop.Shuffle(trainIndices.Count, random); cursor = 0; }
                picked[i] = trainIndices[epochOrder[cursor++]];
            }
            var batch = TokenBatch.ForLogProbs([.. picked.Select(i => encoded[i].Chosen), .. picked.Select(i => encoded[i].Rejected)], model.Config.MaxSeq);
            if (chosenSegments.Length != batch.SegmentOf.Length)
            {
                chosenSegments = new int[batch.SegmentOf.Length];
                rejectedSegments = new int[batch.SegmentOf.Length];
            }
            for (int i = 0; i < batch.SegmentOf.Length; i++)
            {
                int row = batch.SegmentOf[i];
                chosenSegments[i] = row >= 0 && row < batchSize ? row : -1;
                rejectedSegments[i] = row >= batchSize ? row - batchSize : -1;
            }
            var tape = loop.Tape;
            tape.Reset();
            var tokenLogProbs = SequenceLogProbs.TokenLogProbs(tape, model, batch); // [2·batch·tokens]
            var policyChosen = tape.SegmentSum(tokenLogProbs, [.. chosenSegments], batchSize); // [batch]
            var policyRejected = tape.SegmentSum(tokenLogProbs, [.. rejectedSegments], batchSize); // [batch]
            var refChosen = Tensor.From([.. picked.Select(i => referenceChosen[i])], batchSize); // [batch]
            var refRejected = Tensor.From([.. picked.Select(i => referenceRejected[i])], batchSize); // [batch]
            var loss = tape.DpoLoss(policyChosen, policyRejected, refChosen, refRejected, beta); // [1]
            float lossValue = loss.Scalar();
            var (rewardChosen, rewardRejected, accuracy) = Rewards(policyChosen.Span, policyRejected.Span, refChosen.Span, refRejected.Span, beta);
            var (learningRate, norm) = loop.Optimize(step, loss);
            stepsDone = step + 1;
            loop.Log(stepsDone, false, ("loss", lossValue), ("rewards_chosen", rewardChosen), ("rewards_rejected", rewardRejected),
                ("reward_margin", rewardChosen - rewardRejected), ("accuracy", accuracy), ("lr", learningRate), ("grad_norm", norm));
            if (loop.EvaluationDue(stepsDone))
            {
                var metrics = new List<(string, float)>();
                if (evalIndices.Count > 0)
                {
                    var evalPairs = evalIndices.Select(i => encoded[i]).ToList();
                    var pc = SequenceLogProbs.Compute(model, [.. evalPairs.Select(e => e.Chosen)], compute: loop.Compute);
                    var pr = SequenceLogProbs.Compute(model, [.. evalPairs.Select(e => e.Rejected)], compute: loop.Compute);
                    var (c, r, a) = Rewards(pc, pr, [.. evalIndices.Select(i => referenceChosen[i])], [.. evalIndices.Select(i => referenceRejected[i])], beta);
                    metrics.Add(("reward_margin", c - r));
                    metrics.Add(("accuracy", a));
                }
                metrics.Add(("kl", SequenceLogProbs.SampledKl(model, reference, klPromptIds, maxNewTokens, stopId, options.Seed + (ulong)stepsDone, loop.Compute)));
                loop.Log(stepsDone, true, [.. metrics]);
            }
        }
        TuningLoop.SavePolicy(model, tokenizer, options, baseModel);
        return loop.Result(stepsDone);
    }

    /// <summary>Mean implicit rewards β·(π − ref) of chosen and rejected, and the share of pairs whose margin is positive.</summary>
    static (float Chosen, float Rejected, float Accuracy) Rewards(ReadOnlySpan<float> policyChosen, ReadOnlySpan<float> policyRejected,
        ReadOnlySpan<float> referenceChosen, ReadOnlySpan<float> referenceRejected, float beta)
    {
        double chosen = 0, rejected = 0;
        int correct = 0, count = policyChosen.Length;
        for (int i = 0; i < count; i++)
        {
            double c = beta * (policyChosen[i] - referenceChosen[i]), r = beta * (policyRejected[i] - referenceRejected[i]);
            chosen += c;
            rejected += r;
            if (c > r) correct++;
        }
        return ((float)(chosen / count), (float)(rejected / count), (float)correct / count);
    }
}
