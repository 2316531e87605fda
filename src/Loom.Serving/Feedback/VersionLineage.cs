using System.Text.Json;
using System.Text.Json.Serialization;
using Loom.IO;

namespace Loom.Serving.Feedback;

/// <summary>
/// Where a model version came from, kept beside its checkpoint as HOME/versions/NAME/lineage.json: its parent, how it
/// was trained, on which feedback (the judgement ids, and the largest, so the next round takes only newer feedback), and
/// how it fared against its parent.
/// </summary>
public sealed record VersionLineage
{
    public const string FileName = "lineage.json";

    public required string Version { get; init; }
    /// <summary>The version it was trained from; null for the base version.</summary>
    public string? Parent { get; init; }
    public DateTimeOffset Created { get; init; }
    /// <summary>"base" for the registered starting checkpoint; otherwise the training stages, e.g. "sft+dpo".</summary>
    public string Method { get; init; } = "base";
    /// <summary>The checkpoint a base version was copied from.</summary>
    public string? Source { get; init; }
    /// <summary>The ids of the judgements it was trained on, ascending.</summary>
    public IReadOnlyList<long> JudgementIds { get; init; } = [];
    /// <summary>The largest judgement id it has seen (0 when none): a later round takes only judgements after it.</summary>
    public long LastJudgementId { get; init; }
    /// <summary>What the judgements became.</summary>
    public LineageData? Data { get; init; }
    /// <summary>The training settings and their last metrics.</summary>
    public LineageTraining? Training { get; init; }
    /// <summary>The candidate-against-parent evaluation that decided its promotion.</summary>
    public LineageEvaluation? Evaluation { get; init; }
    /// <summary>Whether it was ever promoted (made the served version).</summary>
    public bool Promoted { get; init; }
    public DateTimeOffset? PromotedAt { get; init; }

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Writes the lineage atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson() + "\n");

    /// <summary>Reads a lineage file; a one-line error naming the file when it is missing or not a lineage.</summary>
    public static VersionLineage Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no lineage file", path);
        try
        {
            var lineage = JsonSerializer.Deserialize<VersionLineage>(File.ReadAllText(path), Json);
            return lineage is { Version.Length: > 0 } ? lineage : throw new InvalidDataException($"{path}: lineage has no version");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a lineage file ({e.Message.ReplaceLineEndings(" ")})", e);
        }
    }
}

/// <summary>The judgements behind a version: how many were read and what they became.</summary>
public sealed record LineageData(int Judgements, int Pairs, int Corrections, int Supervised, int Skipped);

/// <summary>The settings a version was trained with, and the last metrics of each stage (e.g. "dpo.loss").</summary>
public sealed record LineageTraining
{
    public int SftSteps { get; init; }
    public int DpoSteps { get; init; }
    public int RewardSteps { get; init; }
    public int GrpoSteps { get; init; }
    public float Beta { get; init; }
    public float LearningRate { get; init; }
    public int Batch { get; init; }
    public int LoraRank { get; init; }
    public ulong Seed { get; init; }
    public IReadOnlyDictionary<string, float> Metrics { get; init; } = new Dictionary<string, float>();
}

/// <summary>
/// Candidate against parent on held-out prompts: each prompt's samples compared in both orders; a win counts 1, a tie ½.
/// Decision is "promoted" or "rejected"; Reason says why.
/// </summary>
public sealed record LineageEvaluation(string Judge, int HeldOutPrompts, int SamplesPerPrompt, int Comparisons, int Wins, int Ties, int Losses,
    double WinRate, double Margin, string Decision, string Reason);
