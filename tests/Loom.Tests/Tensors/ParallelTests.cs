using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>
/// Ops split their work into blocks over a compute context's threads; on inputs large enough for many
/// blocks, the results with several threads must equal, bit for bit, those with one.
/// </summary>
public class ParallelTests
{
    public static TheoryData<string> Ops => ["add", "mul", "scale", "mean", "embedding", "gather", "rmsnorm", "rope", "swiglu", "crossentropy", "logprobs", "batched"];

    [Theory]
    [MemberData(nameof(Ops))]
    public void ThreadsDoNotChangeResults(string op)
    {
        using var one = new ComputeContext(1);
        using var four = new ComputeContext(4);
        var serial = Run(op, one);
        var parallel = Run(op, four);
        Assert.Equal(serial.Length, parallel.Length);
        for (int i = 0; i < serial.Length; i++) Assert.Equal(serial[i], parallel[i]);
    }

    /// <summary>Forward and backward of one op (probe-weighted output); returns output and every input gradient.</summary>
    static float[][] Run(string op, ComputeContext compute)
    {
        const int rows = 96, dim = 386, vocab = 1030;
        var random = new Random(42);
        var a = GradCheck.Random(random, 2f, 4, rows / 4, dim);
        var b = GradCheck.Random(random, 1f, 4, rows / 4, dim);
        var weight = GradCheck.Random(random, 1f, dim);
        var table = GradCheck.Random(random, 1f, 50, dim);
        var logits = GradCheck.Random(random, 3f, rows, vocab);
        int[] ids = [.. Enumerable.Range(0, rows).Select(i => i * 7 % 50)];
        int[] gathered = [.. Enumerable.Range(0, rows * 2).Select(i => i * 5 % rows)];
        int[] targets = [.. Enumerable.Range(0, rows).Select(i => i % 5 == 0 ? -100 : i * 13 % vocab)];
        var tape = new Tape(compute);
        Tensor[] inputs = [a, b, weight, table, logits];
        var output = op switch
        {
            "add" => tape.Add(a, b),
            "mul" => tape.Mul(a, b),
            "scale" => tape.Scale(a, 0.3f),
            "mean" => tape.Mean(tape.Mul(a, a)),
            "embedding" => tape.Embedding(table, ids, 4, rows / 4),
            "gather" => tape.GatherRows(a, gathered),
            "rmsnorm" => tape.RmsNorm(a, weight, 1e-5f),
            "rope" => tape.Rope(a, 1, dim, 10000f, 3),
            "swiglu" => tape.SwiGlu(a, b),
            "crossentropy" => tape.CrossEntropy(tape.Scale(logits, 1f), targets),
            "logprobs" => tape.TokenLogProbs(logits, targets),
            "batched" => tape.BatchedMatMul(a, b, transposeB: true),
            _ => throw new ArgumentException(op),
        };
        var probe = new float[output.Length];
        for (int i = 0; i < probe.Length; i++) probe[i] = (float)(random.NextDouble() - 0.5);
        float[] values = output.Span.ToArray();
        tape.Backward(output, probe);
        return [values, .. inputs.Where(t => t.Grad is not null).Select(t => t.Grad!.Span.ToArray())];
    }
}
