using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Text.Structured;

namespace Loom.Serving;

/// <summary>How <see cref="StructuredExtractor"/> prompts and samples; null means the default.</summary>
public sealed record ExtractionOptions
{
    /// <summary>Tokens the answer may take at most; default 256 (the document is shortened to leave this room).</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Sampling; default greedy.</summary>
    public SamplingOptions? Sampling { get; init; }
}

/// <summary>Where a string field's value occurs verbatim in the document: [Start, End) in UTF-16 units.</summary>
public sealed record FieldSpan(string Path, int Start, int End);

/// <summary>
/// One document's extraction: the JSON text generated under the schema (null when max tokens cut it
/// short), the spans of string fields found verbatim in the document, and why generation ended.
/// </summary>
public sealed record Extraction(JsonNode? Value, string Text, IReadOnlyList<FieldSpan> Spans, FinishReason? FinishReason);

/// <summary>
/// Structured extraction: for each document, a prompt (instruction, schema, document) and a
/// completion constrained to the schema, so the answer always parses and validates; each string
/// value that occurs verbatim in the document gets its source span.
/// </summary>
public static class StructuredExtractor
{
    public static async Task<Extraction> ExtractAsync(ITextGenerator generator, JsonElement schema, string document,
        ExtractionOptions? options = null, CancellationToken cancellationToken = default)
    {
        int maxTokens = options?.MaxTokens ?? 256;
        if (maxTokens < 1) throw new ArgumentException($"ExtractionOptions.MaxTokens must be positive, got {maxTokens}");
        var format = new OutputFormat { JsonSchema = schema };
        string schemaText = JsonSerializer.Serialize(schema);
        string prompt = Prompt(schemaText, document);
        // Shorten the document (not the instruction) until the prompt leaves room for the answer.
        int budget = generator.ContextLength - maxTokens - 1;
        if (budget < 1) throw new ArgumentException($"ExtractionOptions.MaxTokens {maxTokens} leaves no room for a prompt in a context of {generator.ContextLength}");
        string kept = document;
        while (generator.CountTokens(prompt) > budget && kept.Length > 0)
        {
            kept = kept[..(kept.Length * 3 / 4)];
            prompt = Prompt(schemaText, kept);
        }
        if (generator.CountTokens(prompt) > budget) prompt = Prompt("", kept);
        var request = new GenerationRequest { Prompt = prompt, Format = format, MaxTokens = maxTokens, Sampling = options?.Sampling ?? SamplingOptions.Greedy };
        var text = new StringBuilder();
        FinishReason? reason = null;
        await foreach (var update in generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            reason = update.FinishReason ?? reason;
        }
        string output = text.ToString();
        if (reason != FinishReason.Stop) return new Extraction(null, output, [], reason);
        var value = JsonNode.Parse(output);
        var spans = new List<FieldSpan>();
        CollectSpans(value, "$", document, spans);
        return new Extraction(value, output, spans, reason);
    }

    static string Prompt(string schema, string document) =>
        $"Extract the fields of the document as JSON{(schema.Length > 0 ? $" matching this schema: {schema}" : "")}\nDocument:\n{document}\nJSON:\n";

    static void CollectSpans(JsonNode? node, string path, string document, List<FieldSpan> spans)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, child) in obj) CollectSpans(child, $"{path}.{name}", document, spans);
                break;
            case JsonArray array:
                for (int i = 0; i < array.Count; i++) CollectSpans(array[i], $"{path}[{i}]", document, spans);
                break;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                string text = value.GetValue<string>();
                int at = text.Length == 0 ? -1 : document.IndexOf(text, StringComparison.Ordinal);
                if (at >= 0) spans.Add(new FieldSpan(path, at, at + text.Length));
                break;
        }
    }

    /// <summary>One JSONL line: the extracted object with <c>_spans</c> added, or <c>{"_error": …}</c> when the answer was cut short.</summary>
    public static string ToJsonLine(Extraction extraction)
    {
        if (extraction.Value is null)
            return new JsonObject { ["_error"] = $"the answer did not finish within max tokens ({extraction.FinishReason?.ToString().ToLowerInvariant() ?? "cancelled"})", ["_text"] = extraction.Text }.ToJsonString();
        var line = extraction.Value is JsonObject obj ? (JsonObject)obj.DeepClone() : new JsonObject { ["value"] = extraction.Value.DeepClone() };
        var spans = new JsonObject();
        foreach (var span in extraction.Spans) spans[span.Path] = new JsonObject { ["start"] = span.Start, ["end"] = span.End };
        line["_spans"] = spans;
        return line.ToJsonString();
    }

    /// <summary>
    /// Field-level precision and recall of extracted objects against labels: a field counts as predicted
    /// when its value is a non-empty string, correct when it equals the label's value exactly.
    /// </summary>
    public static (double Precision, double Recall, int Correct, int Predicted, int Labelled) Score(
        IReadOnlyList<JsonObject?> predictions, IReadOnlyList<IReadOnlyDictionary<string, string>> labels)
    {
        if (predictions.Count != labels.Count) throw new ArgumentException($"{predictions.Count} predictions for {labels.Count} labels");
        int correct = 0, predicted = 0, labelled = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            foreach (var (field, expected) in labels[i])
            {
                labelled++;
                if (predictions[i]?[field] is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is { Length: > 0 } got)
                {
                    predicted++;
                    if (got == expected) correct++;
                }
            }
        }
        return (predicted == 0 ? 0 : correct / (double)predicted, labelled == 0 ? 0 : correct / (double)labelled, correct, predicted, labelled);
    }
}
