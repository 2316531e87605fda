using System.CommandLine;
using Loom.Models;
using Loom.Serving;
using Loom.Tensors;

namespace Loom.Cli;

/// <summary>
/// The options shared by <c>loom generate</c> and <c>loom chat</c>: which model, how to sample, when
/// to stop. Sampling defaults are llama.cpp's (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
/// </summary>
internal sealed class GenerationArguments
{
    public readonly Option<string?> Model = new("--model") { Description = "Checkpoint folder (or a `loom pretrain` output folder)" };
    public readonly Option<string?> Gguf = new("--gguf") { Description = "A GGUF file, run by llama.cpp instead of Loom's engine" };
    public readonly Option<int> MaxTokens = new("--max-tokens") { Description = "Tokens to generate at most (0 = up to the end of the context)", DefaultValueFactory = _ => 256 };
    public readonly Option<float> Temperature = new("--temperature") { Description = "Softmax temperature; 0 = greedy", DefaultValueFactory = _ => 0.8f };
    public readonly Option<int> TopK = new("--top-k") { Description = "Keep the K most likely tokens (0 = all)", DefaultValueFactory = _ => 40 };
    public readonly Option<float> TopP = new("--top-p") { Description = "Nucleus sampling: keep tokens up to this cumulative probability", DefaultValueFactory = _ => 0.95f };
    public readonly Option<float> MinP = new("--min-p") { Description = "Drop tokens less likely than this fraction of the best one", DefaultValueFactory = _ => 0.05f };
    public readonly Option<float> RepetitionPenalty = new("--repetition-penalty") { Description = "Penalty on tokens already present (1 = off)", DefaultValueFactory = _ => 1f };
    public readonly Option<int?> Seed = new("--seed") { Description = "Random seed of the sampler (default: a fresh one)" };
    public readonly Option<string[]> Stop = new("--stop") { Description = "Stop when this text appears (repeatable); it is not printed" };
    public readonly Option<int> Threads = SharedOptions.Threads();

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, Gguf, MaxTokens, Temperature, TopK, TopP, MinP, RepetitionPenalty, Seed, Stop, Threads })
            command.Options.Add(option);
    }

    public SamplingOptions Sampling(ParseResult parseResult)
    {
        var sampling = new SamplingOptions
        {
            Temperature = parseResult.GetValue(Temperature),
            TopK = parseResult.GetValue(TopK),
            TopP = parseResult.GetValue(TopP),
            MinP = parseResult.GetValue(MinP),
            RepetitionPenalty = parseResult.GetValue(RepetitionPenalty),
            Seed = parseResult.GetValue(Seed),
        };
        sampling.Validate();
        return sampling;
    }

    public int? MaxTokensOrNull(ParseResult parseResult)
    {
        int maxTokens = parseResult.GetValue(MaxTokens);
        if (maxTokens < 0) throw new ArgumentException($"--max-tokens must be >= 0, got {maxTokens}");
        return maxTokens == 0 ? null : maxTokens;
    }

    /// <summary>Loads the model named by --model or --gguf (exactly one) as a text generator.</summary>
    public GeneratorHandle Open(ParseResult parseResult) =>
        GeneratorHandle.Open(parseResult.GetValue(Model), parseResult.GetValue(Gguf), SharedOptions.ThreadCount(parseResult, Threads));
}

/// <summary>A loaded text generator and how to release it.</summary>
internal sealed class GeneratorHandle(ITextGenerator generator, Func<ValueTask> dispose) : IAsyncDisposable
{
    public ITextGenerator Generator { get; } = generator;

    /// <summary>The model's own embeddings (Loom checkpoints only; null for GGUF files).</summary>
    public Microsoft.Extensions.AI.IEmbeddingGenerator<string, Microsoft.Extensions.AI.Embedding<float>>? Embeddings { get; init; }

    /// <summary>
    /// Loads a checkpoint folder (Loom's engine, on a compute context of <paramref name="threads"/> that the handle
    /// owns) or a GGUF file (llama.cpp with as many threads): exactly one of the two.
    /// </summary>
    public static GeneratorHandle Open(string? folder, string? gguf, int threads, int slots = 1, GenerationEngineOptions? engine = null)
    {
        if ((folder is null) == (gguf is null)) throw new ArgumentException("pass exactly one of --model DIR and --gguf FILE");
        if (gguf is not null) return GgufGenerator.Open(gguf, threads, slots);
        var compute = new ComputeContext(threads);
        LoomModel model;
        try { model = LoomModel.Load(folder!, new LoomModelOptions { Slots = slots, Compute = compute, Engine = engine }); }
        catch
        {
            compute.Dispose();
            throw;
        }
        async ValueTask Dispose()
        {
            await model.DisposeAsync().ConfigureAwait(false);
            compute.Dispose();
        }
        return new GeneratorHandle(model.Engine, Dispose) { Embeddings = model.AsIEmbeddingGenerator() };
    }

    public ValueTask DisposeAsync() => dispose();
}
