using System.Runtime.CompilerServices;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Tests.Server;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Serving;

/// <summary>A chat client that records what it got and answers with a fixed text, streamed in pieces of three characters.</summary>
sealed class RecordingChatClient(string answer) : IChatClient
{
    public List<ChatMessage> Received { get; } = [];
    public List<ChatOptions?> Options { get; } = [];

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Received.AddRange(messages);
        Options.Add(options);
        return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, answer)) { FinishReason = ChatFinishReason.Stop });
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        Received.AddRange(messages);
        Options.Add(options);
        for (int at = 0; at < answer.Length; at += 3)
        {
            await Task.Yield();
            yield return new ChatResponseUpdate(ChatRole.Assistant, answer[at..Math.Min(answer.Length, at + 3)])
            {
                FinishReason = at + 3 >= answer.Length ? ChatFinishReason.Stop : null,
            };
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose()
    {
    }
}

/// <summary>The retrieval, limits and metrics layers, each on its own and composed with the builder.</summary>
public sealed class ChatLayerTests
{
    static SearchHit Hit(long id, string source, string heading, string text) => new(id, source, Path.GetFileName(source), heading, text, 1.0, new Dictionary<string, string>());

    static Task<IReadOnlyList<SearchHit>> Hits(params SearchHit[] hits) => Task.FromResult<IReadOnlyList<SearchHit>>(hits);

    [Fact]
    public void PromptNumbersSourcesAndAsksForCitations()
    {
        var sources = RagPrompt.Number([Hit(7, "/d/a.md", "Guide > Install", "Run setup.\n"), Hit(9, "/d/b.md", "", "Use apt.")]);
        var messages = RagPrompt.Build("  How do I install? ", sources);
        Assert.Equal(2, messages.Count);
        Assert.Equal(ChatRole.System, messages[0].Role);
        Assert.Contains("[1]", messages[0].Text);
        Assert.Equal(
            "Sources:\n\n[1] a.md (Guide > Install)\nRun setup.\n\n[2] b.md\nUse apt.\n\nQuestion: How do I install?\nAnswer with citations:",
            messages[1].Text);
    }

    [Theory]
    [InlineData("Use apt [2], then run setup [1].", 3, new[] { 2, 1 })]
    [InlineData("Both [1][3] and again [1, 3] and [2; 3].", 3, new[] { 1, 3, 2 })]
    [InlineData("Out of range [0] [4] [12] but [3] is fine.", 3, new[] { 3 })]
    [InlineData("No citations, [a], [ 1 ] or [1.5].", 3, new int[0])]
    [InlineData("Array x[1] counts too [2].", 2, new[] { 1, 2 })]
    public void CitationsAreParsedInOrderAndOnlyWhenTheSourceExists(string answer, int sourceCount, int[] expected) =>
        Assert.Equal(expected, RagPrompt.ParseCitations(answer, sourceCount));

