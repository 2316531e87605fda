using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// A Llama-architecture decoder (Llama, SmolLM2, Qwen2, Mistral: see <see cref="LlamaConfig.ModelType"/>): token embedding; <see cref="LlamaConfig.Layers"/> blocks of
/// x += Attention(RMSNorm(x)); x += Mlp(RMSNorm(x)); final RMSNorm; LM head (tied to the
/// embedding or not). Parameters carry their Hugging Face names, so a checkpoint loads in
/// transformers' LlamaForCausalLM unchanged.
/// </summary>
public sealed class Transformer
{
    /// <summary>Standard deviation of the initial weights (GPT-2, nanoGPT, HF initializer_range).</summary>
    public const float InitStdDev = 0.02f;

    readonly Tensor[] parameters;
    readonly Block[] blocks;

    public LlamaConfig Config { get; }

    /// <summary>model.embed_tokens.weight</summary>
    public Tensor TokenEmbedding { get; } // [vocab, dim]

    /// <summary>The blocks, in the order they run.</summary>
    public IReadOnlyList<Block> Blocks => blocks;

    /// <summary>model.norm.weight</summary>
    public Tensor FinalNorm { get; } // [dim]

    /// <summary>lm_head.weight, or the token embedding itself when tied.</summary>
    public Tensor LmHead { get; } // [vocab, dim]

    /// <summary>One transformer block: the attention half, then the MLP half.</summary>
    public sealed record Block(Attention Attention, Mlp Mlp);

    /// <summary>
    /// A model with fresh weights: normal(0, 0.02) from a generator seeded with <paramref name="seed"/>;
    /// o_proj and down_proj scaled by 1/√(2·layers) (they feed the residual stream, which sums 2·layers
    /// branches; GPT-2's scheme); norm weights 1; biases 0.
    /// </summary>
    public Transformer(LlamaConfig config, ulong seed = 1)
        : this(config)
    {
        var random = new DeterministicRandom(seed);
        float residualStdDev = InitStdDev / MathF.Sqrt(2f * config.Layers);
        foreach (var p in parameters)
        {
            var span = p.Span;
            if (p.Rank == 1)
            {
                span.Fill(p.Name!.EndsWith(".bias", StringComparison.Ordinal) ? 0f : 1f);
                continue;
            }
            bool residual = p.Name!.EndsWith("o_proj.weight", StringComparison.Ordinal) || p.Name.EndsWith("down_proj.weight", StringComparison.Ordinal);
            float std = residual ? residualStdDev : InitStdDev;
            for (int i = 0; i < span.Length; i++) span[i] = (float)random.NextGaussian() * std;
        }
    }

    Transformer(LlamaConfig config)
    {
        Config = config.Validate();
        TokenEmbedding = Tensor.Parameter("model.embed_tokens.weight", config.VocabSize, config.Dim);
        blocks = new Block[config.Layers];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = new Block(new Attention(config, i), new Mlp(config, i));
        FinalNorm = Tensor.Parameter("model.norm.weight", config.Dim);
        LmHead = config.TiedEmbeddings ? TokenEmbedding : Tensor.Parameter("lm_head.weight", config.VocabSize, config.Dim);

        var list = new List<Tensor> { TokenEmbedding };
        foreach (var block in blocks)
        {
            list.AddRange(block.Attention.Parameters);
            list.AddRange(block.Mlp.Parameters);
        }
        list.Add(FinalNorm);
        if (!config.TiedEmbeddings) list.Add(LmHead);
        parameters = [.. list];
    }

    /// <summary>The ggml type of the first weight held quantised (see <see cref="Tensor.HoldQuantized"/>), or null when every weight is float32.</summary>
    public Gguf.GgmlType? QuantizedType => parameters.FirstOrDefault(p => p.Quantized is not null)?.Quantized!.Type;

    /// <summary>Every trainable tensor once (a tied head is the embedding), named as in Hugging Face.</summary>
    public IReadOnlyList<Tensor> Parameters => parameters;

