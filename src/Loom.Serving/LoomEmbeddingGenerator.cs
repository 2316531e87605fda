using Loom.Models;
using Loom.Tensors;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>
/// A Loom model as a Microsoft.Extensions.AI embedding generator: the mean of the final hidden states
/// (after the last RMSNorm) over the text's tokens, L2-normalised, [dim] per text. Texts longer than
/// the context are truncated to its last tokens. For retrieval the MiniLM generator is the better
/// default; this one embeds with the model a user trained. Its forward passes run on <c>compute</c>
/// (null: <see cref="ComputeContext.Default"/>).
/// </summary>
public sealed class LoomEmbeddingGenerator(Transformer model, ITokenizer tokenizer, string modelName, ComputeContext? compute = null)
    : IEmbeddingGenerator<string, Embedding<float>>
{
    readonly EmbeddingGeneratorMetadata metadata = new("loom", defaultModelId: modelName, defaultModelDimensions: model.Config.Dim);
    readonly Lock gate = new();
    readonly Tape tape = new(compute) { Recording = false };

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = new GeneratedEmbeddings<Embedding<float>>();
        int tokenTotal = 0;
        foreach (string text in values)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var ids = tokenizer.Encode(text);
            if (ids.Length == 0) ids = [tokenizer.BosId ?? tokenizer.EosId ?? 0];
            if (ids.Length > model.Config.MaxSeq) ids = ids[^model.Config.MaxSeq..];
            tokenTotal += ids.Length;
            result.Add(new Embedding<float>(Embed(ids)) { ModelId = modelName, CreatedAt = DateTimeOffset.UtcNow });
        }
        result.Usage = new UsageDetails { InputTokenCount = tokenTotal, TotalTokenCount = tokenTotal };
        return Task.FromResult(result);
    }

    float[] Embed(int[] ids)
    {
        int dim = model.Config.Dim;
        var vector = new float[dim];
        lock (gate) // one tape, one model: a call at a time
        {
            tape.Reset();
            var hidden = model.ForwardHidden(tape, ids, 1, ids.Length).Span; // [1, tokens, dim]
            for (int t = 0; t < ids.Length; t++)
                System.Numerics.Tensors.TensorPrimitives.Add(vector, hidden.Slice(t * dim, dim), vector);
        }
        float norm = System.Numerics.Tensors.TensorPrimitives.Norm(vector);
        if (norm > 0) System.Numerics.Tensors.TensorPrimitives.Divide(vector, norm, vector);
        return vector;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(EmbeddingGeneratorMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}
