using Loom.Text;

namespace Loom.Serving.Pipeline;

/// <summary>How the corpus becomes a tokenizer and token shards; null means the default.</summary>
public sealed record TokenizeStageOptions
{
    /// <summary>The corpus (a file, folder or glob).</summary>
    public required string Corpus { get; init; }
    /// <summary>Token folder to write (tokens.bin, tokens.json, tokenizer.json).</summary>
    public required string OutputFolder { get; init; }
    /// <summary>A folder with tokenizer.json, "char", or "bpe:N" to train one; null: "bpe:2048".</summary>
    public string? Tokenizer { get; init; }
    /// <summary>BPE training reads at most about this many bytes of the corpus; null: the preparer's default.</summary>
    public long? TokenizerSampleBytes { get; init; }
    /// <summary>Fraction of tokens held out for validation; null: the preparer's default.</summary>
    public double? ValidationFraction { get; init; }
}

/// <summary>The token shards written.</summary>
/// <param name="Folder">The token folder (also holds the tokenizer).</param>
/// <param name="Shards">Their metadata: corpus, documents, token count, vocabulary.</param>
public sealed record TokenizeStageResult(string Folder, TokenShardsInfo Shards);

/// <summary>Stage 2: train (or load) the tokenizer and tokenize the corpus into shards.</summary>
public static class TokenizeStage
{
    public static TokenizeStageResult Run(TokenizeStageOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        var prepare = new PrepareOptions(options.Corpus, options.Tokenizer ?? "bpe:2048", options.OutputFolder);
        if (options.TokenizerSampleBytes is { } sampleBytes) prepare = prepare with { TokenizerSampleBytes = sampleBytes };
        if (options.ValidationFraction is { } fraction) prepare = prepare with { ValidationFraction = fraction };
        var shards = CorpusPreparer.Prepare(prepare, message => progress?.Report(message), cancellationToken);
        return new TokenizeStageResult(options.OutputFolder, shards);
    }
}
