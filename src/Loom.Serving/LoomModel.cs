using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Serving;

/// <summary>How a model is loaded for generation; null means the default.</summary>
public sealed record LoomModelOptions
{
    /// <summary>Sequences decoded together (KV-cache slots); default 1.</summary>
    public int? Slots { get; init; }
    /// <summary>Tokens per sequence, prompt included; default (and at most) the model's max_position_embeddings.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Options of the batching engine.</summary>
    public GenerationEngineOptions? Engine { get; init; }
    /// <summary>The threads the decoder's kernels run on; null means <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }
}

/// <summary>
/// A checkpoint ready to generate: its config, tokenizer, weights, a <see cref="TransformerDecoder"/>
/// with a KV cache, and the <see cref="GenerationEngine"/> that batches requests over it.
/// Disposing stops the engine.
/// </summary>
public sealed class LoomModel : IAsyncDisposable
{
    LoomModel(string name, Transformer transformer, ITokenizer tokenizer, LoomModelOptions options)
    {
        if (tokenizer.VocabSize > transformer.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens, the model only {transformer.Config.VocabSize}");
        Name = name;
        Transformer = transformer;
        Tokenizer = tokenizer;
        Decoder = new TransformerDecoder(transformer, options.Slots ?? 1, options.ContextLength, options.Compute);
        Engine = new GenerationEngine(name, Decoder, tokenizer, options.Engine);
    }

    /// <summary>The model's name as clients see it (the checkpoint folder's name).</summary>
    public string Name { get; }
    public LlamaConfig Config => Transformer.Config;
    public Transformer Transformer { get; }
    public ITokenizer Tokenizer { get; }
    public TransformerDecoder Decoder { get; }
    public GenerationEngine Engine { get; }
    /// <summary>The checkpoint's chat format: its Jinja template, or Loom's own.</summary>
    public IChatFormat ChatFormat => Engine.ChatFormat;

    /// <summary>
    /// Loads a checkpoint folder (or a training output folder holding checkpoint/): config.json,
    /// model.safetensors, tokenizer.json, and the chat template of tokenizer_config.json when there is one (else
    /// Loom's chat format; see <see cref="Text.ChatFormat.Load"/>). Errors are one line naming the file. The model is served as
    /// <paramref name="name"/>, or when null as its folder's name (the parent's, for a folder called checkpoint).
    /// </summary>
    public static LoomModel Load(string folder, LoomModelOptions? options = null, string? name = null)
    {
        string resolved = Checkpoint.Resolve(folder);
        var transformer = Checkpoint.Load(resolved);
        var tokenizer = Text.Tokenizer.Load(resolved);
        options ??= new LoomModelOptions();
        if (options.Engine?.ChatFormat is null)
            options = options with { Engine = (options.Engine ?? new GenerationEngineOptions()) with { ChatFormat = Text.ChatFormat.Load(resolved) } };
        if (name is null)
        {
            name = Path.GetFileName(Path.GetFullPath(resolved).TrimEnd(Path.DirectorySeparatorChar));
            if (name == "checkpoint") name = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(resolved).TrimEnd(Path.DirectorySeparatorChar))) ?? name;
        }
        return new LoomModel(name, transformer, tokenizer, options);
    }

    /// <summary>A model already in memory (tests, benchmarks, a model just trained).</summary>
    public static LoomModel Create(string name, Transformer transformer, ITokenizer tokenizer, LoomModelOptions? options = null) =>
        new(name, transformer, tokenizer, options ?? new LoomModelOptions());

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync().ConfigureAwait(false);
        Decoder.Dispose();
    }
}
