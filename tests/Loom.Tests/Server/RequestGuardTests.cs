using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Serving;
using Loom.Server;
using Microsoft.AspNetCore.Builder;
using OpenAI;
using OpenAI.Chat;

namespace Loom.Tests.Server;

/// <summary>
/// Cross-site and DNS-rebinding requests (issue 18 item 4): a web page may make a browser send requests to a local server,
/// but it cannot choose the Host header (it names the page's own site) and cannot send application/json without a
/// CORS preflight. So the server answers only the names it is bound to, only JSON bodies, and grants no origin by default.
/// </summary>
public sealed class RequestGuardTests : IAsyncLifetime
{
    LoomModel model = null!;
    WebApplication app = null!;
    Uri address = null!;

    public async Task InitializeAsync()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(5);
        model = LoomModel.Create(ServerFixture.ModelName, transformer, tokenizer, new LoomModelOptions { Slots = 2 });
        app = LoomServer.Build(new ServedModel(model.Engine), new ServerOptions { Port = 0, MaxTokensLimit = 8 });
        await app.StartAsync();
        address = LoomServer.Addresses(app)[0];
    }

    public async Task DisposeAsync()
    {
        await app.DisposeAsync();
        await model.DisposeAsync();
    }

    static string ChatBody => new JsonObject
    {
        ["model"] = ServerFixture.ModelName, ["max_tokens"] = 2, ["temperature"] = 0,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hello" }),
    }.ToJsonString();

    async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> Send(HttpMethod method, string path, string? host = null,
        string? body = null, string? contentType = "application/json", (string Name, string Value)[]? headers = null)
    {
        using var http = new HttpClient { BaseAddress = address };
        var request = new HttpRequestMessage(method, path);
        if (host is not null) request.Headers.Host = host;
        if (body is not null)
        {
            request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            if (contentType is not null) request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        foreach (var (name, value) in headers ?? []) request.Headers.TryAddWithoutValidation(name, value);
        var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 && text.TrimStart().StartsWith('{') ? JsonNode.Parse(text) : null, response);
    }

    static void AssertOpenAiError(JsonNode? body, string code)
    {
        Assert.NotNull(body);
        Assert.Equal("invalid_request_error", (string?)body["error"]!["type"]);
        Assert.Equal(code, (string?)body["error"]!["code"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)body["error"]!["message"]));
    }

    [Fact]
    public async Task AForeignHostHeaderIsRefusedAndTheLoopbackNamesAreServed()
    {
        int port = address.Port;
        foreach (string foreign in new[] { $"attacker.example:{port}", "attacker.example", $"127.0.0.1.nip.io:{port}", $"localhost:{port + 1}", $"192.168.1.10:{port}" })
        {
            var (status, body, _) = await Send(HttpMethod.Get, "/v1/models", host: foreign);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
            AssertOpenAiError(body, "invalid_host");
            // Every route is guarded, the anonymous ones included: a rebinding page could read /metrics too.
            (status, _, _) = await Send(HttpMethod.Get, "/metrics", host: foreign);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
            (status, body, _) = await Send(HttpMethod.Post, "/v1/chat/completions", host: foreign, body: ChatBody);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
        }
        foreach (string own in new[] { $"127.0.0.1:{port}", $"localhost:{port}", $"LOCALHOST:{port}", $"[::1]:{port}" })
        {
            var (status, body, _) = await Send(HttpMethod.Get, "/v1/models", host: own);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(ServerFixture.ModelName, (string?)body!["data"]![0]!["id"]);
        }
    }

    [Fact]
    public async Task APostBodyMustBeDeclaredJson()
    {
        foreach (string? type in new[] { "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", null })
        {
            var (status, body, _) = await Send(HttpMethod.Post, "/v1/chat/completions", body: ChatBody, contentType: type);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
            AssertOpenAiError(body, "unsupported_media_type");
        }
        foreach (string type in new[] { "application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8" })
        {
            var (status, body, _) = await Send(HttpMethod.Post, "/v1/chat/completions", body: ChatBody, contentType: type);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("chat.completion", (string?)body!["object"]);
        }
        // The official client sends what the guard asks for.
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") });
        var completion = (await client.GetChatClient(ServerFixture.ModelName).CompleteChatAsync([new UserChatMessage("hello")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 })).Value;
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 2);
    }

    [Fact]
    public async Task NoOriginIsGrantedByDefault()
    {
        var preflight = new[] { ("Origin", "https://attacker.example"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type") };
        var (status, _, response) = await Send(HttpMethod.Options, "/v1/chat/completions", headers: preflight);
        Assert.True((int)status < 500, $"preflight answered {status}");
        Assert.DoesNotContain(response.Headers, h => h.Key.StartsWith("Access-Control-Allow-", StringComparison.OrdinalIgnoreCase));
        (status, _, response) = await Send(HttpMethod.Post, "/v1/chat/completions", body: ChatBody, headers: [("Origin", "https://attacker.example")]);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.DoesNotContain(response.Headers, h => h.Key.StartsWith("Access-Control-Allow-", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>A checkpoint folder for the `loom serve` child processes.</summary>
    static string Checkpoint()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(9);
        string folder = Directory.CreateTempSubdirectory("loom-guard-").FullName;
        Loom.Models.Checkpoint.Save(folder, transformer, tokenizer.Save);
        return folder;
    }

    [Fact]
    public async Task ServeRefusesANonLoopbackAddressWithoutAKey()
    {
        string folder = Checkpoint();
        try
        {
            var (code, output, error) = await LoomProcess.RunAsync(TimeSpan.FromMinutes(1), "serve", "--model", folder, "--host", "0.0.0.0", "--port", "0", "--threads", "1");
            Assert.True(code == 2, $"exit code {code}; stderr: {error}; stdout: {output}");
            string message = error.Trim();
            Assert.DoesNotContain('\n', message);
            Assert.Contains("0.0.0.0", message);
            Assert.Contains("--api-key", message);
            Assert.Contains("--allow-unauthenticated", message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task ServeAnswersItsAllowedHostsAndItsOneCorsOrigin()
    {
        string folder = Checkpoint();
        try
        {
            using var serve = await ServeProcess.StartAsync("--model", folder, "--host", "0.0.0.0", "--port", "0", "--threads", "1", "--allow-unauthenticated",
                "--allowed-host", "loom.test", "--allowed-host", "models.test:1234", "--cors-origin", "https://app.test");
            int port = serve.Address.Port;
            address = new Uri($"http://127.0.0.1:{port}/");
            Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Get, "/health", host: $"loom.test:{port}")).Status);
            Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Get, "/health", host: "models.test:1234")).Status);
            Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Get, "/health", host: $"127.0.0.1:{port}")).Status);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, (await Send(HttpMethod.Get, "/health", host: "models.test:80")).Status);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, (await Send(HttpMethod.Get, "/health", host: $"rebound.example:{port}")).Status);

            var preflight = new[] { ("Origin", "https://app.test"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization, content-type") };
            var (status, _, response) = await Send(HttpMethod.Options, "/v1/chat/completions", headers: preflight);
            Assert.Equal(HttpStatusCode.NoContent, status);
            Assert.Equal("https://app.test", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Contains("POST", response.Headers.GetValues("Access-Control-Allow-Methods").Single());
            Assert.Contains("content-type", response.Headers.GetValues("Access-Control-Allow-Headers").Single(), StringComparison.OrdinalIgnoreCase);
            (_, _, response) = await Send(HttpMethod.Options, "/v1/chat/completions", headers: [("Origin", "https://other.test"), ("Access-Control-Request-Method", "POST")]);
            Assert.DoesNotContain(response.Headers, h => h.Key.StartsWith("Access-Control-Allow-", StringComparison.OrdinalIgnoreCase));
            (_, _, response) = await Send(HttpMethod.Get, "/v1/models", headers: [("Origin", "https://app.test")]);
            Assert.Equal("https://app.test", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
