using Loom.Evaluation;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Tests.Evaluation;

public class EvalTaskTests
{
    static (TransformerLogLikelihood Model, Transformer Transformer, CharTokenizer Tokenizer) Tiny(int maxSeq)
    {
        var tokenizer = new CharTokenizer("abcdefgh ".EnumerateRunes());
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 24, MaxSeq = maxSeq };
        var model = new Transformer(config, 5);
        foreach (var p in model.Parameters)
            if (p.Rank == 2) for (int i = 0; i < p.Length; i++) p[i] *= 20;
        return (new TransformerLogLikelihood(model, tokenizer, new ModelVersion("tiny", "0")), model, tokenizer);
    }

    static double LastRowLogProb(Transformer model, int[] context, int target)
    {
        var tape = new Tape { Recording = false };
        int vocab = model.Config.VocabSize;
        var logits = model.Forward(tape, context, 1, context.Length).Span; // [1, tokens, vocab]
        var row = logits.Slice((context.Length - 1) * vocab, vocab).ToArray().Select(v => (double)v).ToArray();
        double max = row.Max();
        return row[target] - max - Math.Log(row.Sum(v => Math.Exp(v - max)));
    }

    [Theory]
    [InlineData(17)] // windows end exactly at the text's end
    [InlineData(20)] // a last, shorter window conditioned on the full context before it
    public void RollingPerplexityPredictsEachTokenOnceWithLmEvalWindows(int length)
    {
        const int context = 8;
        var (scorer, model, tokenizer) = Tiny(context);
        var random = new Random(length);
        string text = new([.. Enumerable.Range(0, length).Select(_ => "abcdefgh "[random.Next(9)])]);
        int[] tokens = tokenizer.Encode(text);

        // lm-evaluation-harness with the first token as prefix: predicted tokens 1..n-1 in windows of `context`;
        // the first window conditions on everything before, a later window ending at e on tokens [e - context - 1, j).
        double expected = 0;
        int n = tokens.Length - 1;
        for (int j = 1; j <= n; j++)
        {
            int window = (j - 1) / context;
            int end = Math.Min(n, (window + 1) * context) + 1; // exclusive, in token indices
            int start = window == 0 ? 0 : end - context - 1;
            expected -= LastRowLogProb(model, tokens[start..j], tokens[j]);
        }
        var loss = EvalTasks.DocumentNll(scorer, text);
        Assert.Equal(expected, loss.Nats, 1e-5); // float32 forwards of different lengths round differently
        Assert.Equal(text.Length, loss.Bytes);
        if (length == 17) // the same windows as Perplexity.Evaluate's non-overlapping ones
            Assert.Equal(Perplexity.Evaluate(model, tokenizer, tokens).Loss * n, loss.Nats, 1e-3);
        var metrics = EvalTasks.RollingPerplexity(scorer, [text]);
        Assert.Equal(expected / text.Length / Math.Log(2), metrics["bits_per_byte"].Value, 1e-5);
        int words = System.Text.RegularExpressions.Regex.Split(text, @"\s+").Length; // lm-evaluation-harness counts words so
        Assert.Equal(words, loss.Words);
        Assert.Equal(Math.Exp(expected / words), metrics["word_perplexity"].Value, 1e-6 * metrics["word_perplexity"].Value);
    }

    [Fact]
    public void MultipleChoiceSumsTheContinuationsLogProbabilities()
    {
        var (scorer, model, tokenizer) = Tiny(16);
        var item = new EvalTasks.ChoiceItem("abc", ["dd", "e"], 1);
        var lls = EvalTasks.ChoiceLogLikelihoods(scorer, item);
        int[] context = tokenizer.Encode("abc");
        for (int c = 0; c < 2; c++)
        {
            int[] whole = tokenizer.Encode("abc " + item.Choices[c]);
            double expected = 0;
            for (int j = context.Length; j < whole.Length; j++) expected += LastRowLogProb(model, whole[..j], whole[j]);
            Assert.Equal(expected, lls[c], 1e-5);
        }
        var metrics = EvalTasks.MultipleChoice(scorer, [item], new EvalTaskOptions());
        Assert.Equal(lls[1] > lls[0] ? 1 : 0, metrics["acc"].Value);
        Assert.Equal(lls[1] / 2 > lls[0] / 3 ? 1 : 0, metrics["acc_norm"].Value);
    }

    [Fact]
    public void RetrievalMetricsCountHitsRecallAndReciprocalRank()
    {
        var items = new List<EvalTasks.QuestionItem> { new("q1", ["a"]), new("q2", ["b", "c"]), new("q3", ["z"]) };
        var ranked = new List<IReadOnlyList<string>> { new[] { "x", "a" }, new[] { "c", "y", "b" }, new[] { "x" } };
        var metrics = EvalTasks.RetrievalMetrics(items, ranked, 2, new EvalTaskOptions());
        Assert.Equal(2.0 / 3, metrics["hit_rate"].Value, 12);
        Assert.Equal((1 + 0.5 + 0) / 3, metrics["recall"].Value, 12);
        Assert.Equal((0.5 + 1 + 0) / 3, metrics["mrr"].Value, 12);
    }

    [Fact]
    public void BootstrapIntervalBracketsTheMeanAndNarrowsWithMoreItems()
    {
        var few = Enumerable.Range(0, 20).Select(i => i % 2 == 0 ? 1.0 : 0.0).ToList();
        var many = Enumerable.Range(0, 2000).Select(i => i % 2 == 0 ? 1.0 : 0.0).ToList();
        var (low, high) = Bootstrap.MeanInterval(few);
        var (lowMany, highMany) = Bootstrap.MeanInterval(many);
        Assert.True(low < 0.5 && 0.5 < high, $"[{low}, {high}]");
        Assert.True(highMany - lowMany < (high - low) / 5, $"[{lowMany}, {highMany}] vs [{low}, {high}]");
        // Binomial standard error at n = 2000 is 0.0112: a 95% interval spans about ±0.022.
        Assert.InRange(highMany - lowMany, 0.035, 0.055);
        Assert.Equal(1.0, EvalTasks.Judge("contains", "it is Paris.", "London", ["paris"]));
        Assert.Equal(0.5, EvalTasks.Judge("exact_match", "Paris", "paris!", ["Paris"]));
    }
}
