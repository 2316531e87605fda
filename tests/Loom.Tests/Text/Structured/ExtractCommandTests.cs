using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Loom.Models;
using Loom.Tests.Models;
using Loom.Tests.Text;
using Loom.Text;

namespace Loom.Tests.Text.Structured;

/// <summary><c>loom extract</c> end to end on a checkpoint saved by the test.</summary>
[Collection(nameof(ConsoleCollection))]
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class ExtractCommandTests : IDisposable
{
    readonly string directory = TestData.NewTemporaryDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void WritesOneValidObjectPerLineWithSpans()
    {
        var (lines, _) = ExtractionTests.HdfsLabelled(3);
        var tokenizer = BpeTrainer.Train([string.Join('\n', lines), ExtractionTests.Schema], 400);
        string folder = Path.Combine(directory, "model");
        Checkpoint.Save(folder, TestModels.Random(TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 512 }, 41), tokenizer.Save);
        string schema = Path.Combine(directory, "hdfs.schema.json"), input = Path.Combine(directory, "hdfs.log"), output = Path.Combine(directory, "out.jsonl");
        File.WriteAllText(schema, ExtractionTests.Schema);
        File.WriteAllLines(input, lines);

        var (code, _, error) = CliRun.WithInput("", "extract", "--schema", schema, "--model", folder, "--lines", input, "--out", output, "--max-tokens", "120", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.Contains("3 documents, 3 objects", error);
        var written = File.ReadAllLines(output);
        Assert.Equal(3, written.Length);
        var validator = JsonSchema.FromText(ExtractionTests.Schema);
        for (int i = 0; i < 3; i++)
        {
            var line = JsonNode.Parse(written[i])!.AsObject();
            var spans = line["_spans"]!.AsObject();
            line.Remove("_spans");
            Assert.True(validator.Evaluate(JsonDocument.Parse(line.ToJsonString()).RootElement).IsValid, written[i]);
            foreach (var (path, span) in spans)
                Assert.Equal((string)line[path[2..]]!, lines[i][(int)span!["start"]!..(int)span["end"]!]);
        }

        File.WriteAllText(schema, """{"type":"string","format":"date"}""");
        (code, _, error) = CliRun.WithInput("", "extract", "--schema", schema, "--model", folder, input);
        Assert.Equal(1, code);
        Assert.Equal("error: unsupported JSON Schema keyword 'format' at #", error.Trim());
    }
}
