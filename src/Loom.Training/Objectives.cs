using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// The tuning objectives over per-sequence scores: Bradley–Terry for reward models, DPO, and the
/// clipped policy objective of PPO/GRPO with a KL penalty. Inputs are small [batch] or [tokens]
/// tensors (sequence log-probabilities, rewards), so these are plain scalar loops.
/// </summary>
public static class Objectives
{
    /// <summary>
    /// Sums rows of <paramref name="values"/> [rows] into segments: output[s] = Σ values[r] over rows with
    /// segmentOf[r] == s (rows with −1 belong to none). Turns per-token log-probabilities into per-sequence ones.
    /// </summary>
    public static Tensor SegmentSum(this Tape tape, Tensor values, int[] segmentOf, int segmentCount)
    {
        if (segmentOf.Length < values.Length) throw new ArgumentException($"segmentOf has {segmentOf.Length} entries for {values.Length} rows");
        var output = tape.AllocateZeroed(segmentCount); // [segments]
        var x = values.Span;
        var y = output.Span;
        for (int r = 0; r < x.Length; r++)
        {
            int s = segmentOf[r];
            if (s < 0) continue;
            if (s >= segmentCount) throw new ArgumentException($"segmentOf[{r}] = {s} is outside 0..{segmentCount - 1}");
            y[s] += x[r];
        }
        if (tape.NeedsGrad(values))
            tape.Record(new TapeEntry { Op = SegmentSumBackward.Instance, Output = output, A = values, Indices = segmentOf });
        return output;
    }

    /// <summary>Reward-model loss: mean over pairs of −log σ(r_chosen − r_rejected). Inputs [pairs].</summary>
    public static Tensor BradleyTerryLoss(this Tape tape, Tensor chosenRewards, Tensor rejectedRewards)
    {
        CheckSameLength(chosenRewards, rejectedRewards);
        int pairs = chosenRewards.Length;
        var loss = tape.Allocate(1);
        double sum = 0;
        for (int i = 0; i < pairs; i++) sum += -LogSigmoid(chosenRewards[i] - rejectedRewards[i]);
        loss[0] = (float)(sum / pairs);
        if (tape.NeedsGrad(chosenRewards, rejectedRewards))
            tape.Record(new TapeEntry { Op = BradleyTerryBackward.Instance, Output = loss, A = chosenRewards, B = rejectedRewards });
        return loss;
    }

    /// <summary>
    /// DPO loss: mean over pairs of −log σ(β·[(π_c − ref_c) − (π_r − ref_r)]), where π and ref are
    /// sequence log-probabilities [pairs] of the policy and the frozen reference (the reference gets no gradient).
    /// </summary>
    public static Tensor DpoLoss(this Tape tape, Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, float beta)
    {
        CheckSameLength(policyChosen, policyRejected);
        CheckSameLength(policyChosen, referenceChosen);
        CheckSameLength(policyChosen, referenceRejected);
        if (!(beta > 0)) throw new ArgumentException($"beta must be > 0, got {beta}");
        int pairs = policyChosen.Length;
        var loss = tape.Allocate(1);
        double sum = 0;
        for (int i = 0; i < pairs; i++)
            sum += -LogSigmoid(beta * ((policyChosen[i] - referenceChosen[i]) - (policyRejected[i] - referenceRejected[i])));
        loss[0] = (float)(sum / pairs);
        if (tape.NeedsGrad(policyChosen, policyRejected))
            tape.Record(new TapeEntry { Op = DpoBackward.Instance, Output = loss, A = policyChosen, B = policyRejected, C = referenceChosen, D = referenceRejected, F0 = beta });
        return loss;
    }

    /// <summary>
    /// The clipped surrogate of PPO and GRPO, per token, with a KL penalty to the reference:
    /// loss = mean over counted tokens of −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·KL, where ρ = exp(logp − oldLogp)
    /// and KL is the unbiased k3 estimator exp(ref − logp) − (ref − logp) − 1. Inputs [tokens]; tokens with
    /// mask 0 do not count. Only <paramref name="logProbs"/> gets a gradient.
    /// </summary>
    public static Tensor ClippedPolicyLoss(this Tape tape, Tensor logProbs, Tensor oldLogProbs, Tensor referenceLogProbs, Tensor advantages, Tensor mask, float clipEpsilon, float klCoefficient)
    {
        CheckSameLength(logProbs, oldLogProbs);
        CheckSameLength(logProbs, referenceLogProbs);
        CheckSameLength(logProbs, advantages);
        CheckSameLength(logProbs, mask);
        var loss = tape.Allocate(1);
        double sum = 0, count = 0;
        for (int i = 0; i < logProbs.Length; i++)
        {
            if (mask[i] == 0) continue;
            double ratio = Math.Exp(logProbs[i] - oldLogProbs[i]);
            double clipped = Math.Clamp(ratio, 1 - clipEpsilon, 1 + clipEpsilon);
            double surrogate = Math.Min(ratio * advantages[i], clipped * advantages[i]);
            double delta = referenceLogProbs[i] - logProbs[i];
            double kl = Math.Exp(delta) - delta - 1;
            sum += -surrogate + klCoefficient * kl;
            count++;
        }
        loss[0] = count == 0 ? 0f : (float)(sum / count);
        if (tape.NeedsGrad(logProbs))
            tape.Record(new TapeEntry
            {
                Op = ClippedPolicyBackward.Instance, Output = loss, A = logProbs, B = oldLogProbs, C = referenceLogProbs, D = advantages,
                E = mask, F0 = clipEpsilon, F1 = klCoefficient, I0 = (int)count,
            });
        return loss;
    }

