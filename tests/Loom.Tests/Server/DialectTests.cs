using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Text;

namespace Loom.Tests.Server;

/// <summary>The OpenAI request fields beyond plain chat: logprobs, logit_bias, tools without constraint, ranges, embeddings options, special tokens.</summary>
public class DialectTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    ITokenizer Tokenizer => server.Model.Tokenizer;

    [Fact]
    public async Task ChatLogprobsListEveryTokenWithSortedAlternativesAndGreedyPicksTheBest()
    {
        var json = await Post("/v1/chat/completions", Chat("hello there", 8, new JsonObject { ["logprobs"] = true, ["top_logprobs"] = 3 }));
        var choice = json["choices"]![0]!;
        var content = choice["logprobs"]!["content"]!.AsArray();
        Assert.Equal((int)json["usage"]!["completion_tokens"]!, content.Count);
        // a character split over byte-level tokens has part of its bytes in each: the bytes joined are the text
        var bytes = content.SelectMany(t => t!["bytes"]!.AsArray().Select(b => (byte)(int)b!)).ToArray();
        Assert.Equal((string)choice["message"]!["content"]!, Encoding.UTF8.GetString(bytes));
        foreach (var token in content)
        {
            var top = token!["top_logprobs"]!.AsArray();
            Assert.Equal(3, top.Count);
            var values = top.Select(t => (float)t!["logprob"]!).ToList();
            Assert.Equal(values.OrderDescending(), values);
            Assert.True(values[0] <= 0);
            // greedy: the chosen token is the most likely one
            Assert.Equal((string)top[0]!["token"]!, (string)token["token"]!);
            Assert.Equal((float)top[0]!["logprob"]!, (float)token["logprob"]!);
        }
    }

    [Fact]
    public async Task CompletionLogprobsUseTheLegacyShape()
    {
        var body = new JsonObject { ["model"] = ServerFixture.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = 6, ["temperature"] = 0, ["logprobs"] = 2 };
        var choice = (await Post("/v1/completions", body))["choices"]![0]!;
        var logprobs = choice["logprobs"]!;
        var tokens = logprobs["tokens"]!.AsArray().Select(t => (string)t!).ToList();
        Assert.Equal(6, tokens.Count);
        var offsets = logprobs["text_offset"]!.AsArray().Select(o => (int)o!).ToList();
        for (int i = 1; i < offsets.Count; i++) Assert.Equal(offsets[i - 1] + tokens[i - 1].Length, offsets[i]);
        var chosen = logprobs["token_logprobs"]!.AsArray().Select(p => (float)p!).ToList();
        var top = logprobs["top_logprobs"]!.AsArray().Select(t => t!.AsObject().Select(a => (float)a.Value!).ToList()).ToList();
        for (int i = 0; i < tokens.Count; i++)
        {
            // two alternatives may share a spelling (parts of a character); greedy took the most likely one
            Assert.InRange(top[i].Count, 1, 2);
            Assert.Equal(top[i].Max(), chosen[i]);
            Assert.InRange(chosen[i], -50f, 0f);
        }
    }

    [Fact]
    public async Task StreamedChatCarriesLogprobsForEveryToken()
    {
        var body = Chat("tell me about the fox", 10, new JsonObject { ["logprobs"] = true, ["stream"] = true });
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (var chunk in await Stream(body))
        {
            var choice = chunk["choices"]![0]!;
            text.Append((string?)choice["delta"]?["content"]);
            foreach (var token in choice["logprobs"]?["content"]?.AsArray() ?? []) bytes.AddRange(token!["bytes"]!.AsArray().Select(b => (byte)(int)b!));
        }
        body["stream"] = false;
        var whole = (await Post("/v1/chat/completions", body))["choices"]![0]!["logprobs"]!["content"]!.AsArray();
        Assert.Equal(whole.SelectMany(t => t!["bytes"]!.AsArray().Select(b => (byte)(int)b!)), bytes);
        Assert.NotEqual("", text.ToString());
    }

    [Fact]
    public async Task LogitBiasForcesAToken()
    {
        int forced = Tokenizer.Encode(" fox")[0];
        string piece = Tokenizer.Decode([forced]);
        var body = new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["prompt"] = "hello", ["max_tokens"] = 4, ["temperature"] = 0,
            ["logit_bias"] = new JsonObject { [forced.ToString()] = 100 },
        };
        Assert.Equal(string.Concat(Enumerable.Repeat(piece, 4)), (string)(await Post("/v1/completions", body))["choices"]![0]!["text"]!);
        body["logit_bias"] = new JsonObject { [forced.ToString()] = -100 };
        body["logprobs"] = 0;
        Assert.DoesNotContain(piece, (await Post("/v1/completions", body))["choices"]![0]!["logprobs"]!["tokens"]!.AsArray().Select(t => (string)t!));
    }

    [Fact]
    public async Task GenerationStopsAtEndOfTurnAndNeverReturnsSpecialTokens()
    {
        int end = Tokenizer.TokenToId(SpecialTokens.End)!.Value;
        var body = new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["prompt"] = "hello", ["max_tokens"] = 20, ["temperature"] = 1, ["seed"] = 3,
            ["logit_bias"] = new JsonObject { [end.ToString()] = 100 },
        };
        var choice = (await Post("/v1/completions", body))["choices"]![0]!;
        Assert.Equal("", (string)choice["text"]!);
        Assert.Equal("stop", (string)choice["finish_reason"]!);

        // the other special tokens made certain: none of their spellings comes back, and generation runs to the limit
        var others = new JsonObject();
        foreach (var special in new[] { SpecialTokens.User, SpecialTokens.Assistant, SpecialTokens.System, SpecialTokens.Pad })
            others[Tokenizer.TokenToId(special)!.Value.ToString()] = 100;
        body["logit_bias"] = others;
        body["max_tokens"] = 5;
        choice = (await Post("/v1/completions", body))["choices"]![0]!;
        Assert.Equal("", (string)choice["text"]!);
        Assert.Equal("length", (string)choice["finish_reason"]!);

        // a likely, not certain, end of turn under sampling: chat stops there and the spelling never shows
        var chat = Chat("hello there", 40, new JsonObject { ["temperature"] = 1, ["logit_bias"] = new JsonObject { [end.ToString()] = 4 } });
        for (int seed = 0; seed < 5; seed++)
        {
            chat["seed"] = seed;
            var message = (await Post("/v1/chat/completions", chat))["choices"]![0]!;
            Assert.DoesNotContain("<|", (string)message["message"]!["content"]!);
        }
    }

    [Theory]
    [InlineData("frequency_penalty", 9, "frequency_penalty")]
    [InlineData("presence_penalty", -2.5, "presence_penalty")]
    [InlineData("temperature", 2.1, "temperature")]
    [InlineData("top_p", 1.5, "top_p")]
    [InlineData("n", 0, "n")]
    [InlineData("n", 129, "n")]
    [InlineData("max_tokens", 0, "max_tokens")]
    [InlineData("top_logprobs", 21, "top_logprobs")]
    public async Task OutOfRangeFieldsAreRefusedNamingThem(string field, double value, string param)
    {
        var body = Chat("hi", 4, new JsonObject { [field] = value, ["logprobs"] = true });
        await AssertRefused("/v1/chat/completions", body, param);
    }

    [Fact]
    public async Task BadStopLogitBiasAndToolChoiceAreRefusedNamingThem()
    {
        await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject { ["stop"] = new JsonArray("a", "b", "c", "d", "e") }), "stop");
        await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject { ["logit_bias"] = new JsonObject { ["5"] = 101 } }), "logit_bias");
        var outside = await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject { ["logit_bias"] = new JsonObject { ["99999"] = 1 } }), "logit_bias");
        Assert.Contains("99999", outside);
        await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject { ["top_logprobs"] = 2 }), "top_logprobs");
        var named = await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject
        {
            ["tools"] = Tools(), ["tool_choice"] = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "send_email" } },
        }), "tool_choice");
        Assert.Contains("send_email", named);
        await AssertRefused("/v1/chat/completions", Chat("hi", 4, new JsonObject { ["response_format"] = new JsonObject { ["type"] = "yaml" } }), "response_format");
    }

    [Fact]
    public async Task ToolTurnsAndToolCallsAreAcceptedAndToolChoiceNoneAnswersInWords()
    {
        var body = new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["max_tokens"] = 6, ["temperature"] = 0, ["tools"] = Tools(), ["tool_choice"] = "none",
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "weather in Paris?" },
                new JsonObject
                {
                    ["role"] = "assistant", ["content"] = null,
                    ["tool_calls"] = new JsonArray(new JsonObject
                    {
                        ["id"] = "call_1", ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\":\"Paris\"}" },
                    }),
                },
                new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = "{\"celsius\":21}" }),
        };
        var choice = (await Post("/v1/chat/completions", body))["choices"]![0]!;
        Assert.Null(choice["message"]!["tool_calls"]);
        Assert.Equal(System.Text.Json.JsonValueKind.String, choice["message"]!["content"]!.GetValueKind());

        body["messages"]!.AsArray().Add(new JsonObject { ["role"] = "tool", ["content"] = "no id" });
        await AssertRefused("/v1/chat/completions", body, "messages[3].tool_call_id");
    }

    [Fact]
    public async Task ResponseFormatTheEngineCannotHonourIsA400NamingResponseFormat()
    {
        // "not" is outside the supported schema subset: the refusal names response_format.
        var body = Chat("hi", 4, new JsonObject { ["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject
        {
            ["name"] = "x", ["schema"] = new JsonObject { ["type"] = "object", ["not"] = new JsonObject { ["type"] = "string" } },
        } } });
        using var http = Http();
        using var response = await http.PostAsync("/v1/chat/completions", Content(body));
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("response_format", (string?)json["error"]!["param"]);
    }

    [Fact]
    public async Task Base64EmbeddingsEqualFloatEmbeddings()
    {
        var body = new JsonObject { ["model"] = "all-MiniLM-L6-v2", ["input"] = new JsonArray("the quick brown fox", "hello world") };
        var floats = (await Post("/v1/embeddings", body))["data"]!.AsArray();
        body["encoding_format"] = "base64";
        var encoded = (await Post("/v1/embeddings", body))["data"]!.AsArray();
        for (int i = 0; i < 2; i++)
        {
            var expected = floats[i]!["embedding"]!.AsArray().Select(v => (float)v!).ToArray();
            var bytes = Convert.FromBase64String((string)encoded[i]!["embedding"]!);
            var decoded = new float[bytes.Length / 4];
            for (int j = 0; j < decoded.Length; j++) decoded[j] = BitConverter.ToSingle(bytes, 4 * j);
            Assert.Equal(expected, decoded);
            Assert.Equal(384, decoded.Length);
        }
    }

    [Fact]
    public async Task DimensionsTruncatesAndRenormalisesOrIsRefused()
    {
        var body = new JsonObject { ["model"] = "all-MiniLM-L6-v2", ["input"] = "the quick brown fox" };
        var full = (await Post("/v1/embeddings", body))["data"]![0]!["embedding"]!.AsArray().Select(v => (double)v!).ToArray();
        body["dimensions"] = 16;
        var shortened = (await Post("/v1/embeddings", body))["data"]![0]!["embedding"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(16, shortened.Length);
        double norm = Math.Sqrt(full.Take(16).Sum(v => v * v));
        for (int i = 0; i < 16; i++) Assert.Equal(full[i] / norm, shortened[i], 4);
        Assert.Equal(1, Math.Sqrt(shortened.Sum(v => v * v)), 4);

        foreach (int bad in new[] { 0, -3, 385 })
        {
            body["dimensions"] = bad;
            await AssertRefused("/v1/embeddings", body, "dimensions");
        }
        body.Remove("dimensions");
        body["encoding_format"] = "int8";
        await AssertRefused("/v1/embeddings", body, "encoding_format");
    }

    internal static JsonArray Tools() => new(new JsonObject
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_weather",
            ["description"] = "The weather in a city",
            ["parameters"] = new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject { ["city"] = new JsonObject { ["type"] = "string" } },
                ["required"] = new JsonArray("city"),
                ["additionalProperties"] = false,
            },
        },
    });

    static JsonObject Chat(string user, int maxTokens, JsonObject? extra = null)
    {
        var body = new JsonObject
        {
            ["model"] = ServerFixture.ModelName, ["max_tokens"] = maxTokens, ["temperature"] = 0,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }),
        };
        foreach (var (key, value) in extra ?? []) body[key] = value?.DeepClone();
        return body;
    }

    async Task<JsonNode> Post(string path, JsonObject body)
    {
        using var http = Http();
        using var response = await http.PostAsync(path, Content(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!;
    }

    async Task<List<JsonNode>> Stream(JsonObject body)
    {
        using var http = Http();
        using var response = await http.PostAsync("/v1/chat/completions", Content(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chunks = new List<JsonNode>();
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
            if (line.StartsWith("data: {", StringComparison.Ordinal)) chunks.Add(JsonNode.Parse(line["data: ".Length..])!);
        return chunks;
    }

    /// <summary>Posts a bad request; asserts a 400 whose param is <paramref name="param"/>, and returns the message.</summary>
    async Task<string> AssertRefused(string path, JsonObject body, string param)
    {
        using var http = Http();
        using var response = await http.PostAsync(path, Content(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal(param, (string?)error["param"]);
        return (string)error["message"]!;
    }

    HttpClient Http()
    {
        var http = new HttpClient { BaseAddress = server.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.ApiKey);
        return http;
    }

    static StringContent Content(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");
}
