using Loom.Text;

namespace Loom.Serving.Pipeline;

/// <summary>What <see cref="Quickstart.RunAsync"/> is asked for; null means the default.</summary>
public sealed record QuickstartOptions
{
    /// <summary>Folder for every artefact: empty, new, or a previous quickstart run (whose stage folders are replaced).</summary>
    public required string OutputFolder { get; init; }
    /// <summary>Pretraining corpus (a file, folder or glob); null or "dotnet-docs": a sample of the .NET API docs.</summary>
    public string? Corpus { get; init; }
    /// <summary>A tiny run that finishes end to end in well under 2 minutes.</summary>
    public bool Fast { get; init; }
    /// <summary>Worker threads for training and embedding; null: all processors.</summary>
    public int? Threads { get; init; }
    /// <summary>Overall time budget in minutes; null: 9, or 1.5 when <see cref="Fast"/>.</summary>
    public double? Minutes { get; init; }

    /// <summary>The corpus after defaults: <see cref="DotnetDocs.CorpusName"/> when none was given.</summary>
    public string CorpusOrDefault => Corpus ?? DotnetDocs.CorpusName;
    /// <summary>The worker threads after defaults.</summary>
    public int ThreadsOrDefault => Threads ?? Environment.ProcessorCount;
    /// <summary>The time budget after defaults.</summary>
    public double MinutesOrDefault => Minutes ?? (Fast ? 1.5 : 9);

    /// <summary>Throws a one-line error naming the first bad property; an unreadable corpus fails here, before any folder is touched.</summary>
    public QuickstartOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(OutputFolder)) throw new ArgumentException("QuickstartOptions.OutputFolder must name a folder");
        if (ThreadsOrDefault < 1) throw new ArgumentException($"QuickstartOptions.Threads must be positive, got {ThreadsOrDefault}");
        if (!double.IsFinite(MinutesOrDefault) || MinutesOrDefault <= 0) throw new ArgumentException($"QuickstartOptions.Minutes must be positive, got {MinutesOrDefault}");
        if (CorpusOrDefault != DotnetDocs.CorpusName) TextCorpus.Open(CorpusOrDefault);
        return this;
    }
}