    static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));

    static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    static void CheckSameLength(Tensor a, Tensor b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"inputs differ in length: {a.ShapeText} and {b.ShapeText}");
    }

    sealed class SegmentSumBackward : IBackward
    {
        public static readonly SegmentSumBackward Instance = new();

        public void Backward(in TapeEntry e, Tape tape)
        {
            var dOutput = e.Output.Grad!.Span;
            var dValues = tape.GradOf(e.A!).Span;
            var segmentOf = e.Indices!;
            for (int r = 0; r < dValues.Length; r++)
                if (segmentOf[r] >= 0) dValues[r] += dOutput[segmentOf[r]];
        }
    }

    sealed class BradleyTerryBackward : IBackward
    {
        public static readonly BradleyTerryBackward Instance = new();

        public void Backward(in TapeEntry e, Tape tape)
        {
            var chosen = e.A!;
            var rejected = e.B!;
            int pairs = chosen.Length;
            double scale = e.Output.Grad!.Span[0] / (double)pairs;
            // d/dm −log σ(m) = −σ(−m)
            for (int i = 0; i < pairs; i++)
            {
                float g = (float)(-Sigmoid(-(chosen[i] - rejected[i])) * scale);
                if (chosen.RequiresGrad) tape.GradOf(chosen).Span[i] += g;
                if (rejected.RequiresGrad) tape.GradOf(rejected).Span[i] -= g;
            }
        }
    }

    sealed class DpoBackward : IBackward
    {
        public static readonly DpoBackward Instance = new();

        public void Backward(in TapeEntry e, Tape tape)
        {
            var policyChosen = e.A!;
            var policyRejected = e.B!;
            var referenceChosen = e.C!;
            var referenceRejected = e.D!;
            float beta = e.F0;
            int pairs = policyChosen.Length;
            double scale = e.Output.Grad!.Span[0] / (double)pairs;
            for (int i = 0; i < pairs; i++)
            {
                double margin = beta * ((policyChosen[i] - referenceChosen[i]) - (policyRejected[i] - referenceRejected[i]));
                float g = (float)(-Sigmoid(-margin) * beta * scale);
                if (policyChosen.RequiresGrad) tape.GradOf(policyChosen).Span[i] += g;
                if (policyRejected.RequiresGrad) tape.GradOf(policyRejected).Span[i] -= g;
            }
        }
    }

    sealed class ClippedPolicyBackward : IBackward
    {
        public static readonly ClippedPolicyBackward Instance = new();

        public void Backward(in TapeEntry e, Tape tape)
        {
            if (e.I0 == 0) return;
            var logProbs = e.A!.Span;
            var oldLogProbs = e.B!.Span;
            var referenceLogProbs = e.C!.Span;
            var advantages = e.D!.Span;
            var mask = e.E!.Span;
            float clipEpsilon = e.F0, klCoefficient = e.F1;
            double scale = e.Output.Grad!.Span[0] / e.I0;
            var dLogProbs = tape.GradOf(e.A!).Span;
            for (int i = 0; i < logProbs.Length; i++)
            {
                if (mask[i] == 0) continue;
                double ratio = Math.Exp(logProbs[i] - oldLogProbs[i]);
                double advantage = advantages[i];
                // min picks the unclipped term unless clipping makes it smaller; the clipped term is flat in logp.
                double unclipped = ratio * advantage;
                double clippedTerm = Math.Clamp(ratio, 1 - clipEpsilon, 1 + clipEpsilon) * advantage;
                double dSurrogate = unclipped <= clippedTerm ? unclipped : 0; // d(ratio·A)/dlogp = ratio·A
                double delta = referenceLogProbs[i] - logProbs[i];
                double dKl = -Math.Exp(delta) + 1; // d/dlogp of exp(ref − logp) − (ref − logp) − 1
                dLogProbs[i] += (float)((-dSurrogate + klCoefficient * dKl) * scale);
            }
        }
    }
}