    /// <summary>
    /// A model holding copies of <paramref name="tensors"/> (from a checkpoint). Every parameter must be
    /// present with the shape the config implies; <paramref name="source"/> names the file in one-line errors.
    /// Ignored: a tied model's redundant lm_head.weight and old checkpoints' rotary_emb.inv_freq buffers.
    /// </summary>
    public static Transformer FromTensors(LlamaConfig config, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        // A config that needs over twice the values the file holds, or more than half the free memory (a corrupt
        // num_hidden_layers of 1e6), is refused before the model is allocated; smaller mismatches are named tensor by tensor below.
        long held = tensors.Values.Sum(t => (long)t.Length);
        if (config.ParameterCount > held && (config.ParameterCount > 2 * held || config.ParameterCount * sizeof(float) > GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2))
            throw new InvalidDataException($"{source}: the config needs {config.ParameterCount:N0} parameters ({config.ParameterCount * sizeof(float) / 1e9:F1} GB), the file holds {held:N0} values");
        var model = new Transformer(config);
        var expected = new HashSet<string>();
        foreach (var p in model.parameters)
        {
            expected.Add(p.Name!);
            if (!tensors.TryGetValue(p.Name!, out var t))
                throw new InvalidDataException($"{source}: tensor '{p.Name}' is missing (config needs {p.ShapeText})");
            if (!t.SameShape(p))
                throw new InvalidDataException($"{source}: tensor '{p.Name}' has shape {t.ShapeText}, the config needs {p.ShapeText}");
            if (t.Quantized is not null) p.HoldQuantized(t.Quantized); // kept quantised: no float32 copy is made
            else t.Span.CopyTo(p.Span);
        }
        foreach (var name in tensors.Keys)
        {
            if (expected.Contains(name) || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) continue;
            if (name == "lm_head.weight" && config.TiedEmbeddings) continue;
            throw new InvalidDataException($"{source}: unexpected tensor '{name}' for this config");
        }
        return model;
    }

    /// <summary>
    /// A model with this one's weights (the same storage: what an optimizer writes into this model the replica
    /// reads) and gradients of its own, so that threads can run forward and backward on different rows of one
    /// batch side by side and sum their gradients afterwards. A model with LoRA adapters has no replicas.
    /// </summary>
    public Transformer Replica()
    {
        if (Lora.Adapters(this).Any()) throw new InvalidOperationException("a model with LoRA adapters cannot be replicated");
        var replica = new Transformer(Config);
        for (int i = 0; i < parameters.Length; i++)
        {
            replica.parameters[i].ShareValues(parameters[i]);
            replica.parameters[i].RequiresGrad = parameters[i].RequiresGrad;
        }
        return replica;
    }

    /// <summary>
    /// Logits for every position: ids [batch·tokens] (row-major, kept unchanged until backward) →
    /// [batch, tokens, vocab]. Position p attends to positions ≤ p of its own sequence (and, with a
    /// <paramref name="cache"/>, to the sequence's cached past: see <see cref="ForwardHidden"/>).
    /// </summary>
    public Tensor Forward(Tape tape, int[] ids, int batch, int tokens, KvCacheView? cache = null) =>
        tape.Project(ForwardHidden(tape, ids, batch, tokens, cache), LmHead); // [batch, tokens, vocab]

    /// <summary>
    /// The final hidden states (after the last RMSNorm, before the LM head) for ids [batch·tokens]:
    /// [batch, tokens, dim]. Reward models and value heads read these. The one forward pass of the model:
    /// training runs it without a cache; inference (the tape not recording) runs it with a
    /// <paramref name="cache"/>, where each batch row continues the sequence in its slot of the view, whose keys
    /// and values are appended (prefill: one row of many tokens; decode: many rows of one token).
    /// </summary>
    public Tensor ForwardHidden(Tape tape, int[] ids, int batch, int tokens, KvCacheView? cache = null)
    {
        if (tokens > Config.MaxSeq) throw new ArgumentException($"{tokens} tokens exceed the model's context of {Config.MaxSeq}", nameof(tokens));
        var x = tape.Embedding(TokenEmbedding, ids, batch, tokens); // [batch, tokens, dim]
        foreach (var block in blocks) // an array: no enumerator is allocated
        {
            x = tape.Add(x, block.Attention.Forward(tape, x, cache)); // [batch, tokens, dim]
            x = tape.Add(x, block.Mlp.Forward(tape, x)); // [batch, tokens, dim]
        }
        return tape.RmsNorm(x, FinalNorm, Config.NormEps); // [batch, tokens, dim]
    }

    /// <summary>
    /// Mean next-token cross-entropy: the logits of ids [batch·tokens] against targets [batch·tokens]
    /// (usually ids shifted by one; -100 = ignore). Returns [1].
    /// </summary>
    public Tensor Loss(Tape tape, int[] ids, int[] targets, int batch, int tokens)
    {
        if (targets.Length != ids.Length) throw new ArgumentException($"{targets.Length} targets for {ids.Length} ids", nameof(targets));
        var logits = Forward(tape, ids, batch, tokens); // [batch, tokens, vocab]
        return tape.CrossEntropy(logits, targets); // [1]
    }
}
