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

    /// <summary>
    /// Shares of the rows of C, each computed over the reduction of several segments held apart (the weight gradient
    /// over rows of a batch split between replicas), make up the product over the segments joined, checked in double.
    /// Segment lengths cross the 256-step blocks of the packed reduction.
    /// </summary>
    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, true)]
    [InlineData(true, true, false)]
    [InlineData(false, true, true)]
    public unsafe void RowSharesOverJoinedSegmentsMakeOneProduct(bool transposeA, bool transposeB, bool accumulate)
    {
        const int m = 61, n = 75;
        int[] lengths = [100, 300, 37];
        var random = new Random(5);
        float[] Fill(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5))];
        var a = lengths.Select(k => Fill(m * k)).ToArray(); // [m, k] or, transposed, [k, m]
        var b = lengths.Select(k => Fill(k * n)).ToArray(); // [k, n] or, transposed, [n, k]
        var start = Fill(m * n);
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = accumulate ? start[i * n + j] : 0;
                for (int s = 0; s < lengths.Length; s++)
                    for (int p = 0; p < lengths[s]; p++)
                    {
                        int k = lengths[s];
                        float x = transposeA ? a[s][p * m + i] : a[s][i * k + p];
                        float y = transposeB ? b[s][j * k + p] : b[s][p * n + j];
                        sum += (double)x * y;
                    }
                expected[i * n + j] = sum;
            }
        var c = (float[])start.Clone();
        var handles = a.Concat(b).Select(array => System.Runtime.InteropServices.GCHandle.Alloc(array, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        try
        {
            var segments = new GemmSegment[lengths.Length];
            for (int s = 0; s < lengths.Length; s++)
                segments[s] = new GemmSegment((float*)handles[s].AddrOfPinnedObject(), (float*)handles[lengths.Length + s].AddrOfPinnedObject(), lengths[s]);
            const int parts = 3;
            int covered = 0;
            fixed (float* pc = c)
                for (int part = 0; part < parts; part++)
                {
                    var (first, end) = Gemm.RowShare(m, part, parts);
                    Assert.Equal(covered, first);
                    covered = end;
                    Gemm.MultiplyRows(segments, m, n, pc, transposeA, transposeB, accumulate, first, end);
                }
            Assert.Equal(m, covered);
        }
        finally
        {
            foreach (var handle in handles) handle.Free();
        }
        for (int i = 0; i < c.Length; i++) Assert.True(Math.Abs(c[i] - expected[i]) < 1e-4, $"C[{i / n}, {i % n}] = {c[i]}, expected {expected[i]}");
    }
}
