using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Evaluation;

/// <summary>What a task measures, and so what it needs: a log-likelihood model, a chat client (two for pairwise), or a retriever.</summary>
public enum EvalTaskKind { Perplexity, MultipleChoice, Generate, Retrieval, Pairwise }

/// <summary>Options of a task; null means the default named on each.</summary>
/// <param name="MaxItems">Evaluate at most this many items (documents for perplexity); null: all.</param>
/// <param name="MaxChars">Perplexity: cut each document to this many characters; null: whole.</param>
/// <param name="HeldOutFraction">Perplexity: score only the last fraction of each document (e.g. 0.1, nanoGPT's validation split); null: all of it.</param>
/// <param name="Delimiter">Multiple choice: text between the context and each choice; null: one space.</param>
/// <param name="MaxTokens">Generate, pairwise: the most tokens an answer may have; null: 64.</param>
/// <param name="System">Generate, pairwise: a system message before each prompt; null: none.</param>
/// <param name="K">Retrieval: sources looked at per question; null: 5.</param>
/// <param name="Judge">Pairwise: how two answers are compared, "exact_match", "contains" or "f1"; null: "f1".</param>
/// <param name="BootstrapSamples">Resamples for the 95% confidence intervals; null: 1000.</param>
/// <param name="Seed">Seed of the bootstrap; null: 0.</param>
public sealed record EvalTaskOptions(
    int? MaxItems = null, int? MaxChars = null, double? HeldOutFraction = null, string? Delimiter = null, int? MaxTokens = null,
    string? System = null, int? K = null, string? Judge = null, int? BootstrapSamples = null, int? Seed = null);

