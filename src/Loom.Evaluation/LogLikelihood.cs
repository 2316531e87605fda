using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Evaluation;

/// <summary>
/// A language model seen only through the log-probabilities it gives text: what perplexity and
/// multiple-choice tasks need. Loom's transformer implements it here; llama.cpp (a GGUF file) in the
/// CLI, so the same task code measures both and their numbers can be compared item by item.
/// </summary>
public interface ILogLikelihoodModel
{
    /// <summary>What is measured: the checkpoint folder or GGUF file, and a hash of its weights.</summary>
    ModelVersion Version { get; }

    /// <summary>The most tokens one call may condition on (a call scores at most ContextLength + 1 tokens).</summary>
    int ContextLength { get; }

    /// <summary>The beginning-of-sequence token that starts a document, or null when the vocabulary has none.</summary>
    int? BosId { get; }

    /// <summary>The model's token ids for <paramref name="text"/> (no BOS added).</summary>
    int[] Encode(string text);

    /// <summary>
    /// log P(tokens[i] | tokens[0..i)) in nats for each i in [<paramref name="first"/>, tokens.Length), from one forward
    /// pass over tokens[0..^1]; <paramref name="first"/> ≥ 1 and tokens.Length - 1 ≤ <see cref="ContextLength"/>.
    /// </summary>
    double[] LogProbabilities(ReadOnlySpan<int> tokens, int first, CancellationToken cancellationToken = default);
}

/// <summary>
/// Loom's transformer as an <see cref="ILogLikelihoodModel"/>: one forward pass (no cache, no gradient),
/// then a float64 log-softmax of each row that predicts a scored token.
/// </summary>
public sealed class TransformerLogLikelihood(Transformer model, ITokenizer tokenizer, ModelVersion version, ComputeContext? compute = null)
    : ILogLikelihoodModel
{
    readonly Tape tape = new(compute) { Recording = false };

    public ModelVersion Version => version;
    public int ContextLength => model.Config.MaxSeq;
    public int? BosId => tokenizer.BosId;
    public int[] Encode(string text) => tokenizer.Encode(text);

    public double[] LogProbabilities(ReadOnlySpan<int> tokens, int first, CancellationToken cancellationToken = default)
    {
        LogLikelihoods.CheckRange(tokens.Length, first, ContextLength);
        cancellationToken.ThrowIfCancellationRequested();
        int inputs = tokens.Length - 1;
        int vocab = model.Config.VocabSize;
        tape.Reset();
        var logits = model.Forward(tape, tokens[..inputs].ToArray(), 1, inputs).Span; // [1, inputs, vocab]
        var result = new double[tokens.Length - first];
        for (int i = first; i < tokens.Length; i++)
            result[i - first] = LogLikelihoods.LogSoftmaxAt(logits.Slice((i - 1) * vocab, vocab), tokens[i]);
        return result;
    }
}

/// <summary>Helpers shared by the implementations of <see cref="ILogLikelihoodModel"/>.</summary>
public static class LogLikelihoods
{
    /// <summary>log softmax(row)[target] in float64.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> row, int target) // row: [vocab]
    {
        if ((uint)target >= (uint)row.Length) throw new ArgumentOutOfRangeException(nameof(target), $"token {target} is outside the vocabulary of {row.Length}");
        double max = double.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        return row[target] - max - Math.Log(sum);
    }

    /// <summary>Refuses a call outside <see cref="ILogLikelihoodModel.LogProbabilities"/>'s contract.</summary>
    public static void CheckRange(int length, int first, int contextLength)
    {
        if (first < 1 || first >= length) throw new ArgumentOutOfRangeException(nameof(first), $"first scored token {first} is outside [1, {length})");
        if (length - 1 > contextLength) throw new ArgumentException($"{length} tokens need a context of {length - 1}, the model has {contextLength}");
    }
}
