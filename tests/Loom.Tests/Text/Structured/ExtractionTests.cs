using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;
using Xunit.Abstractions;

namespace Loom.Tests.Text.Structured;

/// <summary>
/// Extraction on a small labelled set: 50 HDFS lines from Loghub, labelled from Loghub's own structured
/// CSV (date, time, pid, level, component). With a tiny random model the field-level numbers are low;
/// the test checks the machinery (every object validates, every span points at its value) and reports them.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class ExtractionTests(ITestOutputHelper output)
{
    internal const string Schema = """
        {"type":"object","properties":{"date":{"type":"string","pattern":"\\d{6}"},"time":{"type":"string","pattern":"\\d{6}"},
         "pid":{"type":"string","pattern":"\\d{1,6}"},"level":{"enum":["INFO","WARN","ERROR"]},"component":{"type":"string","maxLength":40}},
         "required":["date","time","pid","level","component"],"additionalProperties":false}
        """;

    /// <summary>The first <paramref name="count"/> HDFS lines and their labels from the structured CSV.</summary>
    internal static (List<string> Lines, List<IReadOnlyDictionary<string, string>> Labels) HdfsLabelled(int count)
    {
        string folder = Path.Combine(GgufReference.RepoRoot(), "..", "shared", "data", "loghub", "HDFS");
        var lines = File.ReadLines(Path.Combine(folder, "HDFS_2k.log")).Take(count).ToList();
        var labels = new List<IReadOnlyDictionary<string, string>>();
        foreach (var row in File.ReadLines(Path.Combine(folder, "HDFS_2k.log_structured.csv")).Skip(1).Take(count))
        {
            var cells = SplitCsv(row); // LineId,Date,Time,Pid,Level,Component,Content,EventId,EventTemplate
            labels.Add(new Dictionary<string, string> { ["date"] = cells[1], ["time"] = cells[2], ["pid"] = cells[3], ["level"] = cells[4], ["component"] = cells[5] });
        }
        return (lines, labels);
    }

    static List<string> SplitCsv(string row)
    {
        var cells = new List<string>();
        var cell = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < row.Length; i++)
        {
            char c = row[i];
            if (quoted && c == '"' && i + 1 < row.Length && row[i + 1] == '"') { cell.Append('"'); i++; }
            else if (c == '"') quoted = !quoted;
            else if (c == ',' && !quoted) { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(c);
        }
        cells.Add(cell.ToString());
        return cells;
    }

    [Fact]
    public async Task FiftyLoghubLinesGiveValidObjectsWithTrueSpans()
    {
        var (lines, labels) = HdfsLabelled(50);
        var tokenizer = BpeTrainer.Train([string.Join('\n', File.ReadLines(Path.Combine(GgufReference.RepoRoot(), "..", "shared", "data", "loghub", "HDFS", "HDFS_2k.log")).Skip(100).Take(500)), Schema], 600);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 512 };
        await using var model = LoomModel.Create("extract", TestModels.Random(config, 31), tokenizer);
        var schema = JsonDocument.Parse(Schema).RootElement;
        var validator = JsonSchema.FromText(Schema);
        var predictions = new List<JsonObject?>();
        int spans = 0;
        foreach (var line in lines)
        {
            var extraction = await StructuredExtractor.ExtractAsync(model.Engine, schema, line, new ExtractionOptions { MaxTokens = 120 });
            Assert.Equal(FinishReason.Stop, extraction.FinishReason);
            Assert.True(validator.Evaluate(JsonDocument.Parse(extraction.Text).RootElement).IsValid, extraction.Text);
            foreach (var span in extraction.Spans)
            {
                string value = (string)JsonNode.Parse(extraction.Text)![span.Path[2..]]!;
                Assert.Equal(value, line[span.Start..span.End]);
                spans++;
            }
            var jsonl = JsonNode.Parse(StructuredExtractor.ToJsonLine(extraction))!.AsObject();
            Assert.NotNull(jsonl["_spans"]);
            predictions.Add(extraction.Value as JsonObject);
        }
        var (precision, recall, correct, predicted, labelled) = StructuredExtractor.Score(predictions, labels);
        Assert.Equal(250, labelled);
        Assert.InRange(correct, 0, predicted);
        output.WriteLine($"HDFS 50 lines, tiny random model: field precision {precision:P1} ({correct}/{predicted}), recall {recall:P1} ({correct}/{labelled}), {spans} string values found verbatim in their line");
        // The labels themselves score 100%: the scorer is not the reason for low numbers.
        var perfect = StructuredExtractor.Score([.. labels.Select(l => new JsonObject(l.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))))], labels);
        Assert.Equal((1.0, 1.0), (perfect.Precision, perfect.Recall));
    }
}