/// <summary>
/// One evaluation task, read from a JSON spec such as
/// <c>{"name": "shakespeare", "kind": "perplexity", "data": "tinyshakespeare.txt", "metrics": ["bits_per_byte"], "options": {"max_chars": 20000}, "tolerances": {"bits_per_byte": 0.05}}</c>.
/// <see cref="Data"/> is resolved against the spec's folder; empty <see cref="Metrics"/> means every metric of the kind;
/// <see cref="Tolerances"/> are the most each metric may get worse than a baseline before the gate fails.
/// </summary>
public sealed record EvalTask(string Name, EvalTaskKind Kind, string Data, IReadOnlyList<string> Metrics, EvalTaskOptions Options,
    IReadOnlyDictionary<string, double> Tolerances)
{
    static readonly Dictionary<string, EvalTaskKind> Kinds = new(StringComparer.Ordinal)
    {
        ["perplexity"] = EvalTaskKind.Perplexity, ["multiple_choice"] = EvalTaskKind.MultipleChoice, ["generate"] = EvalTaskKind.Generate,
        ["retrieval"] = EvalTaskKind.Retrieval, ["pairwise"] = EvalTaskKind.Pairwise,
    };

    public static string KindName(EvalTaskKind kind) => Kinds.First(pair => pair.Value == kind).Key;

    /// <summary>The metrics this task reports: its own list, or every metric of its kind.</summary>
    public IReadOnlyList<string> ReportedMetrics => Metrics.Count > 0 ? Metrics : MetricCatalog.OfKind(Kind);

    /// <summary>Reads and checks a task spec; errors are one line naming the file and the field.</summary>
    public static EvalTask Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such task file");
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: a task file is a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        foreach (var (key, _) in root)
            if (key is not ("name" or "kind" or "data" or "metrics" or "options" or "tolerances" or "description"))
                throw new InvalidDataException($"{path}: unknown field \"{key}\" (fields: name, kind, data, metrics, options, tolerances, description)");
        string name = String(root, "name", path) ?? throw new InvalidDataException($"{path}: missing \"name\"");
        string kindName = String(root, "kind", path) ?? throw new InvalidDataException($"{path}: missing \"kind\"");
        if (!Kinds.TryGetValue(kindName, out var kind))
            throw new InvalidDataException($"{path}: \"kind\" is \"{kindName}\", expected one of {string.Join(", ", Kinds.Keys)}");
        string data = String(root, "data", path) ?? throw new InvalidDataException($"{path}: missing \"data\"");
        data = System.IO.Path.GetFullPath(data, System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        var metrics = new List<string>();
        if (root["metrics"] is JsonNode list)
        {
            if (list is not JsonArray array) throw new InvalidDataException($"{path}: \"metrics\" must be an array of metric names");
            foreach (var item in array)
            {
                string metric = item?.GetValueKind() == JsonValueKind.String ? item.GetValue<string>() : throw new InvalidDataException($"{path}: \"metrics\" holds a non-string");
                if (!MetricCatalog.OfKind(kind).Contains(metric))
                    throw new InvalidDataException($"{path}: metric \"{metric}\" is not one of {kindName}'s: {string.Join(", ", MetricCatalog.OfKind(kind))}");
                metrics.Add(metric);
            }
        }
        var tolerances = new Dictionary<string, double>(StringComparer.Ordinal);
        if (root["tolerances"] is JsonNode tolerancesNode)
        {
            if (tolerancesNode is not JsonObject tolerancesObject) throw new InvalidDataException($"{path}: \"tolerances\" must be an object of metric: tolerance");
            foreach (var (metric, value) in tolerancesObject)
            {
                if (!MetricCatalog.OfKind(kind).Contains(metric))
                    throw new InvalidDataException($"{path}: tolerances.{metric} is not a metric of {kindName} ({string.Join(", ", MetricCatalog.OfKind(kind))})");
                double tolerance = value?.GetValueKind() == JsonValueKind.Number ? value.GetValue<double>() : throw new InvalidDataException($"{path}: tolerances.{metric} must be a number");
                if (!(tolerance >= 0)) throw new InvalidDataException($"{path}: tolerances.{metric} must be ≥ 0, got {tolerance}");
                tolerances[metric] = tolerance;
            }
        }
        return new EvalTask(name, kind, data, metrics, ReadOptions(root["options"], path), tolerances);
    }

    static EvalTaskOptions ReadOptions(JsonNode? node, string path)
    {
        if (node is null) return new EvalTaskOptions();
        if (node is not JsonObject options) throw new InvalidDataException($"{path}: \"options\" must be an object");
        foreach (var (key, _) in options)
            if (key is not ("max_items" or "max_chars" or "held_out_fraction" or "delimiter" or "max_tokens" or "system" or "k" or "judge" or "bootstrap_samples" or "seed"))
                throw new InvalidDataException($"{path}: unknown option \"options.{key}\"");
        int? Positive(string key)
        {
            if (options[key] is not JsonNode value) return null;
            int n = value.GetValueKind() == JsonValueKind.Number && value.AsValue().TryGetValue(out int parsed) ? parsed
                : throw new InvalidDataException($"{path}: options.{key} must be an integer");
            return n > 0 ? n : throw new InvalidDataException($"{path}: options.{key} must be positive, got {n}");
        }
        double? fraction = options["held_out_fraction"] is JsonNode f
            ? f.GetValueKind() == JsonValueKind.Number && f.GetValue<double>() is > 0 and <= 1 and var v ? v
                : throw new InvalidDataException($"{path}: options.held_out_fraction must be a number in (0, 1]")
            : null;
        string? judge = String(options, "judge", path, "options.");
        if (judge is not (null or "exact_match" or "contains" or "f1"))
            throw new InvalidDataException($"{path}: options.judge is \"{judge}\", expected exact_match, contains or f1");
        int? seed = options["seed"] is JsonNode s
            ? s.GetValueKind() == JsonValueKind.Number && s.AsValue().TryGetValue(out int parsedSeed) ? parsedSeed : throw new InvalidDataException($"{path}: options.seed must be an integer")
            : null;
        return new EvalTaskOptions(Positive("max_items"), Positive("max_chars"), fraction, String(options, "delimiter", path, "options."),
            Positive("max_tokens"), String(options, "system", path, "options."), Positive("k"), judge, Positive("bootstrap_samples"), seed);
    }

    static string? String(JsonObject node, string key, string path, string prefix = "")
    {
        if (node[key] is not JsonNode value) return null;
        return value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw new InvalidDataException($"{path}: {prefix}{key} must be a string");
    }
}
