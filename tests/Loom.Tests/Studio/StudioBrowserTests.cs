using System.Net;
using System.Text.Json.Nodes;
using Loom.Server.Studio;
using Loom.Serving.Feedback;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Loom.Tests.Studio;

/// <summary>
/// The studio in real headless Chromium (one browser for the class, a fresh context per person): each view driven by
/// its keys, the stored judgements checked, and a screenshot of each view saved to the test output's screenshots folder.
/// </summary>
[Collection(StudioCollection.Name)]
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class StudioBrowserTests(StudioFixture studio)
{
    Task<IReadOnlyList<Judgement>> Stored(string itemId) => studio.Store.ListJudgementsAsync(new JudgementQuery { ItemId = itemId }, CancellationToken.None);

    /// <summary>Opens a task from the task list with keys only: ↓ to its row, Enter.</summary>
    static async Task OpenWithKeysAsync(IPage page, string taskId)
    {
        var ids = await page.Locator("#tasks tbody tr").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.task)");
        int row = Array.IndexOf(ids, taskId);
        Assert.True(row >= 0, $"task {taskId} is not in the list");
        for (int i = 0; i < row; i++) await page.Keyboard.PressAsync("ArrowDown");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#work, #empty")).ToBeVisibleAsync();
    }

    [SkippableFact]
    public async Task LogInShowsTheTaskListWithProgress()
    {
        var (task, _) = await studio.AddTaskAsync(JudgementKind.Pairwise, 3);
        var page = await studio.LoginAsync(StudioFixture.First);
        var row = page.Locator($"#tasks tr[data-task='{task.Id}']");
        await Expect(row.Locator("td.mine")).ToHaveTextAsync("0 done / 3 queue");
        await Expect(page.Locator("#keys")).ToContainTextAsync("open task");
        await StudioFixture.ScreenshotAsync(page, "studio-tasks.png");
        await page.Locator("#logout").ClickAsync();
        await Expect(page.Locator("h1")).ToHaveTextAsync("Log in");
        await page.Locator("#name").FillAsync(StudioFixture.First);
        await page.Locator("#password").FillAsync("wrong password");
        await page.Locator("#password").PressAsync("Enter");
        await Expect(page.Locator("#login-error")).ToHaveTextAsync("unknown name or wrong password");
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task CompareWithKeysOnlyIsBlindUntilTheVote()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 2, response: (_, r) => r == 0
            ? "Paris."
            : "The capital of France is Paris, on the Seine; it has been the seat of government for most of the last thousand years.");
        var page = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(page, task.Id);
        await Expect(page.Locator("#guidelines")).ToContainTextAsync(task.Guidelines);
        await Expect(page.Locator("#keys")).ToContainTextAsync("both bad");
        for (int n = 0; n < 2; n++)
        {
            string itemId = (await page.Locator("#work").GetAttributeAsync("data-item"))!;
            var item = items.Single(i => i.Id == itemId);
            var shown = BlindOrder.ShownResponses(item, JudgementKind.Pairwise, StudioFixture.First);
            await Expect(page.Locator("#response-A pre")).ToHaveTextAsync(shown[0].Text);
            await Expect(page.Locator("#response-B pre")).ToHaveTextAsync(shown[1].Text);
            // Blind: no model version anywhere on the page before the vote.
            Assert.DoesNotContain("model: v", await page.Locator("main").InnerTextAsync());
            await page.Keyboard.PressAsync(n == 0 ? "1" : "2");
            await Expect(page.Locator(n == 0 ? "#response-A" : "#response-B")).ToHaveClassAsync("response chosen");
            if (n == 0) await StudioFixture.ScreenshotAsync(page, "studio-compare.png");
            await page.Keyboard.PressAsync("Enter");
            await Expect(page.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
            await Expect(page.Locator("#response-A .version")).ToHaveTextAsync($"model: {shown[0].ModelVersion}");
            await Expect(page.Locator("#response-B .version")).ToHaveTextAsync($"model: {shown[1].ModelVersion}");
            var stored = Assert.Single(await Stored(item.Id));
            Assert.Equal(n == 0 ? PairwiseChoice.First : PairwiseChoice.Second, stored.Choice);
            Assert.Equal(shown, stored.Shown);
            await page.Keyboard.PressAsync("Enter");
            await Expect(page.Locator($"#work[data-item='{itemId}']")).ToHaveCountAsync(0);
        }
        await Expect(page.Locator("#empty")).ToBeVisibleAsync();
        await Expect(page.Locator("#progress")).ToHaveTextAsync("2 done / 0 queue");
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task RankByDragAndByKeys()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Rank, 1, responseCount: 4);
        var page = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(page, task.Id);
        var cards = page.Locator("#ranking li");
        await Expect(cards).ToHaveCountAsync(4);
        async Task<int[]> Order() => [.. (await cards.EvaluateAllAsync<string[]>("li => li.map(x => x.dataset.shown)")).Select(int.Parse)];
        var before = await Order();
        // Drag the last response to the top.
        await cards.Nth(3).DragToAsync(cards.Nth(0));
        var dragged = await Order();
        Assert.Equal([before[3], before[0], before[1], before[2]], dragged);
        // Keys: select position 2, move it down twice (to the bottom); Tab selects the next one, ↑ moves it up.
        await page.Keyboard.PressAsync("2");
        await page.Keyboard.PressAsync("ArrowDown");
        await page.Keyboard.PressAsync("ArrowDown");
        var keyed = await Order();
        Assert.Equal([dragged[0], dragged[2], dragged[3], dragged[1]], keyed);
        await page.Keyboard.PressAsync("1");
        await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.PressAsync("ArrowUp");
        var final = await Order();
        Assert.Equal([keyed[1], keyed[0], keyed[2], keyed[3]], final);
        await StudioFixture.ScreenshotAsync(page, "studio-rank.png");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
        var stored = Assert.Single(await Stored(items[0].Id));
        Assert.Equal(final, stored.Ranking);
        Assert.Equal(BlindOrder.ShownResponses(items[0], JudgementKind.Rank, StudioFixture.First), stored.Shown);
        // The best-ranked response is the one at the top of the list.
        Assert.Equal(stored.Shown[final[0]].Text, await cards.Nth(0).Locator("pre").InnerTextAsync());
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task RateWithTheRubricShown()
    {
        string rubric = "1: wrong\n2: mostly wrong\n3: partly right\n4: right but long\n5: right and short";
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Rating, 1, responseCount: 1, rubric: rubric);
        var page = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(page, task.Id);
        await Expect(page.Locator("#rubric li")).ToHaveCountAsync(5);
        await Expect(page.Locator("#rubric li").Nth(3)).ToContainTextAsync("4: right but long");
        await page.Keyboard.PressAsync("4");
        await Expect(page.Locator("#rubric li.on")).ToContainTextAsync("right but long");
        await StudioFixture.ScreenshotAsync(page, "studio-rate.png");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#response .version")).ToHaveTextAsync("model: v1");
        Assert.Equal(4, Assert.Single(await Stored(items[0].Id)).Rating);
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task CorrectInTheEditorAndSubmitWithCtrlS()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Correction, 1, responseCount: 1, response: (_, _) => "The capital of France is Lyon.");
        var page = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(page, task.Id);
        var editor = page.Locator("#correction");
        await Expect(editor).ToHaveValueAsync("The capital of France is Lyon.");
        await Expect(editor).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Control+A");
        await page.Keyboard.TypeAsync("The capital of France is Paris (1 + 2 = 3, g).");
        await StudioFixture.ScreenshotAsync(page, "studio-correct.png");
        await page.Keyboard.PressAsync("Control+s");
        await Expect(page.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
        var stored = Assert.Single(await Stored(items[0].Id));
        Assert.Equal("The capital of France is Paris (1 + 2 = 3, g).", stored.Correction);
        Assert.Equal("The capital of France is Lyon.", Assert.Single(stored.Shown).Text);
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task ThumbsWithPlusAndMinus()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Thumbs, 2, responseCount: 1);
        var page = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(page, task.Id);
        await page.Keyboard.PressAsync("+");
        await Expect(page.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#status")).ToHaveTextAsync("");
        await page.Keyboard.PressAsync("-");
        await Expect(page.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
        await StudioFixture.ScreenshotAsync(page, "studio-thumbs.png");
        Assert.True(Assert.Single(await Stored(items[0].Id)).ThumbsUp);
        Assert.False(Assert.Single(await Stored(items[1].Id)).ThumbsUp);
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task ModelOutputIsShownAsText()
    {
        const string payload = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
        var (task, _) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1, response: (_, r) => r == 0 ? payload : "<b>bold?</b>");
        var page = await studio.LoginAsync(StudioFixture.Second);
        await OpenWithKeysAsync(page, task.Id);
        await Expect(page.Locator("#work")).ToContainTextAsync(payload);
        await Expect(page.Locator("#work")).ToContainTextAsync("<b>bold?</b>");
        Assert.Equal(0, await page.Locator("#work img, #work script, #work b").CountAsync());
        Assert.Equal("undefined", await page.EvaluateAsync<string>("typeof window.__pwned"));
        await StudioFixture.ScreenshotAsync(page, "studio-script-as-text.png");
        await studio.CloseAsync(page);
    }

    [SkippableFact]
    public async Task SecondAnnotatorCannotSeeTheFirstOnesVotes()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 1, overlap: 2);
        var first = await studio.LoginAsync(StudioFixture.First);
        await OpenWithKeysAsync(first, task.Id);
        await first.Keyboard.PressAsync("4");
        await first.Keyboard.PressAsync("Enter");
        await Expect(first.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
        Assert.Equal(PairwiseChoice.BothBad, Assert.Single(await Stored(items[0].Id)).Choice);

        var second = await studio.LoginAsync(StudioFixture.Second);
        await Expect(second.Locator("nav")).Not.ToContainTextAsync("Leaderboard");
        await OpenWithKeysAsync(second, task.Id);
        Assert.Equal(items[0].Id, await second.Locator("#work").GetAttributeAsync("data-item"));
        Assert.Equal(0, await second.Locator(".chosen, button.on").CountAsync());
        string text = await second.Locator("main").InnerTextAsync();
        Assert.DoesNotContain(StudioFixture.First, text);
        Assert.DoesNotContain("model: v", text);
        await second.GotoAsync(studio.StudioAddress.AbsoluteUri + $"#/owner/{task.Id}");
        await Expect(second.Locator("#forbidden")).ToBeVisibleAsync();
        await StudioFixture.ScreenshotAsync(second, "studio-annotator-forbidden.png");
        // The browser's own session asking the API directly gets nothing more.
        var judgements = await second.EvaluateAsync<int>($"fetch('/studio/api/tasks/{task.Id}/judgements').then(r => r.status)");
        Assert.Equal((int)HttpStatusCode.Forbidden, judgements);
        var mine = await second.EvaluateAsync<string>($"fetch('/studio/api/tasks/{task.Id}/mine').then(r => r.text())");
        Assert.Empty(JsonNode.Parse(mine)!.AsArray());
        await studio.CloseAsync(first);
        await studio.CloseAsync(second);
    }

    [SkippableFact]
    public async Task OwnerSeesAgreementUpdateLeaderboardAndExports()
    {
        var (task, items) = await studio.AddTaskAsync(JudgementKind.Pairwise, 2, overlap: 2);
        // The first annotator prefers v2 on both items (through the API).
        var (client, csrf) = await studio.ApiLoginAsync(StudioFixture.First);
        using (client)
            foreach (var item in items)
            {
                var shown = BlindOrder.ShownResponses(item, JudgementKind.Pairwise, StudioFixture.First);
                using var vote = await StudioFixture.PostAsync(client, $"/studio/api/tasks/{task.Id}/items/{item.Id}",
                    new { choice = shown[0].ModelVersion == "v2" ? "First" : "Second" }, csrf);
                Assert.Equal(HttpStatusCode.OK, vote.StatusCode);
            }
        var owner = await studio.LoginAsync(StudioFixture.Owner);
        await owner.Keyboard.PressAsync("l");
        var expected = BradleyTerry.Leaderboard(await studio.Store.ListJudgementsAsync(new JudgementQuery(), CancellationToken.None));
        var rows = owner.Locator("#leaderboard tbody tr");
        await Expect(rows).ToHaveCountAsync(expected.Count);
        await Expect(rows.First.Locator("td").Nth(1)).ToHaveTextAsync(expected[0].Version);
        await Expect(rows.First.Locator("td").Nth(2)).ToHaveTextAsync(expected[0].Rating.ToString("F0", System.Globalization.CultureInfo.InvariantCulture));
        await StudioFixture.ScreenshotAsync(owner, "studio-leaderboard.png");
        await owner.GotoAsync(studio.StudioAddress.AbsoluteUri + $"#/owner/{task.Id}");
        await Expect(owner.Locator("#stat-items .value")).ToHaveTextAsync("0");

        // The second annotator agrees on the first item (v2) and disagrees on the second (v1), in the browser.
        var second = await studio.LoginAsync(StudioFixture.Second);
        await OpenWithKeysAsync(second, task.Id);
        for (int n = 0; n < 2; n++)
        {
            string itemId = (await second.Locator("#work").GetAttributeAsync("data-item"))!;
            Assert.Equal(items[n].Id, itemId);
            var item = items[n];
            var shown = BlindOrder.ShownResponses(item, JudgementKind.Pairwise, StudioFixture.Second);
            string wanted = n == 0 ? "v2" : "v1";
            await second.Keyboard.PressAsync(shown[0].ModelVersion == wanted ? "1" : "2");
            await second.Keyboard.PressAsync("Enter");
            await Expect(second.Locator("#status")).ToHaveTextAsync("Saved. Enter: next item.");
            if (n == 0)
            {
                // The owner's page refreshes by itself.
                await Expect(owner.Locator("#stat-items .value")).ToHaveTextAsync("1");
                await Expect(owner.Locator("#stat-percent .value")).ToHaveTextAsync("100.0 %");
                await second.Keyboard.PressAsync("Enter");
                await Expect(second.Locator($"#work[data-item='{itemId}']")).ToHaveCountAsync(0);
            }
        }
        await Expect(owner.Locator("#stat-items .value")).ToHaveTextAsync("2");
        await Expect(owner.Locator("#stat-percent .value")).ToHaveTextAsync("50.0 %");
        await StudioFixture.ScreenshotAsync(owner, "studio-agreement.png");

        // Export with at least 2 agreeing: only the first item, v2's answer chosen over v1's.
        await owner.Locator("#min-agree").FillAsync("2");
        var download = await owner.RunAndWaitForDownloadAsync(() => owner.Locator("#export").ClickAsync());
        string content = await File.ReadAllTextAsync((await download.PathAsync())!);
        var line = JsonNode.Parse(Assert.Single(content.Split('\n', StringSplitOptions.RemoveEmptyEntries)))!;
        Assert.Equal(items[0].Responses.Single(r => r.ModelVersion == "v2").Text, (string)line["chosen"]!);
        Assert.Equal(items[0].Responses.Single(r => r.ModelVersion == "v1").Text, (string)line["rejected"]!);
        await studio.CloseAsync(owner);
        await studio.CloseAsync(second);
    }
}
