using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class CrossEntropyTests
{
    const int Ignore = -100;

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 3)]
    [InlineData(4, 17)]
    [InlineData(4, 63)]
    [InlineData(4, 65)]
    [InlineData(3, 130)]
    [InlineData(2, 2500)] // several vocabulary chunks
    public void MatchesReferenceWithIgnoredRows(int rows, int vocab)
    {
        var random = new Random(rows * 1000 + vocab);
        var logits = GradCheck.Random(random, 3f, rows, vocab);
        if (vocab > 1024) logits[vocab + 2000] = 9f; // the row max sits in a later chunk
        int[] targets = Targets(random, rows, vocab);
        GradCheck.Assert(
            v => [Reference(v[0], targets, vocab)],
            (tape, t) => tape.CrossEntropy(t[0], targets),
            [logits]);
    }

    [Theory]
    [InlineData(3, 5, 17)]
    [InlineData(4, 3, 65)]
    public void InPlaceGradientThroughMatMulMatchesFiniteDifferences(int rows, int k, int vocab)
    {
        var random = new Random(vocab);
        var x = GradCheck.Random(random, 1f, rows, k);
        var w = GradCheck.Random(random, 1f, vocab, k);
        int[] targets = Targets(random, rows, vocab);
        GradCheck.Assert(
            v => [Reference(Logits(v[0], v[1], rows, k, vocab), targets, vocab)],
            (tape, t) => tape.CrossEntropy(tape.MatMul(t[0], t[1], transposeW: true), targets),
            [x, w]);
    }

    [Fact]
    public void BackwardMakesTheLogitsStorageTheirGradient()
    {
        var random = new Random(3);
        var x = GradCheck.Random(random, 1f, 3, 4);
        var w = GradCheck.Random(random, 1f, 10, 4);
        var tape = new Tape();
        var logits = tape.MatMul(x, w, transposeW: true);
        var loss = tape.CrossEntropy(logits, [1, Ignore, 9]);
        tape.Backward(loss);
        Assert.Same(logits, logits.Grad);
        Assert.All(logits.Span.Slice(10, 10).ToArray(), v => Assert.Equal(0f, v)); // the ignored row
        Assert.Equal(0, logits.Span.ToArray().Sum(), 5); // each counted row of softmax − onehot sums to 0
    }

    [Fact]
    public void LogitsReadByAnEarlierOpGetASeparateGradient()
    {
        // loss = CE(logits) + Σ logits ⊙ c; the product is recorded first, so its backward runs after
        // the loss's and still needs the logits' values (for dc).
        const int rows = 3, k = 4, vocab = 7;
        var random = new Random(11);
        var x = GradCheck.Random(random, 1f, rows, k);
        var w = GradCheck.Random(random, 1f, vocab, k);
        var c = GradCheck.Random(random, 1f, rows, vocab);
        int[] targets = [2, 6, Ignore];
        GradCheck.Assert(
            v =>
            {
                var logits = Logits(v[0], v[1], rows, k, vocab);
                return [Reference(logits, targets, vocab) + logits.Select((l, i) => l * v[2][i]).Sum()];
            },
            (tape, t) =>
            {
                var logits = tape.MatMul(t[0], t[1], transposeW: true);
                var product = tape.Sum(tape.Mul(logits, t[2]));
                return tape.Add(tape.CrossEntropy(logits, targets), product);
            },
            [x, w, c]);
    }

    [Fact]
    public void LogitsWhoseProducerReadsItsOutputGetASeparateGradient()
    {
        const int rows = 4, k = 3, vocab = 9;
        var random = new Random(13);
        var x = GradCheck.Random(random, 1f, rows, k);
        var w = GradCheck.Random(random, 0.5f, vocab, k);
        int[] targets = Targets(random, rows, vocab);
        GradCheck.Assert(
            v => [Reference(Logits(v[0], v[1], rows, k, vocab).Select(Math.Exp).ToArray(), targets, vocab)],
            (tape, t) => tape.CrossEntropy(ExpOp.Exp(tape, tape.MatMul(t[0], t[1], transposeW: true)), targets),
            [x, w]);
    }

    /// <summary>y = exp(x), whose backward reads y (dX = dY ⊙ y): a producer that must not be overwritten.</summary>
    sealed class ExpOp : IBackward, IReadsOutput
    {
        static readonly ExpOp Instance = new();

        public static Tensor Exp(Tape tape, Tensor x)
        {
            var y = tape.Allocate(x.Shape);
            for (int i = 0; i < x.Length; i++) y[i] = MathF.Exp(x[i]);
            tape.Record(new TapeEntry { Op = Instance, Output = y, A = x });
            return y;
        }

        public void Backward(in TapeEntry e, Tape tape)
        {
            var dX = tape.GradOf(e.A!);
            for (int i = 0; i < dX.Length; i++) dX[i] += e.Output.Grad![i] * e.Output[i];
        }
    }

    [Fact]
    public void IgnoredRowsDoNotChangeTheLoss()
    {
        var random = new Random(7);
        var logits = GradCheck.Random(random, 2f, 4, 33);
        int[] targets = [3, Ignore, 32, Ignore];
        float before = new Tape().CrossEntropy(logits, targets).Scalar();
        for (int i = 33; i < 66; i++) logits[i] = 50f * (i % 3 - 1);
        for (int i = 99; i < 132; i++) logits[i] = -7f;
        float after = new Tape().CrossEntropy(logits, targets).Scalar();
        Assert.Equal(before, after);
        Assert.Equal(0f, new Tape().CrossEntropy(logits, [Ignore, Ignore, Ignore, Ignore]).Scalar());
    }

    [Fact]
    public void BadTargetsNameTheRow()
    {
        var e = Assert.Throws<ArgumentException>(() => new Tape().CrossEntropy(new Tensor(2, 5), [0, 5]));
        Assert.Contains("row 1", e.Message);
        Assert.Throws<ArgumentException>(() => new Tape().CrossEntropy(new Tensor(2, 5), [0]));
    }

    internal static int[] Targets(Random random, int rows, int vocab)
    {
        var targets = new int[rows];
        for (int r = 0; r < rows; r++) targets[r] = r % 3 == 1 ? Ignore : random.Next(vocab);
        return targets;
    }

    internal static double[] Logits(double[] x, double[] w, int rows, int k, int vocab)
    {
        var logits = new double[rows * vocab];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < vocab; j++)
                for (int p = 0; p < k; p++) logits[r * vocab + j] += x[r * k + p] * w[j * k + p];
        return logits;
    }

    /// <summary>log Σ exp(row) − row[target] per row, in double.</summary>
    internal static double[] NegativeLogProbs(double[] logits, int[] targets, int vocab)
    {
        var result = new double[targets.Length];
        for (int r = 0; r < targets.Length; r++)
        {
            if (targets[r] == Ignore) continue;
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < vocab; j++) max = Math.Max(max, logits[r * vocab + j]);
            for (int j = 0; j < vocab; j++) sum += Math.Exp(logits[r * vocab + j] - max);
            result[r] = max + Math.Log(sum) - logits[r * vocab + targets[r]];
        }
        return result;
    }

    static double Reference(double[] logits, int[] targets, int vocab)
    {
        var losses = NegativeLogProbs(logits, targets, vocab);
        int count = targets.Count(t => t != Ignore);
        return count == 0 ? 0 : losses.Sum() / count;
    }
}
