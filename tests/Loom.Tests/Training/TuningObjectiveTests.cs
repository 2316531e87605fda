using Loom.Models;
using Loom.Tensors;
using Loom.Tests.Models;
using Loom.Training;
using Loom.Training.Tuning;

namespace Loom.Tests.Training;

/// <summary>
/// End-to-end gradient checks of the tuning losses through a whole tiny transformer: the engine's gradient of
/// each parameter against central finite differences of a float64 reference (LlamaReference, which shares no code
/// with the engine). Also checks that the supervised loss counts response tokens only.
/// </summary>
public sealed class TuningObjectiveTests
{
    static readonly LlamaConfig Tiny = new() { VocabSize = 12, Dim = 8, Layers = 1, Heads = 2, KvHeads = 1, HiddenDim = 12, MaxSeq = 8, TiedEmbeddings = false };

    static Transformer Model(int seed)
    {
        var model = new Transformer(Tiny, (ulong)seed);
        var random = new Random(seed);
        foreach (var p in model.Parameters)
        {
            var span = p.Span;
            for (int i = 0; i < span.Length; i++)
                span[i] = p.Rank == 1 ? 1f + (float)(random.NextDouble() - 0.5) * 0.4f : (float)(random.NextDouble() - 0.5);
        }
        return model;
    }

    static LlamaReference Reference(Dictionary<string, double[]> weights) =>
        new(Tiny.VocabSize, Tiny.Dim, Tiny.Layers, Tiny.Heads, Tiny.KvHeads, Tiny.HiddenDim, Tiny.RopeTheta, Tiny.NormEps, tied: false) { Weights = weights };

    static Dictionary<string, double[]> Weights(IEnumerable<Tensor> tensors) =>
        tensors.ToDictionary(p => p.Name!, p => p.Span.ToArray().Select(v => (double)v).ToArray());

    /// <summary>Every entry of <paramref name="checkedTensors"/>: the engine's gradient against central differences of <paramref name="referenceLoss"/>.</summary>
    static void AssertGradients(IReadOnlyList<Tensor> checkedTensors, Dictionary<string, double[]> weights, Func<Dictionary<string, double[]>, double> referenceLoss, double tolerance = 2e-3)
    {
        const double step = 1e-4;
        foreach (var tensor in checkedTensors)
        {
            var values = weights[tensor.Name!];
            var numeric = new double[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                double saved = values[i];
                values[i] = saved + step;
                double plus = referenceLoss(weights);
                values[i] = saved - step;
                double minus = referenceLoss(weights);
                values[i] = saved;
                numeric[i] = (plus - minus) / (2 * step);
            }
            var analytic = tensor.Grad!.Span.ToArray().Select(v => (double)v).ToArray();
            double error = Loom.Tests.Tensors.GradCheck.RelativeError(analytic, numeric);
            Assert.True(error < tolerance, $"{tensor.Name}: relative gradient error {error:E2}");
        }
    }

    static readonly TokenSequence ChosenA = new([1, 2, 3, 4, 5, 6], [false, false, false, true, true, true]);
    static readonly TokenSequence RejectedA = new([1, 2, 3, 7, 8], [false, false, false, true, true]);
    static readonly TokenSequence ChosenB = new([2, 9, 4, 10, 11, 3, 5], [false, false, true, true, true, true, true]);
    static readonly TokenSequence RejectedB = new([2, 9, 4, 0, 6], [false, false, true, true, true]);

