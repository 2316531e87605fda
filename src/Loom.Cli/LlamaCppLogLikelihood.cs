using Loom.Evaluation;
using Loom.LlamaCpp;
using Loom.Models.Gguf;

namespace Loom.Cli;

/// <summary>
/// A GGUF file run by llama.cpp as an <see cref="ILogLikelihoodModel"/>: its own tokenizer, the logits of every position
/// from one evaluation, and the same float64 log-softmax as Loom's, so `loom eval --gguf` runs the task code of `--model`.
/// </summary>
internal sealed class LlamaCppLogLikelihood : ILogLikelihoodModel, IDisposable
{
    readonly LlamaCppModel model;

    LlamaCppLogLikelihood(LlamaCppModel model, ModelVersion version, int? bosId, int contextLength)
    {
        this.model = model;
        Version = version;
        BosId = bosId;
        ContextLength = contextLength;
    }

    /// <summary>Loads <paramref name="path"/> with a float32 KV cache (exact enough to compare with Loom); the BOS token is the GGUF's, if it names one.</summary>
    public static LlamaCppLogLikelihood Load(string path, int threads, int? contextSize = null)
    {
        int? bos, trained;
        using (var reader = GgufReader.Open(path))
        {
            bos = reader.Contains(GgufVocabulary.BosKey) ? (int)reader.GetInt(GgufVocabulary.BosKey, 0, int.MaxValue) : null;
            trained = reader.Contains(ContextLengthKey) ? (int)reader.GetInt(ContextLengthKey, 1, int.MaxValue) : null;
        }
        var model = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: contextSize, Threads: threads, Float32Cache: true));
        // llama.cpp rounds its KV cache up (to 256 at least); windows stay within the context the model was trained on.
        return new LlamaCppLogLikelihood(model, ModelVersion.Of(path), bos, Math.Min(model.ContextSize, trained ?? int.MaxValue));
    }

    public ModelVersion Version { get; }
    public int ContextLength { get; }

    const string ContextLengthKey = "llama.context_length";
    public int? BosId { get; }
    public int[] Encode(string text) => model.Tokenize(text);

    public double[] LogProbabilities(ReadOnlySpan<int> tokens, int first, CancellationToken cancellationToken = default)
    {
        LogLikelihoods.CheckRange(tokens.Length, first, ContextLength);
        cancellationToken.ThrowIfCancellationRequested();
        int vocab = model.VocabSize;
        var logits = model.AllLogits(tokens[..^1]); // [inputs, vocab]
        var result = new double[tokens.Length - first];
        for (int i = first; i < tokens.Length; i++)
            result[i - first] = LogLikelihoods.LogSoftmaxAt(logits.AsSpan((i - 1) * vocab, vocab), tokens[i]);
        return result;
    }

    public void Dispose() => model.Dispose();
}
