using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Serving;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Serving;

/// <summary>Tools, response formats, logprobs and logit bias below the server: the formats built, answers parsed, numbers checked.</summary>
public class ChatToolsTests
{
    static readonly AIFunctionDeclaration Weather = AIFunctionFactory.CreateDeclaration("get_weather", "The weather in a city",
        JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""").RootElement);
    static readonly AIFunctionDeclaration Time = AIFunctionFactory.CreateDeclaration("get_time", null,
        JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement);

    static JsonNode Schema(ChatOptions options) => JsonNode.Parse(ChatTools.From(options)!.Format.JsonSchema!.Value.GetRawText())!;

    [Fact]
    public void RequiredAndNamedToolModesConstrainToCalls()
    {
        var named = Schema(new ChatOptions { Tools = [Weather, Time], ToolMode = ChatToolMode.RequireSpecific("get_weather") });
        Assert.Equal("get_weather", (string)named["properties"]!["name"]!["const"]!);
        Assert.Equal("string", (string)named["properties"]!["arguments"]!["properties"]!["city"]!["type"]!);
        Assert.Equal(["name", "arguments"], named["required"]!.AsArray().Select(n => (string)n!));

        var any = Schema(new ChatOptions { Tools = [Weather, Time], ToolMode = ChatToolMode.RequireAny });
        Assert.Equal(["get_weather", "get_time"], any["anyOf"]!.AsArray().Select(s => (string)s!["properties"]!["name"]!["const"]!));

        var auto = Schema(new ChatOptions { Tools = [Weather] });
        var branches = auto["anyOf"]!.AsArray();
        Assert.Equal(2, branches.Count);
        Assert.Equal("string", (string)branches[1]!["properties"]!["content"]!["type"]!);

        Assert.Null(ChatTools.From(new ChatOptions { Tools = [Weather], ToolMode = ChatToolMode.None }));
        var missing = Assert.Throws<ChatRequestException>(() => ChatTools.From(new ChatOptions { Tools = [Weather], ToolMode = ChatToolMode.RequireSpecific("send_email") }));
        Assert.Contains("send_email", missing.Message);
        Assert.Equal("ChatOptions.ToolMode", missing.Field);
    }

    [Fact]
    public void AnswersParseIntoCallsOrText()
    {
        var tools = ChatTools.From(new ChatOptions { Tools = [Weather, Time] })!;
        var call = Assert.IsType<FunctionCallContent>(tools.Parse("""{"name":"get_weather","arguments":{"city":"Paris"}}"""));
        Assert.Equal("get_weather", call.Name);
        Assert.Matches("^call_[0-9a-f]{24}$", call.CallId);
        Assert.Equal("Paris", ((JsonElement)call.Arguments!["city"]!).GetString());
        Assert.Equal("it is sunny", Assert.IsType<TextContent>(tools.Parse("""{"content":"it is sunny"}""")).Text);
        Assert.Equal("not json", Assert.IsType<TextContent>(tools.Parse("not json")).Text);
        // a call of a function that was not offered stays text
        Assert.IsType<TextContent>(tools.Parse("""{"name":"send_email","arguments":{}}"""));
    }

    [Fact]
    public void ResponseFormatsBecomeJsonSchemaFormats()
    {
        Assert.Null(ChatTools.ResponseFormat(new ChatOptions { ResponseFormat = ChatResponseFormat.Text }));
        Assert.Equal("""{"type":"object"}""", ChatTools.ResponseFormat(new ChatOptions { ResponseFormat = ChatResponseFormat.Json })!.JsonSchema!.Value.GetRawText());
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer"}}}""").RootElement;
        var format = ChatTools.ResponseFormat(new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema, "thing") })!;
        Assert.Equal("integer", JsonNode.Parse(format.JsonSchema!.Value.GetRawText())!["properties"]!["a"]!["type"]!.ToString());
    }

    [Fact]
    public void ToolsCallsAndResultsAreRenderedIntoTheTurns()
    {
        var tools = ChatTools.From(new ChatOptions { Tools = [Weather] });
        List<ChatMessage> messages =
        [
            new(ChatRole.User, "weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "{\"celsius\":21}")]),
        ];
        var turns = LoomChatClient.Turns(messages, tools);
        Assert.Equal(["system", "user", "assistant", "tool"], turns.Select(t => t.Role));
        Assert.Contains("\"name\":\"get_weather\"", turns[0].Content);
        Assert.Contains("The weather in a city", turns[0].Content);
        Assert.Equal("""{"name":"get_weather","arguments":{"city":"Paris"}}""", turns[2].Content);
        Assert.Equal("{\"celsius\":21}", turns[3].Content);
    }

    [Fact]
    public async Task RequestsCarryFormatLogprobsAndLogitBias()
    {
        var (model, tokenizer) = Loom.Tests.Server.ServerFixture.BpeModel(2);
        await using var loom = LoomModel.Create("m", model, tokenizer);
        var engine = loom.Engine;
        var options = new ChatOptions
        {
            ResponseFormat = ChatResponseFormat.Json,
            AdditionalProperties = new() { [LoomChatClient.TopLogprobsKey] = 3, [LoomChatClient.LogitBiasKey] = new Dictionary<int, float> { [7] = 2.5f } },
        };
        var request = LoomChatClient.Request(engine, [new ChatMessage(ChatRole.User, "hi")], options);
        Assert.Equal("""{"type":"object"}""", request.Format!.JsonSchema!.Value.GetRawText());
        Assert.Equal(3, request.TopLogprobs);
        Assert.Equal(2.5f, request.Sampling.LogitBias![7]);
        options.AdditionalProperties[LoomChatClient.LogitBiasKey] = new Dictionary<int, float> { [7] = 101 };
        Assert.Equal("ChatOptions.AdditionalProperties", Assert.Throws<ChatRequestException>(() => LoomChatClient.Request(engine, [new ChatMessage(ChatRole.User, "hi")], options)).Field);
        Assert.Null(LoomChatClient.Request(engine, [new ChatMessage(ChatRole.User, "hi")], new ChatOptions()).TopLogprobs);
    }

    [Fact]
    public void LogprobsAreTheLogSoftmaxOfTheLogits()
    {
        var tokenizer = CharTokenizer.Train(["abcdef"]);
        float[] logits = [1f, 3f, float.NegativeInfinity, 3f, -2f, 0.5f];
        double logSum = Math.Log(logits.Where(float.IsFinite).Sum(l => Math.Exp(l)));
        var result = TokenLogprobs.Compute(logits.AsSpan(0, tokenizer.VocabSize), 4, 3, tokenizer);
        Assert.Equal(-2 - logSum, result.Chosen.Logprob, 5);
        Assert.Equal([1, 3, 0], result.Top.Select(t => t.Id));
        Assert.Equal(3 - logSum, result.Top[0].Logprob, 5);
        Assert.Equal(tokenizer.Decode([1]), result.Top[0].Token);
        Assert.Equal(5, TokenLogprobs.Compute(logits, 0, 20, tokenizer).Top.Count); // the masked token is never an alternative
    }

    [Fact]
    public void LogitBiasShiftsTheDrawAndIsChecked()
    {
        float[] logits = [2f, 1f, 0f, -1f];
        var sampler = new Sampler(SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [3] = 3.5f } }, 4);
        Assert.Equal(3, sampler.Sample(logits, []));
        Assert.Equal(2.5f, logits[3]);
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [4] = 1 } }, 4));
        Assert.Contains("LogitBias", Assert.Throws<ArgumentException>(() => new SamplingOptions { LogitBias = new Dictionary<int, float> { [1] = -101 } }.Validate()).Message);
    }
}