    [Fact]
    public void RewardModelBradleyTerryGradientMatchesFiniteDifferences()
    {
        var model = Model(1);
        var reward = new RewardModel(model);
        var random = new Random(2);
        for (int i = 0; i < reward.Head.Length; i++) reward.Head[i] = (float)(random.NextDouble() - 0.5);
        var sequences = new[] { ChosenA, ChosenB, RejectedA, RejectedB };
        var batch = TokenBatch.ForScores(sequences, Tiny.MaxSeq);
        var tape = new Tape();
        var rewards = reward.Rewards(tape, batch); // [4, 1]
        var loss = tape.BradleyTerryLoss(tape.GatherRows(rewards, [0, 1]), tape.GatherRows(rewards, [2, 3]));
        tape.Backward(loss);

        // The reference reads the reward as logit 0 of an LM head whose row 0 is score.weight.
        var weights = Weights(reward.Parameters);
        double ReferenceLoss(Dictionary<string, double[]> w)
        {
            var head = new double[Tiny.VocabSize * Tiny.Dim];
            w[RewardModel.ScoreName].CopyTo(head, 0);
            var body = new Dictionary<string, double[]>(w) { ["lm_head.weight"] = head };
            double Reward(TokenSequence s) => Reference(body).Logits(s.Ids, 1, s.Ids.Length)[(s.Ids.Length - 1) * Tiny.VocabSize];
            double total = 0;
            foreach (var (c, r) in new[] { (ChosenA, RejectedA), (ChosenB, RejectedB) })
                total += Math.Log(1 + Math.Exp(-(Reward(c) - Reward(r))));
            return total / 2;
        }
        Assert.Equal(ReferenceLoss(weights), loss.Scalar(), 4);
        AssertGradients([reward.Head, model.Blocks[0].Attention.Query, model.Blocks[0].Mlp.Down, model.TokenEmbedding, model.FinalNorm], weights, ReferenceLoss);
    }

    /// <summary>log π(response | prompt) from the float64 reference.</summary>
    static double ReferenceLogProb(LlamaReference reference, TokenSequence s)
    {
        int tokens = s.Ids.Length - 1;
        var logits = reference.Logits(s.Ids[..tokens], 1, tokens);
        double total = 0;
        for (int p = 0; p < tokens; p++)
        {
            if (!s.TargetMask[p + 1]) continue;
            double max = double.NegativeInfinity, sum = 0;
            for (int v = 0; v < Tiny.VocabSize; v++) max = Math.Max(max, logits[p * Tiny.VocabSize + v]);
            for (int v = 0; v < Tiny.VocabSize; v++) sum += Math.Exp(logits[p * Tiny.VocabSize + v] - max);
            total += logits[p * Tiny.VocabSize + s.Ids[p + 1]] - max - Math.Log(sum);
        }
        return total;
    }

    [Fact]
    public void DpoGradientThroughSequenceLogProbsMatchesFiniteDifferences()
    {
        const float beta = 0.5f;
        var policy = Model(3);
        var referenceModel = Model(4);
        var referenceWeights = Weights(referenceModel.Parameters);
        var frozen = Reference(referenceWeights);
        var referenceLogProbs = new[] { ChosenA, ChosenB, RejectedA, RejectedB }.Select(s => ReferenceLogProb(frozen, s)).ToArray();
        Assert.Equal(referenceLogProbs.Select(v => (float)v), SequenceLogProbs.Compute(referenceModel, [ChosenA, ChosenB, RejectedA, RejectedB]), (a, b) => Math.Abs(a - b) < 1e-4);

        var batch = TokenBatch.ForLogProbs([ChosenA, ChosenB, RejectedA, RejectedB], Tiny.MaxSeq);
        var tape = new Tape();
        var tokenLogProbs = SequenceLogProbs.TokenLogProbs(tape, policy, batch);
        int[] chosenSegments = [.. batch.SegmentOf.Select(r => r is 0 or 1 ? r : -1)];
        int[] rejectedSegments = [.. batch.SegmentOf.Select(r => r is 2 or 3 ? r - 2 : -1)];
        var loss = tape.DpoLoss(tape.SegmentSum(tokenLogProbs, chosenSegments, 2), tape.SegmentSum(tokenLogProbs, rejectedSegments, 2),
            Tensor.From([(float)referenceLogProbs[0], (float)referenceLogProbs[1]], 2), Tensor.From([(float)referenceLogProbs[2], (float)referenceLogProbs[3]], 2), beta);
        tape.Backward(loss);

        double ReferenceLoss(Dictionary<string, double[]> w)
        {
            var model = Reference(w);
            double total = 0;
            for (int pair = 0; pair < 2; pair++)
            {
                var (c, r) = pair == 0 ? (ChosenA, RejectedA) : (ChosenB, RejectedB);
                double margin = beta * ((ReferenceLogProb(model, c) - referenceLogProbs[pair]) - (ReferenceLogProb(model, r) - referenceLogProbs[pair + 2]));
                total += Math.Log(1 + Math.Exp(-margin));
            }
            return total / 2;
        }
        var weights = Weights(policy.Parameters);
        Assert.Equal(ReferenceLoss(weights), loss.Scalar(), 4);
        AssertGradients([policy.Blocks[0].Attention.Value, policy.Blocks[0].Mlp.Gate, policy.LmHead, policy.TokenEmbedding], weights, ReferenceLoss);
    }

