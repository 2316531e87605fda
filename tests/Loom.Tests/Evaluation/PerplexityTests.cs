using Loom.Evaluation;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Tests.Evaluation;

public class PerplexityTests
{
    [Fact]
    public void MatchesPerTokenLogSoftmaxOverContextWindows()
    {
        var tokenizer = new CharTokenizer("abcdefgh ".EnumerateRunes());
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 24, MaxSeq = 8 };
        var model = new Transformer(config, 5);
        foreach (var p in model.Parameters) // larger weights, so the predictions are far from uniform
            if (p.Rank == 2) for (int i = 0; i < p.Length; i++) p[i] *= 20;
        var random = new Random(3);
        string text = new([.. Enumerable.Range(0, 2 * 8 + 6).Select(_ => "abcdefgh "[random.Next(9)])]);
        int[] tokens = tokenizer.Encode(text);

        // Expected: windows [0, 8], [8, 16], then the tail [16, 21]; each predicts its tokens 1.. from the ones before.
        double nats = 0;
        int predicted = 0;
        var tape = new Tape { Recording = false };
        for (int start = 0; start < tokens.Length - 1; start += 8)
        {
            int length = Math.Min(8, tokens.Length - 1 - start);
            tape.Reset();
            var logits = model.Forward(tape, tokens[start..(start + length)], 1, length); // [1, length, vocab]
            for (int t = 0; t < length; t++)
            {
                var row = logits.Span.Slice(t * config.VocabSize, config.VocabSize).ToArray().Select(v => (double)v).ToArray();
                double max = row.Max();
                double logSum = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
                nats += logSum - row[tokens[start + t + 1]];
                predicted++;
            }
        }
        var result = Perplexity.Evaluate(model, tokenizer, tokens, batch: 2);
        Assert.Equal(tokens.Length - 1, predicted);
        Assert.Equal(predicted, result.Tokens);
        Assert.Equal(text.Length - 1, result.Bytes);
        Assert.Equal(nats / predicted, result.Loss, 1e-4);
        Assert.Equal(Math.Exp(nats / predicted), result.Perplexity, 1e-3);
        Assert.Equal(nats / Math.Log(2) / (text.Length - 1), result.BitsPerByte, 1e-4);
        Assert.True(result.Loss > 0.5 && Math.Abs(result.Loss - Math.Log(config.VocabSize)) > 0.1, $"loss {result.Loss} looks uniform");
    }
}
