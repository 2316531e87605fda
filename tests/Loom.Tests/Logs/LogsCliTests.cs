using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Retrieval;

namespace Loom.Tests.Logs;

/// <summary><c>loom logs parse|train|detect|explain</c> run in-process on a small raw log, as a user would.</summary>
[Collection(nameof(Text.ConsoleCollection))]
public class LogsCliTests
{
    [Fact]
    public void ParseTrainDetectAndExplainARawLog()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        string train = Path.Combine(folder, "train.log"), test = Path.Combine(folder, "test.log"), model = Path.Combine(folder, "model");
        var random = new Random(3);
        File.WriteAllLines(train, Enumerable.Range(1, 120).SelectMany(i => WatchTests.SessionLines(i, ["A", "B", "C", .. Enumerable.Repeat("D", random.Next(1, 3)), "E"])));
        // The test log opens with a template the training log never had, so its mined ids differ from training's unless
        // detect gives lines the model's keys.
        File.WriteAllLines(test, [.. WatchTests.SessionLines(900, "A", "X", "C", "D", "E"), .. WatchTests.SessionLines(901, "A", "B", "C", "D", "E"),
            .. WatchTests.SessionLines(902, "A", "B", "C", "D", "D", "E"), .. WatchTests.SessionLines(903, "A", "C", "B", "D", "E")]);

        string parsed = Path.Combine(folder, "parsed.jsonl"), templates = Path.Combine(folder, "templates.csv");
        var parse = CliRun.Run("logs", "parse", test, "--out", parsed, "--templates", templates);
        Assert.True(parse.ExitCode == 0, parse.Error);
        Assert.Contains("parsed 21 lines into 6 templates", parse.Output);
        Assert.Equal(21, File.ReadAllLines(parsed).Length);
        Assert.Equal(7, File.ReadAllLines(templates).Length);

        var trained = CliRun.Run("logs", "train", train, "--out", model, "--steps", "120", "--dim", "32", "--layers", "1", "--quantile", "1", "--threads", "1");
        Assert.True(trained.ExitCode == 0, trained.Error);
        Assert.True(File.Exists(Path.Combine(model, "events.json")));

        string verdicts = Path.Combine(folder, "verdicts.jsonl");
        var detect = CliRun.Run("logs", "detect", test, "--model", model, "--out", verdicts, "--threads", "1");
        Assert.True(detect.ExitCode == 0, detect.Error);
        var byId = File.ReadAllLines(verdicts).Select(l => JsonNode.Parse(l)!).ToDictionary(v => v["session"]!.GetValue<string>());
        Assert.Equal(["blk_900", "blk_901", "blk_902", "blk_903"], byId.Keys);
        Assert.True(byId["blk_900"]["anomalous"]!.GetValue<bool>());
        Assert.Equal(1, byId["blk_900"]["first_unexpected_index"]!.GetValue<int>());
        Assert.Equal(2, byId["blk_900"]["first_unexpected_line"]!.GetValue<long>());
        Assert.False(byId["blk_901"]["anomalous"]!.GetValue<bool>());
        Assert.False(byId["blk_902"]["anomalous"]!.GetValue<bool>());
        Assert.True(byId["blk_903"]["anomalous"]!.GetValue<bool>());

        string explained = Path.Combine(folder, "explained.jsonl");
        var explain = CliRun.Run("logs", "explain", test, "--log-model", model, "--verdicts", verdicts, "--out", explained, "--threads", "1");
        Assert.True(explain.ExitCode == 0, explain.Error);
        var accounts = File.ReadAllLines(explained).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["blk_900", "blk_903"], accounts.Select(a => a["session"]!.GetValue<string>()));
        Assert.All(accounts, a => Assert.False(a["generated"]!.GetValue<bool>()));
        Assert.Equal(2, accounts[1]["similar"]![0]!["distance"]!.GetValue<int>());
        Assert.Contains("Unexpected: event ", accounts[1]["account"]!.GetValue<string>());

        var noWriter = CliRun.Run("logs", "explain", "--log-model", model, "--events", "1 2 3", "--index", folder);
        Assert.Equal(1, noWriter.ExitCode);
        Assert.Contains("--index needs a model to write the account", noWriter.Error);
    }

    [Fact]
    public async Task ExplainWritesTheAccountWithAModelCheckpointGroundedInAnIndex()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        string train = Path.Combine(folder, "train.log"), logModel = Path.Combine(folder, "log-model"), writer = Path.Combine(folder, "writer"), index = Path.Combine(folder, "kb");
        File.WriteAllLines(train, Enumerable.Range(1, 60).SelectMany(i => WatchTests.SessionLines(i, "A", "B", "C", "D", "E")));
        var trained = CliRun.Run("logs", "train", train, "--out", logModel, "--steps", "60", "--dim", "32", "--layers", "1", "--threads", "1");
        Assert.True(trained.ExitCode == 0, trained.Error);
        var (transformer, tokenizer) = Server.ServerFixture.BpeModel(9, maxSeq: 2048);
        Checkpoint.Save(writer, transformer, tokenizer.Save);
        using (var built = await RetrievalIndex.OpenAsync(index, Embedders.Hashing, null, create: true, default))
            await new Ingestor(built.Store, built.Embedder).IngestDocumentsAsync(
                [new SourceDocument("runbook", "Block runbook", "text", "When a block is received before it is allocated, check the datanode.", new Dictionary<string, string>(), new Dictionary<string, string>())],
                default);
        // Events 1 3 2 4 5: the second and third steps swapped.
        var explain = CliRun.Run("logs", "explain", "--log-model", logModel, "--events", "1 3 2 4 5", "--model", writer, "--index", index, "--top", "1",
            "--max-tokens", "5", "--threads", "1");
        Assert.True(explain.ExitCode == 0, explain.Error);
        var account = JsonNode.Parse(explain.Output.Trim())!;
        Assert.Equal("given", account["session"]!.GetValue<string>());
        Assert.True(account["generated"]!.GetValue<bool>());
        Assert.Equal("runbook", account["sources"]![0]!["source"]!.GetValue<string>());
        Assert.Equal(["1", "2", "3", "4", "5"], account["similar"]![0]!["events"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal(60, account["similar"]![0]!["count"]!.GetValue<int>());
    }
}