    [Fact]
    public void SupervisedLossCountsResponseTokensOnly()
    {
        var model = Model(5);
        var sequence = ChosenB;
        var batch = TokenBatch.ForLogProbs([sequence], Tiny.MaxSeq);
        float loss = model.Loss(new Tape { Recording = false }, batch.Ids, batch.Targets, 1, batch.Tokens).Scalar();
        int responseTokens = sequence.TargetMask.Skip(1).Count(m => m);
        Assert.Equal(responseTokens, batch.Targets.Count(t => t != TokenBatch.IgnoreIndex));
        Assert.Equal(-ReferenceLogProb(Reference(Weights(model.Parameters)), sequence) / responseTokens, loss, 4);

        // Changing a prompt token's id changes only a target that is masked: the loss over the same logits is unchanged,
        // while changing a response target does change it.
        var promptIds = (int[])sequence.Ids.Clone();
        promptIds[1] = 7; // a prompt token that is only ever a target (position 0 predicts it): the loss must not see it
        var secondPrompt = TokenBatch.ForLogProbs([new TokenSequence(promptIds, sequence.TargetMask)], Tiny.MaxSeq);
        var tape = new Tape { Recording = false };
        var logits = model.Forward(tape, batch.Ids, 1, batch.Tokens);
        float same = tape.CrossEntropy(logits, secondPrompt.Targets).Scalar();
        Assert.Equal(loss, same);
        var responseChanged = (int[])batch.Targets.Clone();
        int first = Array.FindIndex(responseChanged, t => t != TokenBatch.IgnoreIndex);
        responseChanged[first] = (responseChanged[first] + 1) % Tiny.VocabSize;
        Assert.NotEqual(loss, tape.CrossEntropy(logits, responseChanged).Scalar());
    }

    [Fact]
    public void PackingPlacesSeveralExamplesPerRowAndKeepsEveryResponseToken()
    {
        var sequences = new[] { ChosenA, RejectedA, ChosenB, RejectedB, ChosenA };
        var batches = TokenBatch.Pack(sequences, 12, 2);
        int rows = batches.Sum(b => b.Batch);
        Assert.True(rows < sequences.Length, $"{rows} rows for {sequences.Length} examples: nothing was packed");
        int expected = sequences.Sum(s => s.TargetMask.Skip(1).Count(m => m));
        int actual = batches.Sum(b => b.Targets.Count(t => t != TokenBatch.IgnoreIndex));
        // The first token of each example is never a target (prompts start every example), so packing loses nothing.
        Assert.Equal(expected, actual);
        Assert.All(batches, b => Assert.All(Enumerable.Range(0, b.Ids.Length), i => Assert.True(b.Targets[i] == TokenBatch.IgnoreIndex || b.SegmentOf[i] == i / b.Tokens)));
    }
}
