using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Serving;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using ChatMessage = OpenAI.Chat.ChatMessage;

namespace Loom.Tests.Server;

/// <summary>The server, black-box: started on a loopback port and spoken to with the official OpenAI .NET client.</summary>
public class ServerTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    OpenAIClient Client(string key = ServerFixture.ApiKey) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "/v1") });

    /// <summary>What the model says to one user message, greedy, asked in-process (the reference the server must match).</summary>
    async Task<string> Direct(string userMessage, int maxTokens)
    {
        using var chat = new LoomChatClient(server.Model.Engine);
        var response = await chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, userMessage)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = maxTokens });
        return response.Text;
    }

    static ChatCompletionOptions Greedy(int maxTokens) => new() { Temperature = 0, MaxOutputTokenCount = maxTokens };

    [Fact]
    public async Task ListsTheModel()
    {
        var models = await Client().GetOpenAIModelClient().GetModelsAsync();
        Assert.Contains(models.Value, m => m.Id == ServerFixture.ModelName);
    }

    [Fact]
    public async Task ChatAnswersAsTheModelDoesInProcess()
    {
        var chat = Client().GetChatClient(ServerFixture.ModelName);
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("hello there")], Greedy(12))).Value;
        Assert.Equal(await Direct("hello there", 12), completion.Content[0].Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 12);
        Assert.True(completion.Usage.InputTokenCount > 3);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task StreamingChatSendsTheSameTextInPieces()
    {
        var chat = Client().GetChatClient(ServerFixture.ModelName);
        var text = new StringBuilder();
        int pieces = 0;
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("tell me about the fox")], Greedy(16)))
        {
            foreach (var part in update.ContentUpdate) { text.Append(part.Text); pieces++; }
            finish ??= update.FinishReason;
        }
        Assert.Equal(await Direct("tell me about the fox", 16), text.ToString());
        Assert.True(pieces > 1, "streaming should arrive in several pieces");
        Assert.NotNull(finish);
    }

    [Fact]
    public async Task CompletionsContinueARawPrompt()
    {
        using var http = Http();
        var body = new JsonObject { ["model"] = ServerFixture.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = 6, ["temperature"] = 0 };
        using var response = await http.PostAsync("/v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var expected = new StringBuilder();
        await foreach (var update in server.Model.Engine.GenerateAsync(new GenerationRequest { Prompt = "the lazy dog", MaxTokens = 6, Sampling = Loom.Models.SamplingOptions.Greedy }))
            expected.Append(update.Text);
        Assert.Equal("text_completion", (string)json["object"]!);
        Assert.Equal(expected.ToString(), (string)json["choices"]![0]!["text"]!);
        Assert.Equal("length", (string)json["choices"]![0]!["finish_reason"]!);
        Assert.Equal(6, (int)json["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task EmbeddingsMatchTheEmbedderInProcess()
    {
        var embedding = (await Client().GetEmbeddingClient("all-MiniLM-L6-v2").GenerateEmbeddingAsync("How do I trim a string?")).Value.ToFloats().ToArray();
        var direct = (await server.Embedder.GenerateAsync(["How do I trim a string?"]))[0].Vector.ToArray();
        Assert.Equal(384, embedding.Length);
        for (int i = 0; i < direct.Length; i++) Assert.Equal(direct[i], embedding[i], 5);
    }

    [Fact]
    public async Task SixteenConcurrentStreamsEachGetTheirOwnAnswer()
    {
        var prompts = Enumerable.Range(0, 16).Select(i => $"question number {i}: how is the {(i % 2 == 0 ? "fox" : "dog")} today?").ToArray();
        var expected = new List<string>();
        foreach (var prompt in prompts) expected.Add(await Direct(prompt, 20));
        Assert.True(expected.Distinct().Count() > 4, "the prompts should lead to different answers");

        var chat = Client().GetChatClient(ServerFixture.ModelName);
        var answers = await Task.WhenAll(prompts.Select(async prompt =>
        {
            var text = new StringBuilder();
            await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], Greedy(20)))
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
            return text.ToString();
        }));
        Assert.Equal(expected, answers);
    }

    [Fact]
    public async Task MissingOrWrongKeysAreRefusedWith401()
    {
        using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };
        using var noKey = await anonymous.GetAsync("/v1/models");
        await AssertError(noKey, HttpStatusCode.Unauthorized, "authentication_error");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client("wrong-key").GetOpenAIModelClient().GetModelsAsync());
        Assert.Equal(401, error.Status);
        await AssertStillServing();
    }

    [Fact]
    public async Task OversizedBodiesAreRefusedWith413()
    {
        using var http = Http();
        var body = new JsonObject { ["model"] = ServerFixture.ModelName, ["prompt"] = new string('x', (int)ServerFixture.MaxRequestBytes + 10) };
        using var response = await http.PostAsync("/v1/completions", Json(body));
        await AssertError(response, HttpStatusCode.RequestEntityTooLarge, "invalid_request_error");
        await AssertStillServing();
    }

    [Fact]
    public async Task MalformedJsonAndUnknownModelsGetOpenAiErrors()
    {
        using var http = Http();
        using (var malformed = await http.PostAsync("/v1/chat/completions", new StringContent("{\"model\": ", Encoding.UTF8, "application/json")))
            await AssertError(malformed, HttpStatusCode.BadRequest, "invalid_request_error");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client().GetChatClient("no-such-model").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, error.Status);
        using (var tooMany = await http.PostAsync("/v1/chat/completions", Json(new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["max_tokens"] = 100000,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
        })))
        {
            var json = await AssertError(tooMany, HttpStatusCode.BadRequest, "invalid_request_error");
            Assert.Equal("max_tokens", (string?)json["error"]!["param"]);
        }
        await AssertStillServing();
    }

    [Fact]
    public async Task APromptLongerThanTheContextIsRefusedBeforeTheStreamStarts()
    {
        using var http = Http();
        using var response = await http.PostAsync("/v1/chat/completions", Json(new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["stream"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = string.Join(" ", Enumerable.Repeat("hello world", 100)) }),
        }));
        var json = await AssertError(response, HttpStatusCode.BadRequest, "invalid_request_error");
        Assert.Equal(("messages", "context_length_exceeded"), ((string?)json["error"]!["param"], (string?)json["error"]!["code"]));
        await AssertStillServing();
    }

    [Fact]
    public async Task HealthAndMetricsAreOpen()
    {
        using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);
        var completion = (await Client().GetChatClient(ServerFixture.ModelName).CompleteChatAsync([new UserChatMessage("count me")], Greedy(3))).Value;
        string metrics = await anonymous.GetStringAsync("/metrics");
        Assert.Contains("# TYPE loom_requests_total counter", metrics);
        // Counters only grow and other tests run alongside: at least this call's tokens are in them.
        Assert.True(Counter(metrics, "loom_completion_tokens_total") >= completion.Usage.OutputTokenCount);
        Assert.True(Counter(metrics, "loom_prompt_tokens_total") >= completion.Usage.InputTokenCount);
        Assert.True(Counter(metrics, "loom_generations_total") >= 1);
    }

    [Fact]
    public async Task BrokenTextAndOutOfRangeSamplingGetOpenAiErrors()
    {
        using var http = Http();
        byte[] invalidUtf8 = [.. Encoding.UTF8.GetBytes("{\"model\":\"" + ServerFixture.ModelName + "\",\"messages\":[{\"role\":\"user\",\"content\":\"a"), 0xFF, 0xFE,
            .. Encoding.UTF8.GetBytes("\"}]}")];
        using (var content = new ByteArrayContent(invalidUtf8))
        {
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await http.PostAsync("/v1/chat/completions", content);
            await AssertError(response, HttpStatusCode.BadRequest, "invalid_request_error");
        }
        string loneSurrogate = "{\"model\":\"" + ServerFixture.ModelName + "\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\ud800b\"}]}";
        using (var response = await http.PostAsync("/v1/chat/completions", new StringContent(loneSurrogate, Encoding.UTF8, "application/json")))
            await AssertError(response, HttpStatusCode.BadRequest, "invalid_request_error");
        foreach (var (field, value) in new[] { ("temperature", 2.5), ("temperature", -1.0), ("top_p", 1e39), ("frequency_penalty", 1e39), ("presence_penalty", -1e39) })
        {
            using var response = await http.PostAsync("/v1/chat/completions", Json(new JsonObject
            {
                ["model"] = ServerFixture.ModelName, [field] = value, ["max_tokens"] = 2,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
            }));
            var json = await AssertError(response, HttpStatusCode.BadRequest, "invalid_request_error");
            Assert.Equal(field, (string?)json["error"]!["param"]);
        }
        // A tiny positive temperature is as good as greedy: the same answer as temperature 0, never an empty one.
        var client = Client().GetChatClient(ServerFixture.ModelName);
        var greedy = (await client.CompleteChatAsync([new UserChatMessage("count me")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4 })).Value;
        var tiny = (await client.CompleteChatAsync([new UserChatMessage("count me")], new ChatCompletionOptions { Temperature = 1e-45f, MaxOutputTokenCount = 4 })).Value;
        Assert.NotEmpty(tiny.Content[0].Text);
        Assert.Equal(greedy.Content[0].Text, tiny.Content[0].Text);
        await AssertStillServing();
    }

    [Fact]
    public async Task MetricsLabelRequestsByRouteNotByRawPath()
    {
        using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };
        string marker = Guid.NewGuid().ToString("N");
        for (int i = 0; i < 50; i++)
            Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync($"/{marker}/{i}?q=\"quote")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);
        string metrics = await anonymous.GetStringAsync("/metrics");
        Assert.DoesNotContain(marker, metrics);
        var rows = metrics.Split('\n').Where(line => line.StartsWith("loom_requests_total{", StringComparison.Ordinal)).ToList();
        Assert.Contains(rows, row => row.StartsWith("loom_requests_total{path=\"unmatched\",status=\"404\"}", StringComparison.Ordinal));
        Assert.Contains(rows, row => row.StartsWith("loom_requests_total{path=\"/health\",status=\"200\"}", StringComparison.Ordinal));
        // One row per route and status, however many distinct URLs were asked for.
        Assert.True(rows.Count < 20, string.Join('\n', rows));
    }

    static double Counter(string metrics, string name) =>
        double.Parse(metrics.Split('\n').Single(line => line.StartsWith(name + " ", StringComparison.Ordinal))[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    HttpClient Http()
    {
        var http = new HttpClient { BaseAddress = server.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.ApiKey);
        return http;
    }

    static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    static async Task<JsonNode> AssertError(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        Assert.Equal(status, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(type, (string?)json["error"]!["type"]);
        Assert.False(string.IsNullOrEmpty((string?)json["error"]!["message"]));
        return json;
    }

    async Task AssertStillServing()
    {
        var completion = (await Client().GetChatClient(ServerFixture.ModelName).CompleteChatAsync([new UserChatMessage("still there?")], Greedy(4))).Value;
        Assert.Equal(await Direct("still there?", 4), completion.Content[0].Text);
    }
}
