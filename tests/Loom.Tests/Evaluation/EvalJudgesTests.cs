using System.Text.Json;
using Json.Schema;
using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Text;
using Loom.Training.Tuning;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Evaluation;

/// <summary>Schema validity of generated answers, RAG metrics, and pairwise win rates under program, reward and chat judges.</summary>
public sealed class EvalJudgesTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-judges-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    const string Schema = """
        {"type":"object","properties":{"name":{"type":"string","maxLength":12,"pattern":"^[a-z]+$"},"n":{"type":"integer","minimum":0,"maximum":9},
         "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2},"kind":{"$ref":"#/$defs/kind"}},
         "required":["name","n"],"additionalProperties":false,"$defs":{"kind":{"anyOf":[{"const":1},{"type":"null"}]}}}
        """;

    static readonly char[] Alphabet = [.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'];

    static LoomModel TinyModel(string name, ulong seed)
    {
        var tokenizer = CharTokenizer.Train([new string(Alphabet)]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 512 };
        return LoomModel.Create(name, new Transformer(config, seed), tokenizer);
    }

    [Theory]
    [InlineData("""{"name":"abc","n":3}""")]
    [InlineData("""{"name":"abc","n":3,"tags":["a","b"],"kind":1}""")]
    [InlineData("""{"name":"abc","n":3,"kind":null}""")]
    [InlineData("""{"name":"Abc","n":3}""")]
    [InlineData("""{"name":"abc","n":10}""")]
    [InlineData("""{"name":"abc","n":3.5}""")]
    [InlineData("""{"name":"abc","n":3.0}""")]
    [InlineData("""{"name":"abc"}""")]
    [InlineData("""{"name":"abc","n":3,"extra":true}""")]
    [InlineData("""{"name":"abc","n":3,"tags":["a","b","a"]}""")]
    [InlineData("""{"name":"abc","n":3,"tags":["c"]}""")]
    [InlineData("""{"name":"abc","n":3,"kind":2}""")]
    [InlineData("""{"name":"abcdefghijklm","n":3}""")]
    [InlineData("""[1,2]""")]
    public void SchemaValidatorAgreesWithJsonSchemaNet(string instance)
    {
        using var schema = JsonDocument.Parse(Schema);
        bool expected = JsonSchema.FromText(Schema).Evaluate(JsonDocument.Parse(instance).RootElement).IsValid;
        Assert.Equal(expected, new SchemaValidator(schema.RootElement).IsValid(instance));
    }

    [Fact]
    public void SchemaValidatorRefusesWhatTheCompilerRefusesAndFailsWhatDoesNotParse()
    {
        var error = Assert.Throws<ArgumentException>(() => new SchemaValidator(JsonDocument.Parse("""{"type":"string","format":"date"}""").RootElement));
        Assert.Contains("'format'", error.Message);
        var validator = new SchemaValidator(JsonDocument.Parse("""{"type":"object"}""").RootElement);
        Assert.False(validator.IsValid("{\"a\":"));
        Assert.False(validator.IsValid("hello"));
        Assert.True(validator.IsValid(" {} "));
    }

    [Fact]
    public async Task AnswersGeneratedUnderTheSchemaAreAllValidAndFreeAnswersAreNot()
    {
        string schemaPath = Path.Combine(folder, "answer.schema.json");
        File.WriteAllText(schemaPath, """{"type":"object","properties":{"answer":{"type":"string","maxLength":8}},"required":["answer"],"additionalProperties":false}""");
        await using var model = TinyModel("tiny", 5);
        PromptItemsFile(out var items);
        var structured = await EvalTasks.GenerateAsync(model.AsIChatClient(), items, new EvalTaskOptions(MaxTokens: 40, Schema: schemaPath));
        Assert.Equal(1.0, structured["schema_valid"].Value);
        Assert.Equal(items.Count, structured["schema_valid"].N);

        // The same prompts answered freely: an untrained model writes no JSON object with an "answer" string.
        var free = await EvalTasks.GenerateAsync(new FreeTextChatClient(model.AsIChatClient()), items, new EvalTaskOptions(MaxTokens: 40, Schema: schemaPath));
        Assert.Equal(0.0, free["schema_valid"].Value);
    }

    static void PromptItemsFile(out List<EvalTasks.PromptItem> items) =>
        items = [new("Capital of France?", ["Paris"]), new("Two plus two?", ["4"]), new("Colour of the sky?", ["blue"])];

    /// <summary>The real model, with the response format dropped: the answers a model writes when nothing constrains it.</summary>
    sealed class FreeTextChatClient(IChatClient inner) : DelegatingChatClient(inner)
    {
        public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var free = options?.Clone();
            if (free is not null) free.ResponseFormat = null;
            return base.GetResponseAsync(messages, free, cancellationToken);
        }
    }

    [Fact]
    public void TaskFilesTakeASchemaAndJudgesAndNameTheFieldOnError()
    {
        File.WriteAllText(Path.Combine(folder, "s.json"), """{"type":"object"}""");
        string Write(string name, string json)
        {
            string path = Path.Combine(folder, name);
            File.WriteAllText(path, json);
            return path;
        }
        var generate = EvalTask.Load(Write("g.json", """{"name":"g","kind":"generate","data":"g.jsonl","options":{"schema":"s.json"}}"""));
        Assert.Equal(Path.Combine(folder, "s.json"), generate.Options.Schema);
        Assert.Contains("schema_valid", generate.ReportedMetrics);
        Assert.DoesNotContain("schema_valid", EvalTask.Load(Write("g2.json", """{"name":"g","kind":"generate","data":"g.jsonl"}""")).ReportedMetrics);
        var error = Assert.Throws<InvalidDataException>(() => EvalTask.Load(Write("g3.json", """{"name":"g","kind":"generate","data":"g.jsonl","metrics":["schema_valid"]}""")));
        Assert.Contains("options.schema", error.Message);

        var pairwise = EvalTask.Load(Write("p.json", """{"name":"p","kind":"pairwise","data":"p.jsonl","options":{"judge":"reward:rm"}}"""));
        Assert.Equal("reward:" + Path.Combine(folder, "rm"), pairwise.Options.Judge);
        error = Assert.Throws<InvalidDataException>(() => EvalTask.Load(Write("p2.json", """{"name":"p","kind":"pairwise","data":"p.jsonl","options":{"judge":"coin"}}""")));
        Assert.Contains("options.judge", error.Message);

        var rag = EvalTask.Load(Write("r.json", """{"name":"r","kind":"rag","data":"r.jsonl","options":{"judge":"overlap","k":3,"citation_threshold":0.6}}"""));
        Assert.Equal(["context_precision", "context_recall", "citation_correctness", "faithfulness", "answer_relevance"], rag.ReportedMetrics);
        Assert.Equal(0.6, rag.Options.CitationThreshold);
        error = Assert.Throws<InvalidDataException>(() => EvalTask.Load(Write("r2.json", """{"name":"r","kind":"rag","data":"r.jsonl","options":{"judge":"f1"}}""")));
        Assert.Contains("options.judge", error.Message);
    }

    // ---- RAG ----

    static readonly IReadOnlyList<EvalTasks.RetrievedSource> Sources =
    [
        new("trim", "String.Trim removes all leading and trailing white-space characters from the current string."),
        new("split", "String.Split returns a string array that contains the substrings delimited by a separator."),
        new("upper", "String.ToUpper returns a copy of this string converted to uppercase."),
    ];

    [Fact]
    public void CitationsAreRightWhenTheCitedSourceSupportsTheSentence()
    {
        // Sentence 1 cites [1] (supports it) and [2] (does not); sentence 2 cites [3] (supports it); [7] names no source.
        const string answer = "Trim removes leading and trailing white-space characters [1][2]. ToUpper returns a copy converted to uppercase [3]. Also [7].";
        Assert.Equal(2 / 4.0, EvalTasks.CitationCorrectness(answer, Sources, null, 0.5), 12);
        Assert.Equal(0, EvalTasks.CitationCorrectness("Trim removes white space.", Sources, null, 0.5));
        Assert.Equal(0.5, EvalTasks.CitationCorrectness("Trim removes leading white-space characters. [1] [2]", Sources, null, 0.5)); // after the full stop
        // The labelled supporting text found in the cited source makes a citation right whatever the sentence's words.
        Assert.Equal(1, EvalTasks.CitationCorrectness("It works [2].", Sources, "substrings delimited by a separator", 0.5));
        Assert.Equal(0, EvalTasks.CitationCorrectness("It works [2].", Sources, null, 0.5));
    }

    [Fact]
    public async Task RagScoresCountRelevantSourcesCitationsAndTheJudgesVerdicts()
    {
        using var judge = new OverlapJudgeChatClient();
        var item = new EvalTasks.RagItem("What does String.Trim remove?", ["trim", "trimstart"]);
        const string answer = "Trim removes all leading and trailing white-space characters [1]. It also deletes the hard disk [2].";
        var scores = await EvalTasks.ScoreRagAsync(item, Sources, answer, judge, k: 3, citationThreshold: 0.5);
        Assert.Equal(1 / 3.0, scores["context_precision"], 12); // one of the 3 retrieved is labelled
        Assert.Equal(1 / 2.0, scores["context_recall"], 12);    // one of the 2 labelled is retrieved
        Assert.Equal(1 / 2.0, scores["citation_correctness"], 12);
        Assert.Equal(1 / 2.0, scores["faithfulness"], 12);      // the second sentence is not in the context
        // Question content words: what, does, string, trim, remove; the answer has "trim" only ("removes" is another word): 10 × 1/5 = 2.
        Assert.Equal(0.2, scores["answer_relevance"], 12);
        var k1 = await EvalTasks.ScoreRagAsync(item, Sources, answer, judge, k: 1, citationThreshold: 0.5);
        Assert.Equal(1.0, k1["context_precision"], 12);
    }

    [Fact]
    public async Task AnswerRelevanceReadsTheJudgesRating()
    {
        using var judge = new OverlapJudgeChatClient();
        Assert.Equal(1.0, await ChatJudge.AnswerRelevanceAsync(judge, "What does Trim remove?", "Trim does remove what you ask."));
        Assert.Equal(0.0, await ChatJudge.AnswerRelevanceAsync(judge, "What does Trim remove?", "Bananas."));
        await using var model = TinyModel("judge", 4);
        double untrained = await ChatJudge.AnswerRelevanceAsync(model.AsIChatClient(), "What does Trim remove?", "Bananas.");
        Assert.InRange(untrained, 0, 1);
    }

    // ---- pairwise ----

    static readonly List<EvalTasks.PromptItem> Duel =
    [
        new("Capital of France?", ["Paris is the capital of France"]),
        new("Colour of the sky?", ["the sky is blue"]),
        new("Largest planet?", ["Jupiter is the largest planet"]),
        new("Two plus two?", ["four"]),
    ];

    /// <summary>A model that answers from a table: the answers of two "versions" being compared.</summary>
    sealed class TableChatClient(Func<string, string> answer) : IChatClient
    {
        public TableChatClient(Dictionary<string, string> answers) : this(prompt => answers[prompt]) { }

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, answer(messages.Last().Text))));

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }

    static readonly TableChatClient ModelA = new(new Dictionary<string, string>
    {
        ["Capital of France?"] = "Paris is the capital", ["Colour of the sky?"] = "green", ["Largest planet?"] = "Jupiter is the largest planet", ["Two plus two?"] = "five",
    });

    static readonly TableChatClient ModelB = new(new Dictionary<string, string>
    {
        ["Capital of France?"] = "Lyon", ["Colour of the sky?"] = "the sky is blue", ["Largest planet?"] = "Jupiter", ["Two plus two?"] = "six",
    });

    [Fact]
    public async Task AChatJudgeAgreesWithTheProgramJudgeItMirrorsAndPositionBiasCancels()
    {
        // Items: A wins, B wins, A wins, tie (f1 0 against 0) → 2.5 / 4.
        var options = new EvalTaskOptions(BootstrapSamples: 200);
        var program = await EvalTasks.PairwiseAsync(ModelA, ModelB, new ProgramPairwiseJudge("program"), Duel, options);
        Assert.Equal(0.625, program["win_rate"].Value, 12);
        using var overlap = new OverlapJudgeChatClient();
        var chat = await EvalTasks.PairwiseAsync(ModelA, ModelB, new ChatPairwiseJudge(overlap), Duel, options);
        Assert.Equal(0.625, chat["win_rate"].Value, 12);
        Assert.Equal(program["win_rate"].Low, chat["win_rate"].Low);
        Assert.True(chat["win_rate"].Low < 0.625 && chat["win_rate"].High > 0.625);

        // A judge that always answers "A" prefers a position, not an answer: asked both ways, every item is a tie.
        var biased = await EvalTasks.PairwiseAsync(ModelA, ModelB, new ChatPairwiseJudge(new TableChatClient(_ => "A")), Duel, options);
        Assert.Equal(0.5, biased["win_rate"].Value, 12);
        Assert.Equal(1.0, ChatPairwiseJudge.Verdict("A."));
        Assert.Equal(0.0, ChatPairwiseJudge.Verdict("Answer B is better"));
        Assert.Equal(0.5, ChatPairwiseJudge.Verdict("neither"));
    }

    [Fact]
    public async Task ARewardModelJudgesByItsScores()
    {
        var tokenizer = CharTokenizer.Train([new string(Alphabet)]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 256 };
        var reward = new RewardModel(new Transformer(config, 9));
        var random = new Random(3);
        foreach (ref float w in reward.Head.Span) w = (float)(random.NextDouble() - 0.5);
        string rm = Path.Combine(folder, "rm");
        reward.Save(rm, tokenizer);

        var task = new EvalTask("duel", EvalTaskKind.Pairwise, "", [], new EvalTaskOptions(Judge: "reward:" + rm), new Dictionary<string, double>());
        var judge = Assert.IsType<RewardPairwiseJudge>(EvalTasks.PairwiseJudge(task, new EvalSubjects(new ModelVersion("a", "0"))));
        var result = await EvalTasks.PairwiseAsync(ModelA, ModelB, judge, Duel, new EvalTaskOptions());

        // The same reward model scoring each answer directly, with Loom's chat format.
        var loaded = RewardModel.Load(rm);
        double expected = 0;
        foreach (var item in Duel)
        {
            string a = (await ModelA.GetResponseAsync([new ChatMessage(ChatRole.User, item.Prompt)])).Text, b = (await ModelB.GetResponseAsync([new ChatMessage(ChatRole.User, item.Prompt)])).Text;
            var scores = loaded.Score([TokenSequence.FromResponse([new ChatTurn("user", item.Prompt)], a, tokenizer), TokenSequence.FromResponse([new ChatTurn("user", item.Prompt)], b, tokenizer)]);
            Assert.NotEqual(scores[0], scores[1]);
            expected += scores[0] > scores[1] ? 1 : 0;
        }
        Assert.Equal(expected / Duel.Count, result["win_rate"].Value, 12);
    }
}

