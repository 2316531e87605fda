using Loom.Tensors;
using Loom.Training;

namespace Loom.Tests.Tensors;

[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public class AllocationCollection;

/// <summary>A training step allocates nothing after warm-up (runs alone: the counter is process-wide).</summary>
[Collection(nameof(AllocationCollection))]
public class AllocationTests
{
    const int Vocab = 37, Dim = 20, Hidden = 33, Batch = 2, Tokens = 5, Heads = 2;

    [Fact]
    public void TrainingStepAllocatesNothingAfterWarmUp()
    {
        var random = new Random(1);
        var embedding = GradCheck.Random(random, 1f, Vocab, Dim);
        var norm = GradCheck.Random(random, 1f, Dim);
        var gate = GradCheck.Random(random, 0.3f, Hidden, Dim);
        var up = GradCheck.Random(random, 0.3f, Hidden, Dim);
        var down = GradCheck.Random(random, 0.3f, Dim, Hidden);
        var head = GradCheck.Random(random, 0.3f, Vocab, Dim);
        Tensor[] parameters = [embedding, norm, gate, up, down, head];
        var optimizer = new AdamW(parameters, new AdamWOptions());
        int[] ids = [.. Enumerable.Range(0, Batch * Tokens).Select(i => i * 7 % Vocab)];
        int[] targets = [.. Enumerable.Range(0, Batch * Tokens).Select(i => i % 4 == 3 ? -100 : i * 5 % Vocab)];
        int[] lastRows = [Tokens - 1, 2 * Tokens - 1];
        int[] lastTargets = [1, -100];
        var tape = new Tape();

        float Step()
        {
            tape.Reset();
            optimizer.ZeroGrad();
            var h = tape.Embedding(embedding, ids, Batch, Tokens); // [batch, tokens, dim]
            var n = tape.Rope(tape.RmsNorm(h, norm, 1e-5f), Heads, Dim / Heads, 10000f); // [batch, tokens, dim]
            var a = tape.SwiGlu(tape.MatMul(n, gate, true), tape.MatMul(n, up, true)); // [batch, tokens, hidden]
            var r = tape.Add(h, tape.MatMul(a, down, true)); // [batch, tokens, dim]
            var loss = tape.CrossEntropy(tape.MatMul(r, head, true), targets); // [1]
            var scores = tape.BatchedMatMul(r, r, transposeB: true); // [batch, tokens, tokens]
            var mixed = tape.Scale(tape.Mul(scores, scores), 0.01f); // [batch, tokens, tokens]
            var logProbs = tape.TokenLogProbs(tape.GatherRows(mixed, lastRows), lastTargets); // [2]
            var total = tape.Add(loss, tape.Mean(tape.Sum(logProbs))); // [1]
            tape.Backward(total);
            GradientClipping.ClipGradientNorm(parameters, 1f, ComputeContext.Default);
            optimizer.Step(1e-3f);
            return total.Scalar();
        }

        Assert.Equal(0, AllocationProbe.FewestBytes(() => Step(), warmUp: 2));
    }
}
