using System.ClientModel;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;

namespace Loom.Tests.Server;

/// <summary>
/// Acceptance with the official OpenAI .NET client: logprobs, embeddings (base64 on the wire, as the client asks), and the
/// cases that need a generator that honours a format (json_schema, a tools round trip).
/// </summary>
public class OpenAiClientTests(ClientFixture server) : IClassFixture<ClientFixture>
{
    const string WeatherParameters = """{"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"],"additionalProperties":false}""";
    const string PersonSchema = """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],"additionalProperties":false}""";

    OpenAIClient Client() => new(new ApiKeyCredential(ClientFixture.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "/v1") });

    ChatClient Chat() => Client().GetChatClient(ClientFixture.ModelName);

    [Fact]
    public async Task LogprobsComeBackPerToken()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 };
        var completion = (await Chat().CompleteChatAsync([new UserChatMessage("hello there")], options)).Value;
        var tokens = completion.ContentTokenLogProbabilities;
        Assert.Equal(completion.Usage.OutputTokenCount, tokens.Count);
        Assert.Equal(completion.Content[0].Text, System.Text.Encoding.UTF8.GetString(tokens.SelectMany(t => t.Utf8Bytes!.Value.ToArray()).ToArray()));
        Assert.All(tokens, t =>
        {
            Assert.Equal(2, t.TopLogProbabilities.Count);
            Assert.Equal(t.TopLogProbabilities[0].LogProbability, t.LogProbability);
            Assert.True(t.TopLogProbabilities[0].LogProbability >= t.TopLogProbabilities[1].LogProbability);
        });
    }

    [Fact]
    public async Task EmbeddingsOverBase64EqualFloats()
    {
        var embeddings = Client().GetEmbeddingClient("all-MiniLM-L6-v2");
        var viaClient = (await embeddings.GenerateEmbeddingAsync("the quick brown fox")).Value.ToFloats().ToArray();
        var direct = (await server.Embedder.GenerateAsync(["the quick brown fox"]))[0].Vector.ToArray();
        Assert.Equal(direct, viaClient);
        var shortened = (await embeddings.GenerateEmbeddingAsync("the quick brown fox", new EmbeddingGenerationOptions { Dimensions = 8 })).Value.ToFloats();
        Assert.Equal(8, shortened.Length);
    }

    [Fact]
    public async Task JsonSchemaAnswersValidate()
    {
        var options = new ChatCompletionOptions
        {
            Temperature = 0, MaxOutputTokenCount = 64,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema), jsonSchemaIsStrict: true),
        };
        var completion = (await Chat().CompleteChatAsync([new UserChatMessage("who are you?")], options)).Value;
        using var answer = JsonDocument.Parse(completion.Content[0].Text);
        Assert.Equal(JsonValueKind.String, answer.RootElement.GetProperty("name").ValueKind);
        Assert.InRange(answer.RootElement.GetProperty("age").GetInt32(), 0, 120);
    }

    [Fact]
    public async Task ToolsRoundTripWithAToolMessage()
    {
        var options = new ChatCompletionOptions
        {
            Temperature = 0, MaxOutputTokenCount = 160,
            Tools = { ChatTool.CreateFunctionTool("get_weather", "The weather in a city", BinaryData.FromString(WeatherParameters)) },
            ToolChoice = ChatToolChoice.CreateRequiredChoice(),
        };
        List<ChatMessage> messages = [new UserChatMessage("what is the weather in Paris?")];
        var first = (await Chat().CompleteChatAsync(messages, options)).Value;
        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.Id);
        using (var arguments = JsonDocument.Parse(call.FunctionArguments))
            Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("city").ValueKind);

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, """{"celsius": 21}"""));
        options.ToolChoice = ChatToolChoice.CreateNoneChoice();
        var second = (await Chat().CompleteChatAsync(messages, options)).Value;
        Assert.Empty(second.ToolCalls);
        Assert.NotEqual(ChatFinishReason.ToolCalls, second.FinishReason);
    }

    [Fact]
    public async Task StreamedToolCallsArriveAsDeltas()
    {
        var options = new ChatCompletionOptions
        {
            Temperature = 0, MaxOutputTokenCount = 160,
            Tools = { ChatTool.CreateFunctionTool("get_weather", "The weather in a city", BinaryData.FromString(WeatherParameters)) },
            ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather"),
        };
        string? name = null, id = null;
        var arguments = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("weather in Oslo?")], options))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                name ??= part.FunctionName;
                id ??= part.ToolCallId;
                arguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal("get_weather", name);
        Assert.StartsWith("call_", id);
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        using var parsed = JsonDocument.Parse(arguments.ToString());
        Assert.Equal(JsonValueKind.String, parsed.RootElement.GetProperty("city").ValueKind);
    }
}
