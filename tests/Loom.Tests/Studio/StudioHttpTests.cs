using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Loom.Server.Studio;
using Loom.Serving.Feedback;

namespace Loom.Tests.Studio;

/// <summary>The studio's HTTP contract: sessions, anti-forgery, roles, headers, and what a submission stores.</summary>
[Collection(StudioCollection.Name)]
public sealed class StudioHttpTests(StudioFixture studio)
{
    static string ItemPath(FeedbackItem item) => $"/studio/api/tasks/{item.TaskId}/items/{item.Id}";

    [Fact]
    public async Task RequestsWithoutSessionAreRefused()
    {
        var (_, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1);
        using var client = studio.NewClient();
        string csrf = await StudioFixture.SessionTokenAsync(client);
        using var post = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "First" }, csrf);
        Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
        using var get = await client.GetAsync($"/studio/api/tasks");
        Assert.Equal(HttpStatusCode.Unauthorized, get.StatusCode);
        Assert.Empty(await studio.Store.ListJudgementsAsync(new JudgementQuery { ItemId = items[0].Id }, CancellationToken.None));
    }

    [Fact]
    public async Task PostsWithForgedOrMissingAntiforgeryTokenAreRefused()
    {
        var (_, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1);
        var (client, csrf) = await studio.ApiLoginAsync(StudioFixture.First);
        using (client)
        {
            using var forged = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "First" }, "CfDJ8forged-token");
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
            Assert.Contains(StudioApp.CsrfHeader, await forged.Content.ReadAsStringAsync());
            using var missing = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "First" }, null);
            Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
            Assert.Empty(await studio.Store.ListJudgementsAsync(new JudgementQuery { ItemId = items[0].Id }, CancellationToken.None));
            using var genuine = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "First" }, csrf);
            Assert.Equal(HttpStatusCode.OK, genuine.StatusCode);
            Assert.Single(await studio.Store.ListJudgementsAsync(new JudgementQuery { ItemId = items[0].Id }, CancellationToken.None));
        }
        // Another session's token does not pass for this one.
        var (other, _) = await studio.ApiLoginAsync(StudioFixture.Second);
        using (other)
        {
            using var stolen = await StudioFixture.PostAsync(other, ItemPath(items[0]), new { choice = "Second" }, csrf);
            Assert.Equal(HttpStatusCode.BadRequest, stolen.StatusCode);
        }
        using var anonymous = studio.NewClient();
        await StudioFixture.SessionTokenAsync(anonymous);
        using var login = await StudioFixture.PostAsync(anonymous, "/studio/api/login", new { name = StudioFixture.First, password = StudioFixture.Password(StudioFixture.First) }, null);
        Assert.Equal(HttpStatusCode.BadRequest, login.StatusCode);
    }

    [Fact]
    public async Task WrongPasswordAndUnknownNameAreRefused()
    {
        using var client = studio.NewClient();
        string csrf = await StudioFixture.SessionTokenAsync(client);
        using var wrong = await StudioFixture.PostAsync(client, "/studio/api/login", new { name = StudioFixture.First, password = "guess" }, csrf);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using var unknown = await StudioFixture.PostAsync(client, "/studio/api/login", new { name = "mallory", password = "guess" }, csrf);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        using var tasks = await client.GetAsync("/studio/api/tasks");
        Assert.Equal(HttpStatusCode.Unauthorized, tasks.StatusCode);
    }

    [Fact]
    public async Task SessionCookieIsHttpOnlyAndSameSiteStrict()
    {
        using var client = studio.NewClient();
        string csrf = await StudioFixture.SessionTokenAsync(client);
        using var login = await StudioFixture.PostAsync(client, "/studio/api/login", new { name = StudioFixture.First, password = StudioFixture.Password(StudioFixture.First) }, csrf);
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        string cookie = Assert.Single(login.Headers.GetValues("Set-Cookie"), c => c.StartsWith(StudioApp.SessionCookie + "=", StringComparison.Ordinal));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task AnnotatorsGet403OnOwnerViewsAndSeeOnlyTheirOwnJudgements()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1, overlap: 2);
        var (owner, _) = await studio.ApiLoginAsync(StudioFixture.Owner);
        var (first, firstCsrf) = await studio.ApiLoginAsync(StudioFixture.First);
        var (second, _) = await studio.ApiLoginAsync(StudioFixture.Second);
        using (owner) using (first) using (second)
        {
            using (var vote = await StudioFixture.PostAsync(first, ItemPath(items[0]), new { choice = "Second" }, firstCsrf))
                Assert.Equal(HttpStatusCode.OK, vote.StatusCode);
            foreach (string path in new[] { $"/studio/api/tasks/{task.Id}/judgements", $"/studio/api/tasks/{task.Id}/agreement", $"/studio/api/tasks/{task.Id}/export", "/studio/api/leaderboard" })
            {
                using var refused = await second.GetAsync(path);
                Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
                using var allowed = await owner.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
            }
            Assert.Empty(JsonNode.Parse(await second.GetStringAsync($"/studio/api/tasks/{task.Id}/mine"))!.AsArray());
            var mine = JsonNode.Parse(await first.GetStringAsync($"/studio/api/tasks/{task.Id}/mine"))!.AsArray();
            Assert.Equal(StudioFixture.First, (string)Assert.Single(mine)!["annotator"]!);
            // The task list shows an annotator only their own progress; the owner sees everyone's.
            var row = JsonNode.Parse(await second.GetStringAsync("/studio/api/tasks"))!.AsArray().Single(t => (string)t!["id"]! == task.Id)!;
            Assert.Equal([StudioFixture.Second], row["annotators"]!.AsArray().Select(a => (string)a!["annotator"]!));
            Assert.Equal(0, (int)row["mine"]!["done"]!);
            Assert.Equal(1, (int)row["mine"]!["queue"]!);
            var all = JsonNode.Parse(await owner.GetStringAsync($"/studio/api/tasks/{task.Id}/judgements"))!.AsArray();
            Assert.Single(all);
            // The next item for the second annotator carries no trace of the first one's vote, nor the model versions.
            string next = await second.GetStringAsync($"/studio/api/tasks/{task.Id}/next");
            Assert.DoesNotContain(StudioFixture.First, next);
            Assert.DoesNotContain("Second", next);
            Assert.DoesNotContain("\"v1\"", next);
            Assert.DoesNotContain("modelVersion", next);
        }
    }

    [Fact]
    public async Task SubmissionStoresWhatWasShownInTheBlindOrderAndRevealsVersions()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1, overlap: 2);
        var (client, csrf) = await studio.ApiLoginAsync(StudioFixture.First);
        using (client)
        {
            var next = JsonNode.Parse(await client.GetStringAsync($"/studio/api/tasks/{task.Id}/next"))!["item"]!;
            var shownTexts = next["responses"]!.AsArray().Select(r => (string)r!["text"]!).ToList();
            var expected = BlindOrder.ShownResponses(items[0], JudgementKind.Pairwise, StudioFixture.First);
            Assert.Equal(expected.Select(r => r.Text), shownTexts);
            using var vote = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "First", comment = "shorter" }, csrf);
            Assert.Equal(HttpStatusCode.OK, vote.StatusCode);
            var revealed = JsonNode.Parse(await vote.Content.ReadAsStringAsync())!["shown"]!.AsArray();
            Assert.Equal(expected.Select(r => r.ModelVersion), revealed.Select(r => (string)r!["modelVersion"]!));
            var stored = Assert.Single(await studio.Store.ListJudgementsAsync(new JudgementQuery { ItemId = items[0].Id }, CancellationToken.None));
            Assert.Equal(PairwiseChoice.First, stored.Choice);
            Assert.Equal(StudioFixture.First, stored.Annotator);
            Assert.Equal("shorter", stored.Comment);
            Assert.Equal(expected, stored.Shown);
            Assert.Equal(items[0].Prompt, stored.Prompt);
            using var again = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { choice = "Second" }, csrf);
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            using var invalid = await StudioFixture.PostAsync(client, $"/studio/api/tasks/{task.Id}/items/nope", new { choice = "First" }, csrf);
            Assert.Equal(HttpStatusCode.NotFound, invalid.StatusCode);
        }
        // The shuffle differs between annotators on some item, and is stable for one annotator.
        var (_, many) = await studio.AddTaskAsync(JudgementKind.Rank, 8, responseCount: 4);
        Assert.Contains(many, item => !BlindOrder.Shown(item, JudgementKind.Rank, StudioFixture.First).SequenceEqual(BlindOrder.Shown(item, JudgementKind.Rank, StudioFixture.Second)));
        Assert.All(many, item => Assert.Equal(BlindOrder.Shown(item, JudgementKind.Rank, "x"), BlindOrder.Shown(item, JudgementKind.Rank, "x")));
        Assert.All(many, item => Assert.Equal([0, 1, 2, 3], BlindOrder.Shown(item, JudgementKind.Rank, StudioFixture.First).Order()));
    }

    [Fact]
    public async Task BadVerdictIsRefusedWithTheFieldNamed()
    {
        var (_, items) = await studio.AddTaskAsync(JudgementKind.Rating, 1);
        var (client, csrf) = await studio.ApiLoginAsync(StudioFixture.First);
        using (client)
        {
            using var outOfRange = await StudioFixture.PostAsync(client, ItemPath(items[0]), new { rating = 9 }, csrf);
            Assert.Equal(HttpStatusCode.BadRequest, outOfRange.StatusCode);
            Assert.Contains("Rating", await outOfRange.Content.ReadAsStringAsync());
            using var notJson = new HttpRequestMessage(HttpMethod.Post, ItemPath(items[0])) { Content = new StringContent("{\"rating\": \"four\"}", System.Text.Encoding.UTF8, "application/json") };
            notJson.Headers.Add(StudioApp.CsrfHeader, csrf);
            using var answer = await client.SendAsync(notJson);
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            Assert.Contains("rating", await answer.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task RoleAndPasswordChangesTakeEffectOnOpenSessions()
    {
        var (task, _) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1);
        const string name = "carol";
        await studio.Store.SaveAnnotatorAsync(new Annotator(name, AnnotatorRole.Owner), PasswordHasher.Hash(StudioFixture.Password(name)), CancellationToken.None);
        var (client, _) = await studio.ApiLoginAsync(name);
        using (client)
        {
            using (var asOwner = await client.GetAsync($"/studio/api/tasks/{task.Id}/agreement"))
                Assert.Equal(HttpStatusCode.OK, asOwner.StatusCode);
            await studio.Store.SaveAnnotatorAsync(new Annotator(name, AnnotatorRole.Annotator), (await studio.Store.GetAnnotatorAsync(name, CancellationToken.None))!.Value.PasswordHash, CancellationToken.None);
            using (var demoted = await client.GetAsync($"/studio/api/tasks/{task.Id}/agreement"))
                Assert.Equal(HttpStatusCode.Forbidden, demoted.StatusCode);
            using (var stillIn = await client.GetAsync("/studio/api/tasks"))
                Assert.Equal(HttpStatusCode.OK, stillIn.StatusCode);
            await studio.Store.SaveAnnotatorAsync(new Annotator(name, AnnotatorRole.Annotator), PasswordHasher.Hash("a new password"), CancellationToken.None);
            using var afterReset = await client.GetAsync("/studio/api/tasks");
            Assert.Equal(HttpStatusCode.Unauthorized, afterReset.StatusCode);
        }
    }

    [Fact]
    public async Task PagesCarrySecurityHeadersAndNoInlineScript()
    {
        using var client = studio.NewClient();
        using var page = await client.GetAsync("/studio");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("default-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        string html = await page.Content.ReadAsStringAsync();
        Assert.Matches("<script src=\"/studio/studio.js\"", html);
        Assert.DoesNotMatch(new Regex("<script(?![^>]*\\bsrc=)[^>]*>", RegexOptions.IgnoreCase), html);
        string script = await client.GetStringAsync("/studio/studio.js");
        Assert.DoesNotContain("innerHTML", script);
        Assert.DoesNotContain("insertAdjacentHTML", script);
        using var api = await client.GetAsync("/studio/api/session");
        Assert.Equal("DENY", api.Headers.GetValues("X-Frame-Options").Single());
        using var css = await client.GetAsync("/studio/studio.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task ForeignHostHeaderIsRefused()
    {
        using var client = studio.NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/studio");
        request.Headers.Host = "attacker.example";
        using var response = await client.SendAsync(request);
        Assert.Equal((HttpStatusCode)421, response.StatusCode);
    }

    [Fact]
    public void StudioCommandRefusesABadPort()
    {
        var (code, _, error) = CliRun.Run("studio", "--store", Path.Combine(studio.Folder, "unused.db"), "--port", "70000");
        Assert.Equal(1, code);
        Assert.Equal("loom studio: --port must be 0..65535, got 70000", error.Trim());
    }
}

/// <summary><c>loom serve</c> with a feedback store serves the studio beside the OpenAI API.</summary>
[Collection(StudioCollection.Name)]
public sealed class StudioInServerTests(StudioFixture studio)
{
    [Fact]
    public async Task ModelServerServesTheStudioWithItsRules()
    {
        var (task, _) = await studio.AddTaskAsync(JudgementKind.Rating, 1, responseCount: 1);
        var (transformer, tokenizer) = Loom.Tests.Server.ServerFixture.BpeModel(3);
        await using var model = Loom.Serving.LoomModel.Create("studio-test", transformer, tokenizer, new Loom.Serving.LoomModelOptions { Slots = 2 });
        await using var app = Loom.Server.LoomServer.Build(new Loom.Server.ServedModel(model.Engine) { Studio = studio.Store }, new Loom.Server.ServerOptions { Port = 0 });
        await app.StartAsync();
        using var client = new HttpClient(new HttpClientHandler { UseCookies = true, CookieContainer = new CookieContainer() }) { BaseAddress = Loom.Server.LoomServer.Addresses(app)[0] };
        using var page = await client.GetAsync("/studio");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        string csrf = await StudioFixture.SessionTokenAsync(client);
        using (var forged = await StudioFixture.PostAsync(client, "/studio/api/login", new { name = StudioFixture.Owner, password = StudioFixture.Password(StudioFixture.Owner) }, "forged"))
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        using (var login = await StudioFixture.PostAsync(client, "/studio/api/login", new { name = StudioFixture.Owner, password = StudioFixture.Password(StudioFixture.Owner) }, csrf))
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        Assert.Contains(JsonNode.Parse(await client.GetStringAsync("/studio/api/tasks"))!.AsArray(), t => (string)t!["id"]! == task.Id);
        using var models = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.False(models.Headers.Contains("Content-Security-Policy"));
    }
}
