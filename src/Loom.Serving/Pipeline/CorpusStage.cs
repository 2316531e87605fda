using Loom.IO;
using Loom.Text;

namespace Loom.Serving.Pipeline;

/// <summary>Where the pretraining corpus comes from; null means the default.</summary>
public sealed record CorpusStageOptions
{
    /// <summary>Text file written from <see cref="Members"/> when <see cref="Corpus"/> is null.</summary>
    public required string OutputPath { get; init; }
    /// <summary>An existing corpus (file, folder or glob) used as it is; null: write <see cref="Members"/> to <see cref="OutputPath"/>.</summary>
    public string? Corpus { get; init; }
    /// <summary>Documented members written one document each (<see cref="DotnetDocs.FormatDocument"/>).</summary>
    public IReadOnlyList<DocMember> Members { get; init; } = [];
}

/// <summary>The corpus that tokenization reads.</summary>
/// <param name="CorpusPath">The corpus specification (a file, folder or glob).</param>
/// <param name="Documents">Members written, or files found in an existing corpus.</param>
/// <param name="Characters">Characters written, or bytes found in an existing corpus.</param>
public sealed record CorpusStageResult(string CorpusPath, int Documents, long Characters);

/// <summary>Stage 1: the corpus, written from the .NET API docs or taken as given.</summary>
public static class CorpusStage
{
    public static CorpusStageResult Run(CorpusStageOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        if (options.Corpus is not null)
        {
            var corpus = TextCorpus.Open(options.Corpus);
            progress?.Report($"{options.Corpus}: {corpus.Files.Count:N0} files, {corpus.TotalBytes:N0} bytes");
            return new CorpusStageResult(options.Corpus, corpus.Files.Count, corpus.TotalBytes);
        }
        if (options.Members.Count == 0) throw new ArgumentException("CorpusStageOptions.Members is empty and no CorpusStageOptions.Corpus is given");
        long characters = 0;
        var text = new System.Text.StringBuilder();
        foreach (var member in options.Members)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string document = DotnetDocs.FormatDocument(member);
            characters += document.Length;
            text.Append(document);
        }
        AtomicFile.WriteAllText(options.OutputPath, text.ToString());
        progress?.Report($"{options.Members.Count:N0} members, {characters:N0} characters -> {options.OutputPath}");
        return new CorpusStageResult(options.OutputPath, options.Members.Count, characters);
    }
}