    [Fact]
    public async Task AnswererRetrievesPromptsAndReturnsOnlyCitedSources()
    {
        string folder = Directory.CreateTempSubdirectory("loom-answer-").FullName;
        try
        {
            using var store = SqliteRetrievalStore.Open(Path.Combine(folder, "index.db"), 256);
            var embedder = new HashingEmbeddingGenerator();
            var ingestor = new Ingestor(store, embedder);
            var documents = new[]
            {
                new SourceDocument("doc:printer", "Printer", "text", "The printer on floor two jams on A3 paper.", new Dictionary<string, string>(), new Dictionary<string, string>()),
                new SourceDocument("doc:vpn", "VPN", "text", "The VPN needs a certificate renewed every year.", new Dictionary<string, string>(), new Dictionary<string, string>()),
                new SourceDocument("doc:lunch", "Lunch", "text", "Lunch is served at noon in the canteen.", new Dictionary<string, string>(), new Dictionary<string, string>()),
            };
            await ingestor.IngestDocumentsAsync(documents, default);
            var chat = new RecordingChatClient("Renew the VPN certificate yearly [1]. See also [7].");
            var answerer = new GroundedAnswerer(new Retriever(store, embedder), chat, new SearchOptions(SearchMode.Hybrid, Top: 2));
            var answer = await answerer.AnswerAsync("How often must the VPN certificate be renewed?", default);
            Assert.Equal("Renew the VPN certificate yearly [1]. See also [7].", answer.Text);
            Assert.Equal(2, answer.AllSources.Count);
            Assert.Equal("doc:vpn", answer.AllSources[0].Hit.SourceId);
            var cited = Assert.Single(answer.CitedSources);
            Assert.Equal((1, "doc:vpn"), (cited.Number, cited.Hit.SourceId));
            Assert.Contains("[1] VPN\nThe VPN needs a certificate renewed every year.", chat.Received[1].Text);
            Assert.Equal(0f, chat.Options[0]!.Temperature);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task RetrievalRewritesTheConversationAroundTheLastUserMessage()
    {
        var inner = new RecordingChatClient("It is [2].");
        string? searched = null;
        using var grounded = new RetrievalChatClient(inner, (query, _) =>
        {
            searched = query;
            return Hits(Hit(1, "/kb/a.md", "", "Alpha."), Hit(2, "/kb/b.md", "Beta > Gamma", "Beta text."));
        });
        var response = await grounded.GetResponseAsync(
        [
            new ChatMessage(ChatRole.System, "Be terse."),
            new ChatMessage(ChatRole.User, "first question"),
            new ChatMessage(ChatRole.Assistant, "first answer"),
            new ChatMessage(ChatRole.User, "which is beta?"),
        ]);
        Assert.Equal("which is beta?", searched);
        // The caller's system message gives way to the citation instruction; earlier turns stay; the question is grounded.
        Assert.Equal([ChatRole.System, ChatRole.User, ChatRole.Assistant, ChatRole.User], inner.Received.Select(m => m.Role));
        Assert.Equal(RagPrompt.SystemInstruction, inner.Received[0].Text);
        Assert.Equal("first question", inner.Received[1].Text);
        Assert.Equal(RagPrompt.UserTurn("which is beta?", RagPrompt.Number([Hit(1, "/kb/a.md", "", "Alpha."), Hit(2, "/kb/b.md", "Beta > Gamma", "Beta text.")])),
            inner.Received[3].Text);
        var sources = response.GetSources()!;
        Assert.Equal([1, 2], sources.Given.Select(s => s.Number));
        Assert.Equal("/kb/b.md", Assert.Single(sources.Cited).Hit.SourceId);
    }

    [Fact]
    public async Task StreamingCarriesTheSourcesOnTheLastUpdate()
    {
        var inner = new RecordingChatClient("Beta [2], and alpha [1].");
        using var grounded = new RetrievalChatClient(inner, (_, _) => Hits(Hit(1, "a", "", "Alpha."), Hit(2, "b", "", "Beta.")));
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in grounded.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "which?")]))
            updates.Add(update);
        Assert.Equal("Beta [2], and alpha [1].", string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates.SkipLast(1), u => Assert.Null(u.GetSources()));
        Assert.Equal(ChatFinishReason.Stop, updates[^1].FinishReason);
        Assert.Equal(["b", "a"], updates[^1].GetSources()!.Cited.Select(s => s.Hit.SourceId));
        // Collected the M.E.AI way, the response keeps them.
        Assert.Equal(2, updates.ToChatResponse().GetSources()!.Cited.Count);
    }

    [Fact]
    public async Task RetrievalNeedsAUserMessage()
    {
        using var grounded = new RetrievalChatClient(new RecordingChatClient(""), (_, _) => Hits());
        var error = await Assert.ThrowsAsync<ChatRequestException>(() => grounded.GetResponseAsync([new ChatMessage(ChatRole.System, "hi")]));
        Assert.Equal("messages", error.Field);
    }

    [Fact]
    public async Task SourcesAreShortenedUntilPromptAndAnswerFitTheContext()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(3, maxSeq: 512);
        await using var model = LoomModel.Create("tiny", transformer, tokenizer);
        string longText = string.Join(" ", Enumerable.Repeat("the quick brown fox jumps over the lazy dog.", 12));
        SearchHit[] hits = [Hit(1, "fox", "", longText), Hit(2, "dog", "", longText), Hit(3, "cat", "", longText)];
        using var grounded = new RetrievalChatClient(model.AsIChatClient(), (_, _) => Task.FromResult<IReadOnlyList<SearchHit>>(hits));
        const int answerTokens = 40;
        var response = await grounded.GetResponseAsync([new ChatMessage(ChatRole.User, "what does the fox do?")],
            new ChatOptions { Temperature = 0, MaxOutputTokens = answerTokens });
        var given = response.GetSources()!.Given;
        Assert.NotEmpty(given);
        foreach (var source in given)
        {
            Assert.True(source.Hit.Text.Length < longText.Length, "a source this long cannot fit whole");
            Assert.StartsWith(source.Hit.Text.TrimEnd('…'), longText);
        }
        // The prompt the model saw, with the answer's room, fits the context.
        var prompt = RagPrompt.Build("what does the fox do?", given);
        int promptTokens = model.Engine.EncodeChat(LoomChatClient.Turns(prompt)).Length;
        Assert.True(promptTokens + answerTokens + 1 <= 512, $"prompt {promptTokens} + answer {answerTokens} exceed the context");
        Assert.Equal(promptTokens, response.Usage!.InputTokenCount - (tokenizer.BosId is null ? 0 : 1));
    }

    [Fact]
    public async Task LimitsCapTheOutputAndNameTheFieldAtFault()
    {
        var inner = new RecordingChatClient("ok");
        using var limited = inner.AsBuilder().UseLimits(new ChatLimits { MaxOutputTokens = 32 }).Build();
        await limited.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(32, inner.Options[0]!.MaxOutputTokens);
        await limited.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { MaxOutputTokens = 5 });
        Assert.Equal(5, inner.Options[1]!.MaxOutputTokens);

        var tooMany = await Assert.ThrowsAsync<ChatRequestException>(() => limited.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { MaxOutputTokens = 33 }));
        Assert.Equal(("ChatOptions.MaxOutputTokens", "ChatOptions.MaxOutputTokens must be between 1 and 32, got 33"), (tooMany.Field, tooMany.Message));
        var hot = Assert.Throws<ChatRequestException>(() => limited.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { TopP = 1.5f }));
        Assert.Equal("ChatOptions.TopP", hot.Field);
        var empty = await Assert.ThrowsAsync<ChatRequestException>(() => limited.GetResponseAsync([]));
        Assert.Equal("messages", empty.Field);
        Assert.Equal(2, inner.Options.Count);
    }

    [Fact]
    public async Task APromptLongerThanTheContextIsRefusedBeforeGenerating()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(3, maxSeq: 32);
        await using var model = LoomModel.Create("tiny", transformer, tokenizer);
        using var chat = model.AsIChatClient();
        var error = await Assert.ThrowsAsync<ChatRequestException>(() => chat.GetResponseAsync([new ChatMessage(ChatRole.User, string.Join(" ", Enumerable.Repeat("hello world", 40)))]));
        Assert.Equal(("messages", ChatRequestException.ContextLengthExceeded), (error.Field, error.Code));
    }

    [Fact]
    public async Task MetricsCountRequestsTokensAndRefusals()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(4);
        await using var model = LoomModel.Create("tiny", transformer, tokenizer);
        var metrics = new ChatMetrics();
        using var chat = LoomPipeline.Build(model.Engine, new LoomPipelineOptions { Metrics = metrics, Limits = new ChatLimits { MaxOutputTokens = 8 } });
        Assert.Same(metrics, chat.GetService<ChatMetrics>());
        var first = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hello")], new ChatOptions { Temperature = 0 });
        var streamed = new List<ChatResponseUpdate>();
        await foreach (var update in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "the fox")], new ChatOptions { Temperature = 0, MaxOutputTokens = 3 }))
            streamed.Add(update);
        var second = streamed.ToChatResponse();
        await Assert.ThrowsAsync<ChatRequestException>(() => chat.GetResponseAsync([new ChatMessage(ChatRole.User, "x")], new ChatOptions { MaxOutputTokens = 9 }));

        var snapshot = metrics.Snapshot();
        Assert.Equal((3L, 1L, 0L), (snapshot.Requests, snapshot.Failures, snapshot.Active));
        Assert.InRange(first.Usage!.OutputTokenCount!.Value, 1, 8); // the cap filled in by the limits layer
        Assert.Equal(first.Usage.InputTokenCount + second.Usage!.InputTokenCount, snapshot.PromptTokens);
        Assert.Equal(first.Usage.OutputTokenCount + second.Usage.OutputTokenCount, snapshot.CompletionTokens);
        Assert.True(snapshot.Seconds > 0);
    }
}
