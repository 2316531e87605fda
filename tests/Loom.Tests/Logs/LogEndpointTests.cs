using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Logs;
using Loom.Server;
using Loom.Serving;
using Loom.Tests.Server;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Loom.Tests.Logs;

/// <summary>POST /v1/logs/detect over HTTP: verdicts as lines arrive and as sessions complete, NDJSON, and the server's refusals.</summary>
public class LogEndpointTests
{
    const string Key = "log-key";

    static StringContent Json(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    static JsonObject Lines(IEnumerable<string> lines, bool complete = false) =>
        new() { ["lines"] = new JsonArray([.. lines.Select(l => JsonValue.Create(l))]), ["complete"] = complete };

    [Fact]
    public async Task PostedLinesAreJudgedAcrossRequestsAndBadInputGetsOpenAiErrors()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        var logModel = WatchTests.TrainOnRawLines(folder);
        var (transformer, tokenizer) = ServerFixture.BpeModel(5);
        await using var model = LoomModel.Create("tiny", transformer, tokenizer);
        var served = new ServedModel(model.Engine) { LogDetector = new LiveDetector(logModel, new LiveDetectorOptions { SessionTimeout = TimeSpan.FromHours(1) }) };
        await using var app = LoomServer.Build(served, new ServerOptions { Port = 0, ApiKeys = [Key], MaxRequestBytes = 4096 });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);

        async Task<(HttpStatusCode Status, JsonObject Body)> Post(HttpContent content)
        {
            using var response = await http.PostAsync(LogEndpoint.Path, content);
            return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
        }

        // Two normal sessions and one that goes wrong at its third line: only that one is flagged, at that line.
        var (status, first) = await Post(Json(Lines([.. WatchTests.SessionLines(1, "A", "B", "C", "D", "E"), .. WatchTests.SessionLines(2, "A", "B"),
            .. WatchTests.SessionLines(9, "A", "B", "X")])));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((1L, 10, 3), (first["first_line"]!.GetValue<long>(), first["lines"]!.GetValue<int>(), first["open_sessions"]!.GetValue<int>()));
        var flagged = Assert.Single(first["verdicts"]!.AsArray())!;
        Assert.Equal(("blk_9", true, false), (flagged["session"]!.GetValue<string>(), flagged["anomalous"]!.GetValue<bool>(), flagged["completed"]!.GetValue<bool>()));
        Assert.Equal((2, 10L), (flagged["first_unexpected_index"]!.GetValue<int>(), flagged["first_unexpected_line"]!.GetValue<long>()));

        // NDJSON continues blk_2 normally (lines 11-13 of the stream); completing then judges every open session with its end.
        var ndjson = string.Join("\n", WatchTests.SessionLines(2, "C", "D", "E").Select((l, i) => i == 0 ? new JsonObject { ["line"] = l }.ToJsonString() : JsonValue.Create(l)!.ToJsonString()));
        var (ndStatus, second) = await Post(new StringContent(ndjson + "\n", Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.OK, ndStatus);
        Assert.Equal((11L, 3), (second["first_line"]!.GetValue<long>(), second["lines"]!.GetValue<int>()));
        Assert.Empty(second["verdicts"]!.AsArray());
        var (_, done) = await Post(Json(Lines(WatchTests.SessionLines(3, "A", "B", "C"), complete: true)));
        var completed = done["verdicts"]!.AsArray().ToDictionary(v => v!["session"]!.GetValue<string>(), v => v!);
        Assert.Equal(["blk_1", "blk_2", "blk_3"], completed.Keys.Order());
        Assert.All(completed.Values, v => Assert.True(v!["completed"]!.GetValue<bool>()));
        Assert.False(completed["blk_1"]!["anomalous"]!.GetValue<bool>());
        Assert.False(completed["blk_2"]!["anomalous"]!.GetValue<bool>());
        Assert.True(completed["blk_3"]!["anomalous"]!.GetValue<bool>(), "a session cut after C never saw its end");
        Assert.Equal(EventVocabulary.EndToken, completed["blk_3"]!["unexpected_event"]!.GetValue<string>());
        Assert.Equal(0, done["open_sessions"]!.GetValue<int>());

        // Refusals: the field at fault, the body limit, the key.
        var (badStatus, bad) = await Post(Json(new JsonObject { ["lines"] = "one line" }));
        Assert.Equal((HttpStatusCode.BadRequest, "lines", "invalid_request_error"), (badStatus, bad["error"]!["param"]!.GetValue<string>(), bad["error"]!["type"]!.GetValue<string>()));
        var (numberStatus, number) = await Post(Json(new JsonObject { ["lines"] = new JsonArray("ok", 3) }));
        Assert.Equal((HttpStatusCode.BadRequest, "'lines[1]' must be a string"), (numberStatus, number["error"]!["message"]!.GetValue<string>()));
        var (flagStatus, flag) = await Post(Json(new JsonObject { ["lines"] = new JsonArray(), ["complete"] = "yes" }));
        Assert.Equal((HttpStatusCode.BadRequest, "complete"), (flagStatus, flag["error"]!["param"]!.GetValue<string>()));
        var (ndBadStatus, ndBad) = await Post(new StringContent("\"fine\"\n{not json\n", Encoding.UTF8, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.BadRequest, ndBadStatus);
        Assert.StartsWith("NDJSON record 2 is not JSON", ndBad["error"]!["message"]!.GetValue<string>());
        var (bigStatus, big) = await Post(Json(Lines([new string('x', 5000)])));
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, "request_too_large"), (bigStatus, big["error"]!["code"]!.GetValue<string>()));
        http.DefaultRequestHeaders.Authorization = null;
        var (keyStatus, _) = await Post(Json(Lines(["x"])));
        Assert.Equal(HttpStatusCode.Unauthorized, keyStatus);
        Assert.Equal(16, served.LogDetector!.LinesRead); // refused requests judged nothing
    }

    [Fact]
    public async Task LoomServeWithALogModelAnswersTheEndpoint()
    {
        string folder = Text.TestData.NewTemporaryDirectory();
        string logModel = Path.Combine(folder, "log-model"), writer = Path.Combine(folder, "writer");
        WatchTests.TrainOnRawLines(folder).Save(logModel);
        var (transformer, tokenizer) = ServerFixture.BpeModel(5);
        Loom.Models.Checkpoint.Save(writer, transformer, tokenizer.Save);
        using var serve = await ServeProcess.StartAsync("--model", writer, "--port", "0", "--slots", "1", "--threads", "1", "--log-model", logModel);
        using var http = new HttpClient { BaseAddress = serve.Address };
        using var response = await http.PostAsync(LogEndpoint.Path, Json(Lines([.. WatchTests.SessionLines(4, "A", "B", "C", "D", "E"), .. WatchTests.SessionLines(5, "A", "X")], complete: true)));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        var verdicts = body["verdicts"]!.AsArray().ToDictionary(v => v!["session"]!.GetValue<string>(), v => v!["anomalous"]!.GetValue<bool>());
        Assert.Equal(new Dictionary<string, bool> { ["blk_4"] = false, ["blk_5"] = true }, verdicts);
    }
}
