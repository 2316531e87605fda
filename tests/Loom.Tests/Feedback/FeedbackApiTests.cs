using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Server;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tests.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Feedback;

/// <summary>Chat completions over plain HTTP, as any client sends them: one JSON body, or the chunks of a stream.</summary>
internal static class ChatHttp
{
    public static HttpClient Client(Uri address, string? key)
    {
        var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(120) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public static JsonObject Greedy(string model, string user, int maxTokens, bool stream = false, int n = 1) => new()
    {
        ["model"] = model,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }),
        ["temperature"] = 0,
        ["max_tokens"] = maxTokens,
        ["stream"] = stream,
        ["n"] = n,
    };

    public static async Task<(HttpStatusCode Status, JsonObject Body, HttpResponseMessage Response)> PostAsync(HttpClient client, string path, JsonNode body)
    {
        var response = await client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject(), response);
    }

    /// <summary>A streamed chat completion: every chunk before [DONE], and the response's headers.</summary>
    public static async Task<(List<JsonObject> Chunks, HttpResponseMessage Response)> StreamAsync(HttpClient client, JsonObject body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var chunks = new List<JsonObject>();
        bool done = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line == "data: [DONE]") { done = true; break; }
            chunks.Add(JsonNode.Parse(line["data: ".Length..])!.AsObject());
        }
        Assert.True(done, "the stream ended without [DONE]");
        return (chunks, response);
    }

    /// <summary>Choice 0's text and finish reason, from a body or from the chunks of a stream.</summary>
    public static (string Text, string? Finish) Answer(JsonObject body) =>
        ((string)body["choices"]![0]!["message"]!["content"]!, (string?)body["choices"]![0]!["finish_reason"]);

    public static (string Text, string? Finish) Answer(IEnumerable<JsonObject> chunks)
    {
        var text = new StringBuilder();
        string? finish = null;
        foreach (var chunk in chunks)
            foreach (var choice in chunk["choices"]!.AsArray().Where(c => (int)c!["index"]! == 0))
            {
                text.Append((string?)choice!["delta"]?["content"]);
                finish ??= (string?)choice["finish_reason"];
            }
        return (text.ToString(), finish);
    }
}

/// <summary>A server over the tiny test model that records its chat completions into a SQLite feedback store.</summary>
public sealed class FeedbackServerFixture : IAsyncLifetime
{
    public const string ApiKey = "feedback-key";

    readonly string folder = Directory.CreateTempSubdirectory("loom-feedback-api-").FullName;
    WebApplication? app;

    public LoomModel Model { get; private set; } = null!;
    public IFeedbackStore Store { get; private set; } = null!;
    public TrafficFeedback Feedback { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(5);
        Model = LoomModel.Create(LoopbackServerFixture.ModelName, transformer, tokenizer, new LoomModelOptions { Slots = 4 });
        Store = await FeedbackStores.OpenAsync(Path.Combine(folder, "feedback.db"), default);
        Feedback = new TrafficFeedback(Store);
        app = LoomServer.Build(new ServedModel(Model.Engine) { Feedback = Feedback },
            new ServerOptions { Port = 0, ApiKeys = [ApiKey], MaxTokensLimit = 32 });
        await app.StartAsync();
        BaseAddress = LoomServer.Addresses(app)[0];
    }

    public async Task DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
        await Model.DisposeAsync();
        Store.Dispose();
        Directory.Delete(folder, recursive: true);
    }
}

/// <summary>Feedback through the API: the traffic a server records, POST /v1/feedback, and the capture layer in a plain IChatClient pipeline.</summary>
public class FeedbackApiTests(FeedbackServerFixture server) : IClassFixture<FeedbackServerFixture>
{
    const string Model = LoopbackServerFixture.ModelName;

    HttpClient Client(string? key = FeedbackServerFixture.ApiKey) => ChatHttp.Client(server.BaseAddress, key);

    static string KeyUser(string key) => "key:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..8];

    async Task<(string Id, string Text)> Chat(HttpClient client, string user)
    {
        var (status, body, response) = await ChatHttp.PostAsync(client, "/v1/chat/completions", ChatHttp.Greedy(Model, user, 6));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(Model, (string?)body["system_fingerprint"]);
        Assert.Equal(Model, response.Headers.GetValues(LoomServer.VersionHeader).Single());
        return ((string)body["id"]!, ChatHttp.Answer(body).Text);
    }