/// <summary>A rag task end to end: a real index (SQLite, hashing embeddings) and an extractive answerer that quotes source [1].</summary>
public sealed class RagTaskTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-rag-").FullName;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(folder, recursive: true);
    }

    /// <summary>Answers with the first line of source [1] of the rag prompt, citing it.</summary>
    sealed class QuoteFirstSource : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            string prompt = messages.Last().Text;
            string first = prompt[(prompt.IndexOf("[1] ", StringComparison.Ordinal) + 4)..].Split('\n')[0];
            return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, first + " [1]")));
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose() { }
    }

    [Fact]
    public async Task ARagTaskScoresRetrievalCitationsAndFaithfulness()
    {
        string docs = Directory.CreateDirectory(Path.Combine(folder, "docs")).FullName;
        File.WriteAllText(Path.Combine(docs, "trim.txt"), "String.Trim removes all leading and trailing white-space characters from the current string.");
        File.WriteAllText(Path.Combine(docs, "split.txt"), "String.Split returns a string array that contains the substrings delimited by a separator.");
        File.WriteAllText(Path.Combine(docs, "upper.txt"), "String.ToUpper returns a copy of this string converted to uppercase.");
        using var store = Loom.Retrieval.SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
        await new Loom.Retrieval.Ingestor(store, new Loom.Retrieval.HashingEmbeddingGenerator()).IngestPathsAsync([docs], new Dictionary<string, string>(), default);
        var retriever = new Loom.Retrieval.Retriever(store, new Loom.Retrieval.HashingEmbeddingGenerator());
        var ids = (await retriever.SearchAsync("string", new Loom.Retrieval.SearchOptions(Top: 10), default)).Select(h => h.SourceId).Distinct().ToList();
        Assert.Equal(3, ids.Count);
        string trim = ids.Single(id => id.EndsWith("trim.txt", StringComparison.Ordinal)), split = ids.Single(id => id.EndsWith("split.txt", StringComparison.Ordinal));

        File.WriteAllLines(Path.Combine(folder, "rag.jsonl"),
        [
            new System.Text.Json.Nodes.JsonObject { ["question"] = "What does String.Trim remove?", ["sources"] = new System.Text.Json.Nodes.JsonArray(trim) }.ToJsonString(),
            new System.Text.Json.Nodes.JsonObject { ["question"] = "How does String.Split cut a string?", ["sources"] = new System.Text.Json.Nodes.JsonArray(split, trim) }.ToJsonString(),
        ]);
        File.WriteAllText(Path.Combine(folder, "rag.json"), """{"name": "rag", "kind": "rag", "data": "rag.jsonl", "options": {"k": 3}}""");
        var task = EvalTask.Load(Path.Combine(folder, "rag.json"));
        var result = await EvalTasks.RunAsync(task, new EvalSubjects(new ModelVersion("quote", "0"), Chat: new QuoteFirstSource(), Retriever: retriever));

        // All 3 sources are retrieved for each question: precision (1/3 + 2/3) / 2, recall 1; the quoted source supports its citation.
        Assert.Equal(0.5, result.Metrics["context_precision"].Value, 12);
        Assert.Equal(1.0, result.Metrics["context_recall"].Value, 12);
        Assert.Equal(1.0, result.Metrics["citation_correctness"].Value, 12);
        Assert.Equal(1.0, result.Metrics["faithfulness"].Value, 12);
        Assert.Equal(2, result.Metrics["answer_relevance"].N);
    }
}

