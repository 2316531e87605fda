using Loom.Logs;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Tests.Server;
using Loom.Tests.Serving;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Logs;

/// <summary>The explainer: the structured fields with and without a model, the prompt, and runbook citations through the pipeline.</summary>
public class ExplainTests
{
    static readonly Lazy<LogModel> Model = new(() => DetectionTests.TinyModel(DetectionTests.Synthetic(200, 1)));

    static LogSession Swap => new("swap", ["A", "C", "B", "D", "E"], [10, 11, 12, 13, 14], true);

    [Fact]
    public void EditDistanceAndPatternsAreExact()
    {
        Assert.Equal(0, NormalPatterns.EditDistance(["a", "b"], ["a", "b"]));
        Assert.Equal(2, NormalPatterns.EditDistance(["a", "c", "b"], ["a", "b", "c"]));
        Assert.Equal(3, NormalPatterns.EditDistance([], ["x", "y", "z"]));
        Assert.Equal(1, NormalPatterns.EditDistance(["k", "i", "t"], ["k", "a", "t"]));
        var patterns = NormalPatterns.From(
        [
            new LogSession("1", ["a", "b"], [0, 0]), new LogSession("2", ["a"], [0]), new LogSession("3", ["a", "b"], [0, 0]), new LogSession("4", ["c"], [0]),
        ], keep: 2);
        Assert.Equal([("a b", 2), ("a", 1)], patterns.Select(p => (string.Join(' ', p.Events), p.Count)));
        var nearest = NormalPatterns.Nearest(patterns, ["a", "x"], 2);
        Assert.Equal([(1, 2), (1, 1)], nearest.Select(n => (n.Distance, n.Count)));
    }

    [Fact]
    public async Task WithoutAModelTheAccountIsTheFactsAndEveryFieldIsThere()
    {
        var explanation = await new LogExplainer(Model.Value).ExplainAsync(Swap);
        var verdict = explanation.Verdict;
        Assert.True(verdict.Anomalous);
        Assert.Equal(("swap", 1, 11L, "C"), (verdict.SessionId, verdict.FirstUnexpectedIndex, verdict.FirstUnexpectedLine, verdict.UnexpectedEvent));
        Assert.Equal("B", verdict.Expected[0].Event);
        // The normal sessions are A B C D{1..3} E: the nearest to A C B D E is A B C D E (a swap costs two edits).
        Assert.Equal(3, explanation.Similar.Count);
        Assert.Equal(["A", "B", "C", "D", "E"], explanation.Similar[0].Events);
        Assert.Equal(2, explanation.Similar[0].Distance);
        Assert.Equal(DetectionTests.Synthetic(200, 1).Count(s => s.Events.Count == 5), explanation.Similar[0].Count);
        Assert.False(explanation.Generated);
        Assert.Null(explanation.Prompt);
        Assert.Equal(explanation.Facts, explanation.Account);
        Assert.StartsWith("Unexpected: event C at step 2 of 6 (log line 11), probability ", explanation.Account);
        Assert.Contains("Expected instead: event B (", explanation.Account);
        Assert.Contains("Session swap is anomalous: score ", explanation.Account);
        Assert.Contains("- distance 2, seen ", explanation.Account);

        var json = System.Text.Json.Nodes.JsonNode.Parse(explanation.ToJson())!;
        Assert.Equal("swap", json["session"]!.GetValue<string>());
        Assert.Equal(11, json["first_unexpected_line"]!.GetValue<long>());
        Assert.Equal("B", json["expected"]![0]!["event"]!.GetValue<string>());
        Assert.Equal(2, json["similar"]![0]!["distance"]!.GetValue<int>());
        Assert.False(json["generated"]!.GetValue<bool>());
        Assert.Null(json["sources"]);

        var normal = await new LogExplainer(Model.Value).ExplainAsync(new LogSession("ok", ["A", "B", "C", "D", "E"], new long[5]));
        Assert.False(normal.Verdict.Anomalous);
        Assert.Null(normal.Verdict.FirstUnexpectedIndex);
        Assert.Equal(0, normal.Similar[0].Distance);
        Assert.StartsWith("Session ok is normal: score ", normal.Account);
    }