    /// <summary>Every judgement on a response: thumbs on its item, ratings and corrections on their copies of it.</summary>
    async Task<IReadOnlyList<Judgement>> JudgementsOn(string responseId)
    {
        var all = new List<Judgement>();
        foreach (var kind in new[] { JudgementKind.Thumbs, JudgementKind.Rating, JudgementKind.Correction })
            all.AddRange(await server.Store.ListJudgementsAsync(new JudgementQuery { ItemId = TrafficFeedback.CopyId(responseId, kind) }, default));
        return all;
    }

    [Fact]
    public async Task ThumbsRatingAndCorrectionAreStoredWithThePromptTheShownTextAndTheVersion()
    {
        using var client = Client();
        var (id, text) = await Chat(client, "hello there, fox");
        var item = await server.Store.GetItemAsync(id, default);
        Assert.NotNull(item);
        Assert.Equal("traffic", item.TaskId);
        Assert.Equal(TrafficFeedback.Source, item.Source);
        Assert.Equal([new FeedbackMessage("user", "hello there, fox")], item.Prompt);
        Assert.Equal([new FeedbackResponse(text, Model)], item.Responses);
        var task = await server.Store.GetTaskAsync("traffic", default);
        Assert.Equal(JudgementKind.Thumbs, task!.Kind);
        Assert.Equal(1, task.Overlap);

        var thumbs = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = id, ["thumbs"] = "down", ["comment"] = "off topic" });
        Assert.Equal(HttpStatusCode.OK, thumbs.Status);
        Assert.Equal("feedback", (string?)thumbs.Body["object"]);
        var rating = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = id, ["rating"] = 2, ["user"] = "alice" });
        var correction = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = id, ["correction"] = "Hello! How can I help?", ["user"] = "bob" });
        Assert.Equal(HttpStatusCode.OK, rating.Status);
        Assert.Equal(HttpStatusCode.OK, correction.Status);

        var judgements = (await JudgementsOn(id)).ToDictionary(j => j.Id);
        Assert.Equal(3, judgements.Count);
        var byThumbs = judgements[(long)thumbs.Body["id"]!];
        Assert.Equal(JudgementKind.Thumbs, byThumbs.Kind);
        Assert.False(byThumbs.ThumbsUp);
        Assert.Equal("off topic", byThumbs.Comment);
        Assert.Equal(KeyUser(FeedbackServerFixture.ApiKey), byThumbs.Annotator);
        var byRating = judgements[(long)rating.Body["id"]!];
        Assert.Equal(JudgementKind.Rating, byRating.Kind);
        Assert.Equal(2, byRating.Rating);
        Assert.Equal("alice", byRating.Annotator);
        Assert.Equal((id + "#rating", "traffic-rating"), (byRating.ItemId, byRating.TaskId));
        var byCorrection = judgements[(long)correction.Body["id"]!];
        Assert.Equal(JudgementKind.Correction, byCorrection.Kind);
        Assert.Equal("Hello! How can I help?", byCorrection.Correction);
        Assert.Equal("bob", byCorrection.Annotator);
        Assert.Equal((id + "#correction", "traffic-correction"), (byCorrection.ItemId, byCorrection.TaskId));
        Assert.Equal((id, "traffic"), (byThumbs.ItemId, byThumbs.TaskId));
        foreach (var judgement in judgements.Values)
        {
            Assert.Equal(item.Prompt, judgement.Prompt);
            Assert.Equal([new FeedbackResponse(text, Model)], judgement.Shown);
        }
    }

    [Fact]
    public async Task UnknownIdsBadFieldsAndSecondVotesAreRefusedNamingTheField()
    {
        using var client = Client();
        var (id, _) = await Chat(client, "how are you today?");
        async Task Refused(HttpStatusCode status, string? param, JsonObject body)
        {
            var answer = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, body);
            Assert.Equal(status, answer.Status);
            Assert.Equal(param, (string?)answer.Body["error"]!["param"]);
            Assert.DoesNotContain('\n', (string)answer.Body["error"]!["message"]!);
        }
        await Refused(HttpStatusCode.NotFound, "response_id", new JsonObject { ["response_id"] = "chatcmpl-nosuchresponse", ["thumbs"] = "up" });
        await Refused(HttpStatusCode.BadRequest, "response_id", new JsonObject { ["thumbs"] = "up" });
        await Refused(HttpStatusCode.BadRequest, "thumbs", new JsonObject { ["response_id"] = id, ["thumbs"] = "sideways" });
        await Refused(HttpStatusCode.BadRequest, "rating", new JsonObject { ["response_id"] = id, ["rating"] = 6 });
        await Refused(HttpStatusCode.BadRequest, "rating", new JsonObject { ["response_id"] = id, ["rating"] = 2.5 });
        await Refused(HttpStatusCode.BadRequest, "correction", new JsonObject { ["response_id"] = id, ["correction"] = "  " });
        await Refused(HttpStatusCode.BadRequest, "rating", new JsonObject { ["response_id"] = id, ["thumbs"] = "up", ["rating"] = 4 });
        await Refused(HttpStatusCode.BadRequest, "thumbs", new JsonObject { ["response_id"] = id, ["comment"] = "no verdict" });
        await Refused(HttpStatusCode.BadRequest, "stars", new JsonObject { ["response_id"] = id, ["stars"] = 5 });
        await Refused(HttpStatusCode.BadRequest, "user", new JsonObject { ["response_id"] = id, ["thumbs"] = "up", ["user"] = "" });
        Assert.Empty(await JudgementsOn(id));

        var first = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = id, ["thumbs"] = "up", ["user"] = "carol" });
        Assert.Equal(HttpStatusCode.OK, first.Status);
        await Refused(HttpStatusCode.Conflict, "user", new JsonObject { ["response_id"] = id, ["rating"] = 5, ["user"] = "carol" });
        Assert.Single(await JudgementsOn(id));

        using var anonymous = Client(key: null);
        var refused = await ChatHttp.PostAsync(anonymous, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = id, ["thumbs"] = "up" });
        Assert.Equal(HttpStatusCode.Unauthorized, refused.Status);
    }

    [Fact]
    public async Task EveryChoiceAndEveryStreamIsRecordedUnderTheIdTheClientSees()
    {
        using var client = Client();
        var (status, body, _) = await ChatHttp.PostAsync(client, "/v1/chat/completions", ChatHttp.Greedy(Model, "the lazy dog", 5, n: 2));
        Assert.Equal(HttpStatusCode.OK, status);
        string id = (string)body["id"]!;
        for (int choice = 0; choice < 2; choice++)
        {
            var item = await server.Store.GetItemAsync(LoomServer.ChoiceId(id, choice), default);
            Assert.Equal((string?)body["choices"]![choice]!["message"]!["content"], item?.Responses.Single().Text);
        }
        Assert.Equal(id + "-1", LoomServer.ChoiceId(id, 1));

        var (chunks, response) = await ChatHttp.StreamAsync(client, ChatHttp.Greedy(Model, "quick brown fox", 6, stream: true));
        Assert.Single(chunks.Select(c => (string)c["id"]!).Distinct());
        Assert.All(chunks, c => Assert.Equal(Model, (string?)c["system_fingerprint"]));
        Assert.Equal(Model, response.Headers.GetValues(LoomServer.VersionHeader).Single());
        var (text, finish) = ChatHttp.Answer(chunks);
        Assert.NotNull(finish);
        var streamed = await server.Store.GetItemAsync((string)chunks[0]["id"]!, default);
        Assert.Equal(text, streamed?.Responses.Single().Text);
    }

    [Fact]
    public async Task AServerWithoutAStoreSaysItKeepsNoFeedback()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(5);
        await using var model = LoomModel.Create(Model, transformer, tokenizer);
        await using var app = LoomServer.Build(new ServedModel(model.Engine), new ServerOptions { Port = 0 });
        await app.StartAsync();
        using var client = ChatHttp.Client(LoomServer.Addresses(app)[0], null);
        var answer = await ChatHttp.PostAsync(client, FeedbackEndpoint.Path, new JsonObject { ["response_id"] = "chatcmpl-x", ["thumbs"] = "up" });
        Assert.Equal(HttpStatusCode.NotFound, answer.Status);
        Assert.Equal("this server keeps no feedback (start it with --feedback)", (string?)answer.Body["error"]!["message"]);
    }

    [Fact]
    public async Task ThePipelineRecordsWithoutAServerAndTakesFeedbackForTheIdItGave()
    {
        string folder = Directory.CreateTempSubdirectory("loom-capture-").FullName;
        try
        {
            using var store = await FeedbackStores.OpenAsync(Path.Combine(folder, "feedback.db"), default);
            var feedback = new TrafficFeedback(store, new TrafficFeedbackOptions { TaskId = "app-traffic" });
            using var chat = LoomPipeline.Build(server.Model.Engine, new LoomPipelineOptions { Feedback = feedback, ModelVersion = "v7", Limits = new ChatLimits() });
            var greedy = new ChatOptions { Temperature = 0, MaxOutputTokens = 6 };
            var messages = new List<ChatMessage> { new(ChatRole.System, "be brief"), new(ChatRole.User, "hello world") };
            var response = await chat.GetResponseAsync(messages, greedy);
            // The same answer the model gives without the layer, under an id the layer recorded.
            using var plain = server.Model.AsIChatClient();
            Assert.Equal((await plain.GetResponseAsync(messages, greedy)).Text, response.Text);
            var item = await store.GetItemAsync(response.ResponseId!, default);
            Assert.Equal("app-traffic", item?.TaskId);
            Assert.Equal([new FeedbackMessage("system", "be brief"), new FeedbackMessage("user", "hello world")], item!.Prompt);
            Assert.Equal([new FeedbackResponse(response.Text, "v7")], item.Responses);

            var updates = new List<ChatResponseUpdate>();
            await foreach (var update in chat.GetStreamingResponseAsync(messages, greedy)) updates.Add(update);
            string streamedId = Assert.Single(updates.Select(u => u.ResponseId).Distinct())!;
            Assert.NotEqual(response.ResponseId, streamedId);
            Assert.Equal(response.Text, (await store.GetItemAsync(streamedId, default))?.Responses.Single().Text);

            var capture = chat.GetService<FeedbackCaptureChatClient>()!;
            long judgementId = await capture.SubmitAsync(response.ResponseId!, new FeedbackSubmission { Annotator = "app-user", Rating = 4 });
            var judgement = Assert.Single(await store.ListJudgementsAsync(new JudgementQuery { TaskId = feedback.RatingTaskId }, default));
            Assert.Equal(judgementId, judgement.Id);
            Assert.Equal(JudgementKind.Rating, judgement.Kind);
            Assert.Equal(4, judgement.Rating);
            Assert.Equal("v7", judgement.Shown.Single().ModelVersion);
            await Assert.ThrowsAsync<DuplicateJudgementException>(() => capture.SubmitAsync(response.ResponseId!, new FeedbackSubmission { Annotator = "app-user", ThumbsUp = true }));
            await Assert.ThrowsAsync<UnknownResponseException>(() => capture.SubmitAsync("no-such-id", new FeedbackSubmission { Annotator = "app-user", ThumbsUp = true }));
            var bad = await Assert.ThrowsAsync<ArgumentException>(() => capture.SubmitAsync(streamedId, new FeedbackSubmission { Annotator = "app-user", Rating = 9 }));
            Assert.Contains("FeedbackSubmission.Rating", bad.Message);
            Assert.Equal(2, feedback.Recorded);
            Assert.Equal(0, feedback.RecordFailures);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public async Task AFailingStoreDoesNotFailTheRequestAndIsCounted()
    {
        string folder = Directory.CreateTempSubdirectory("loom-capture-").FullName;
        try
        {
            var store = await FeedbackStores.OpenAsync(Path.Combine(folder, "feedback.db"), default);
            var feedback = new TrafficFeedback(store);
            using var chat = LoomPipeline.Build(server.Model.Engine, new LoomPipelineOptions { Feedback = feedback });
            store.Dispose();
            var greedy = new ChatOptions { Temperature = 0, MaxOutputTokens = 4 };
            var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hello")], greedy);
            Assert.NotEmpty(response.Text);
            int updates = 0;
            await foreach (var _ in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hello")], greedy)) updates++;
            Assert.True(updates > 0);
            Assert.Equal(0, feedback.Recorded);
            Assert.Equal(2, feedback.RecordFailures);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }
}