/// <summary>`loom eval` pairwise tasks with a model judge named in the task file, against the same judge run in process.</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class PairwiseCliTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-eval-pairwise-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    string SaveModel(string name, ulong seed)
    {
        var tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'])]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 512 };
        string folder = Path.Combine(root, name);
        Checkpoint.Save(folder, new Transformer(config, seed), tokenizer.Save);
        return folder;
    }

    [Fact]
    public async Task AModelJudgeInTheTaskFileGivesTheInProcessWinRate()
    {
        string a = SaveModel("a", 1), b = SaveModel("b", 2);
        SaveModel("judge", 3);
        File.WriteAllLines(Path.Combine(root, "duel.jsonl"),
        [
            """{"prompt": "Capital of France?", "reference": "Paris"}""",
            """{"prompt": "Colour of the sky?", "reference": "blue"}""",
            """{"prompt": "Two plus two?", "reference": "four"}""",
        ]);
        string taskPath = Path.Combine(root, "duel.json");
        File.WriteAllText(taskPath, """{"name": "duel", "kind": "pairwise", "data": "duel.jsonl", "options": {"judge": "model:judge", "max_tokens": 6}}""");
        string results = Path.Combine(root, "run.json");
        var run = CliRun.Run("eval", "--task", taskPath, "--model", a, "--against", b, "--out", results, "--threads", "1");
        Assert.True(run.ExitCode == 0, run.Error);
        var winRate = Assert.Single(EvalRun.Load(results).Tasks).Metrics["win_rate"];

        var task = EvalTask.Load(taskPath);
        await using var modelA = LoomModel.Load(a);
        await using var modelB = LoomModel.Load(b);
        await using var judge = LoomModel.Load(Path.Combine(root, "judge"));
        var expected = await EvalTasks.PairwiseAsync(modelA.AsIChatClient(), modelB.AsIChatClient(), new ChatPairwiseJudge(judge.AsIChatClient()),
            EvalTasks.ReadPrompts(task), task.Options);
        Assert.Equal(expected["win_rate"].Value, winRate.Value, 12);
        Assert.Equal(3, winRate.N);
        Assert.Equal(expected["win_rate"].Low, winRate.Low);
    }
}