    [Fact]
    public void KeptNormalSessionsTravelWithTheCheckpoint()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        Model.Value.Save(folder);
        var loaded = LogModel.Load(folder);
        Assert.Equal(Model.Value.Normal.Select(p => (string.Join(' ', p.Events), p.Count)), loaded.Normal.Select(p => (string.Join(' ', p.Events), p.Count)));
        Assert.Equal(3, loaded.Normal.Count); // one D, two or three
        Assert.Equal(200, loaded.Normal.Sum(p => p.Count));
    }

    [Fact]
    public async Task ARandomModelWritesTheAccountFromThePromptGroundedInRunbooks()
    {
        string folder = Directory.CreateTempSubdirectory("loom-explain-").FullName;
        try
        {
            using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
            var embedder = new HashingEmbeddingGenerator();
            await new Ingestor(store, embedder).IngestDocumentsAsync(
            [
                new SourceDocument("runbook:open", "Open failures", "text", "When open fails, check the event C ordering and restart the datanode.", new Dictionary<string, string>(), new Dictionary<string, string>()),
                new SourceDocument("runbook:lunch", "Lunch", "text", "Lunch is served at noon in the canteen.", new Dictionary<string, string>(), new Dictionary<string, string>()),
            ], default);
            var retriever = new Retriever(store, embedder);
            var retrieval = new RetrievalChatOptions { Search = new SearchOptions(SearchMode.Hybrid, Top: 1) };

            // A recording client behind the retrieval layer: the prompt carries the facts and the runbook, and the account's citation resolves to it.
            var recording = new RecordingChatClient("Event C came before B; see the runbook [1].");
            using var grounded = recording.AsBuilder().UseRetrieval(retriever, retrieval).Build();
            var cited = await new LogExplainer(Model.Value, grounded).ExplainAsync(Swap);
            Assert.True(cited.Generated);
            Assert.Equal("Event C came before B; see the runbook [1].", cited.Account);
            Assert.Equal(LogExplainer.Instruction + "\n\n" + cited.Facts, cited.Prompt);
            string userTurn = recording.Received.Last(m => m.Role == ChatRole.User).Text;
            Assert.Contains("[1] Open failures\nWhen open fails", userTurn);
            Assert.Contains("Question: " + LogExplainer.Instruction, userTurn);
            Assert.Contains("Expected instead: event B", userTurn);
            Assert.Equal(0f, recording.Options[0]!.Temperature);
            Assert.Equal("runbook:open", Assert.Single(cited.Sources!.Cited).Hit.SourceId);
            var json = System.Text.Json.Nodes.JsonNode.Parse(cited.ToJson())!;
            Assert.Equal("runbook:open", json["sources"]![0]!["source"]!.GetValue<string>());
            Assert.Equal(1, json["cited"]![0]!.GetValue<int>());

            // A tiny random Loom model through the Loom pipeline: its (gibberish) text is the account, the fields stay the model's.
            var (transformer, tokenizer) = ServerFixture.BpeModel(7, maxSeq: 2048);
            await using var model = LoomModel.Create("tiny", transformer, tokenizer);
            using var chat = LoomPipeline.Build(model.Engine, new LoomPipelineOptions { Limits = new ChatLimits(), Retriever = retriever, Retrieval = retrieval });
            var written = await new LogExplainer(Model.Value, chat, new LogExplainOptions { MaxOutputTokens = 6 }).ExplainAsync(Swap);
            var direct = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, written.Prompt!)], new ChatOptions { Temperature = 0, MaxOutputTokens = 6 });
            Assert.Equal(direct.Text.Trim(), written.Account);
            Assert.True(written.Generated);
            Assert.Equal(cited.Verdict.Score, written.Verdict.Score);
            Assert.Equal(cited.Facts, written.Facts);
            Assert.Equal("runbook:open", Assert.Single(written.Sources!.Given).Hit.SourceId);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void BadOptionsNameTheField()
    {
        var error = Assert.Throws<ArgumentException>(() => new LogExplainer(Model.Value, null, new LogExplainOptions { ExpectedCount = 0 }));
        Assert.Equal("LogExplainOptions.ExpectedCount must be positive, got 0", error.Message);
    }
}
