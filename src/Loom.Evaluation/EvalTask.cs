using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Evaluation;

/// <summary>What a task measures, and so what it needs: a log-likelihood model, a chat client (two for pairwise), a retriever (and a chat client for rag), or a log anomaly detector.</summary>
public enum EvalTaskKind { Perplexity, MultipleChoice, Generate, Retrieval, Pairwise, Rag, Logs }

/// <summary>Options of a task; null means the default named on each.</summary>
/// <param name="MaxItems">Evaluate at most this many items (documents for perplexity); null: all.</param>
/// <param name="MaxChars">Perplexity: cut each document to this many characters; null: whole.</param>
/// <param name="HeldOutFraction">Perplexity: score only the last fraction of each document (e.g. 0.1, nanoGPT's validation split); null: all of it.</param>
/// <param name="Delimiter">Multiple choice: text between the context and each choice; null: one space.</param>
/// <param name="MaxTokens">Generate, pairwise: the most tokens an answer may have; null: 64.</param>
/// <param name="System">Generate, pairwise: a system message before each prompt; null: none.</param>
/// <param name="K">Retrieval, rag: sources looked at per question; null: 5.</param>
/// <param name="Judge">
/// Pairwise: how two answers are compared: a program ("f1", "exact_match", "contains"; "program" is "f1"), "reward:DIR" (a reward
/// model from <c>loom finetune reward</c>), or a chat judge "chat:DIR", "model:DIR" or "gguf:FILE" asked which answer is better;
/// null: "f1". Rag: who judges faithfulness and answer relevance: "overlap" (<see cref="OverlapJudgeChatClient"/>), "model:DIR"
/// or "gguf:FILE"; null: "overlap".
/// </param>
/// <param name="BootstrapSamples">Resamples for the 95% confidence intervals; null: 1000.</param>
/// <param name="Seed">Seed of the bootstrap; null: 0.</param>
/// <param name="Schema">Generate: a JSON Schema file (full path) the answers are generated under (structured output), adding schema_valid; null: free text.</param>
/// <param name="CitationThreshold">Rag: the share of a citing sentence's content words that must occur in the cited source; null: 0.5.</param>
public sealed record EvalTaskOptions(
    int? MaxItems = null, int? MaxChars = null, double? HeldOutFraction = null, string? Delimiter = null, int? MaxTokens = null,
    string? System = null, int? K = null, string? Judge = null, int? BootstrapSamples = null, int? Seed = null, string? Schema = null,
    double? CitationThreshold = null);

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
        ["retrieval"] = EvalTaskKind.Retrieval, ["pairwise"] = EvalTaskKind.Pairwise, ["rag"] = EvalTaskKind.Rag, ["logs"] = EvalTaskKind.Logs,
    };

    public static string KindName(EvalTaskKind kind) => Kinds.First(pair => pair.Value == kind).Key;

    /// <summary>The metrics this task reports: its own list, or every metric of its kind (schema_valid only when a schema is given).</summary>
    public IReadOnlyList<string> ReportedMetrics => Metrics.Count > 0 ? Metrics
        : Options.Schema is null ? [.. MetricCatalog.OfKind(Kind).Where(m => m != "schema_valid")] : MetricCatalog.OfKind(Kind);

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
        var options = ReadOptions(root["options"], path, kind);
        if (metrics.Contains("schema_valid") && options.Schema is null)
            throw new InvalidDataException($"{path}: metric \"schema_valid\" needs options.schema");
        return new EvalTask(name, kind, data, metrics, options, tolerances);
    }

    static EvalTaskOptions ReadOptions(JsonNode? node, string path, EvalTaskKind kind)
    {
        if (node is null) return new EvalTaskOptions();
        if (node is not JsonObject options) throw new InvalidDataException($"{path}: \"options\" must be an object");
        foreach (var (key, _) in options)
            if (key is not ("max_items" or "max_chars" or "held_out_fraction" or "delimiter" or "max_tokens" or "system" or "k" or "judge" or "bootstrap_samples" or "seed" or "schema" or "citation_threshold"))
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
        if (judge is not null && kind == EvalTaskKind.Pairwise && !IsPairwiseJudge(judge))
            throw new InvalidDataException($"{path}: options.judge is \"{judge}\", expected f1, exact_match, contains, program, reward:DIR, chat:DIR, model:DIR or gguf:FILE");
        if (judge is not null && kind == EvalTaskKind.Rag && !IsChatJudge(judge) && judge != "overlap")
            throw new InvalidDataException($"{path}: options.judge is \"{judge}\", expected overlap, model:DIR or gguf:FILE");
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (judge is not null && judge.IndexOf(':') is > 0 and var colon && judge.Length > colon + 1)
            judge = judge[..(colon + 1)] + System.IO.Path.GetFullPath(judge[(colon + 1)..], folder);
        string? schema = String(options, "schema", path, "options.");
        if (schema is not null)
        {
            if (kind != EvalTaskKind.Generate) throw new InvalidDataException($"{path}: options.schema applies to generate tasks only");
            schema = System.IO.Path.GetFullPath(schema, folder);
            if (!File.Exists(schema)) throw new InvalidDataException($"{path}: options.schema: no such file {schema}");
        }
        double? threshold = options["citation_threshold"] is JsonNode t
            ? t.GetValueKind() == JsonValueKind.Number && t.GetValue<double>() is > 0 and <= 1 and var tv ? tv
                : throw new InvalidDataException($"{path}: options.citation_threshold must be a number in (0, 1]")
            : null;
        int? seed = options["seed"] is JsonNode s
            ? s.GetValueKind() == JsonValueKind.Number && s.AsValue().TryGetValue(out int parsedSeed) ? parsedSeed : throw new InvalidDataException($"{path}: options.seed must be an integer")
            : null;
        return new EvalTaskOptions(Positive("max_items"), Positive("max_chars"), fraction, String(options, "delimiter", path, "options."),
            Positive("max_tokens"), String(options, "system", path, "options."), Positive("k"), judge, Positive("bootstrap_samples"), seed, schema, threshold);
    }

    /// <summary>A judge that is a chat model: "chat:DIR" or "model:DIR" (a checkpoint) or "gguf:FILE".</summary>
    public static bool IsChatJudge(string judge) =>
        (judge.StartsWith("chat:", StringComparison.Ordinal) || judge.StartsWith("model:", StringComparison.Ordinal) || judge.StartsWith("gguf:", StringComparison.Ordinal))
        && judge.Length > judge.IndexOf(':') + 1;

    static bool IsPairwiseJudge(string judge) =>
        judge is "f1" or "exact_match" or "contains" or "program" || IsChatJudge(judge) || (judge.StartsWith("reward:", StringComparison.Ordinal) && judge.Length > 7);

    static string? String(JsonObject node, string key, string path, string prefix = "")
    {
        if (node[key] is not JsonNode value) return null;
        return value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw new InvalidDataException($"{path}: {prefix}{key} must be a string");
    }
}
