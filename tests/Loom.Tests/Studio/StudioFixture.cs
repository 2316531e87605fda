using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Loom.Server;
using Loom.Server.Studio;
using Loom.Serving.Feedback;
using Loom.Tests.Evaluation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;

namespace Loom.Tests.Studio;

[CollectionDefinition(Name)]
public sealed class StudioCollection : ICollectionFixture<StudioFixture>
{
    public const string Name = "Studio";
}

/// <summary>
/// One studio over a real SQLite feedback store in a temp folder, on a free loopback port, with an owner and two
/// annotators; one headless Chromium (started on first use) for the browser tests. Each test adds its own task.
/// </summary>
public sealed class StudioFixture : IAsyncLifetime
{
    public const string Owner = "olga";
    public const string First = "ann";
    public const string Second = "bob";

    WebApplication? app;
    IPlaywright? playwright;
    IBrowser? browser;
    int taskCount;
    readonly System.Runtime.CompilerServices.ConditionalWeakTable<IPage, List<string>> pageErrors = [];

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "loom-studio-" + Guid.NewGuid().ToString("N")[..8]);
    public IFeedbackStore Store { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;
    public Uri StudioAddress => new(BaseAddress, StudioApp.Path);

    /// <summary>Where browser tests save their screenshots (the test output folder).</summary>
    public static string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots");

    public static string Password(string name) => name + "-correct-horse";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Folder);
        Store = await FeedbackStores.OpenAsync(Path.Combine(Folder, "feedback.db"), CancellationToken.None);
        await Store.SaveAnnotatorAsync(new Annotator(Owner, AnnotatorRole.Owner), PasswordHasher.Hash(Password(Owner)), CancellationToken.None);
        await Store.SaveAnnotatorAsync(new Annotator(First, AnnotatorRole.Annotator), PasswordHasher.Hash(Password(First)), CancellationToken.None);
        await Store.SaveAnnotatorAsync(new Annotator(Second, AnnotatorRole.Annotator), PasswordHasher.Hash(Password(Second)), CancellationToken.None);
        app = StudioApp.Build(Store, new StudioOptions { Port = 0 });
        await app.StartAsync();
        BaseAddress = LoomServer.Addresses(app)[0];
    }

    public async Task DisposeAsync()
    {
        if (browser is not null) await browser.DisposeAsync();
        playwright?.Dispose();
        if (app is not null) await app.DisposeAsync();
        Store?.Dispose();
        Directory.Delete(Folder, recursive: true);
    }

    /// <summary>
    /// A new task with <paramref name="itemCount"/> items, each with <paramref name="responseCount"/> responses from
    /// model versions v1, v2, …; <paramref name="response"/> (item, response) gives a response's text.
    /// </summary>
    public async Task<(FeedbackTask Task, IReadOnlyList<FeedbackItem> Items)> AddTaskAsync(JudgementKind kind, int itemCount, int overlap = 1,
        int responseCount = 2, Func<int, int, string>? response = null, string? rubric = null)
    {
        string id = $"{kind.ToString().ToLowerInvariant()}-{Interlocked.Increment(ref taskCount)}";
        var task = new FeedbackTask
        {
            Id = id, Name = $"{kind} test {id}", Kind = kind, Overlap = overlap, Created = DateTimeOffset.UtcNow,
            Guidelines = "Prefer the answer that is correct and short.", Rubric = rubric,
        };
        await Store.SaveTaskAsync(task, CancellationToken.None);
        var items = Enumerable.Range(0, itemCount).Select(i => new FeedbackItem
        {
            Id = $"{id}-item-{i}", TaskId = id, Created = DateTimeOffset.UtcNow.AddSeconds(i), Source = $"prompts.jsonl:{i + 1}",
            Prompt = [new FeedbackMessage("user", $"Question {i} of {id}: what is the capital of France?")],
            Responses = [.. Enumerable.Range(0, responseCount).Select(r => new FeedbackResponse(response?.Invoke(i, r) ?? $"Answer {r} to question {i}: Paris, says model {r + 1}.", $"v{r + 1}"))],
        }).ToList();
        await Store.AddItemsAsync(items, CancellationToken.None);
        return (task, items);
    }

    /// <summary>A client with its own cookie jar, logged in through the API; gives its anti-forgery token.</summary>
    public async Task<(HttpClient Client, string Csrf)> ApiLoginAsync(string name)
    {
        var client = NewClient();
        string csrf = await SessionTokenAsync(client);
        using var login = new HttpRequestMessage(HttpMethod.Post, "/studio/api/login") { Content = JsonContent.Create(new { name, password = Password(name) }) };
        login.Headers.Add(StudioApp.CsrfHeader, csrf);
        using var response = await client.SendAsync(login);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (client, (string)body["csrf"]!);
    }

    public HttpClient NewClient() => new(new HttpClientHandler { UseCookies = true, CookieContainer = new CookieContainer() }) { BaseAddress = BaseAddress };

    public static async Task<string> SessionTokenAsync(HttpClient client)
    {
        var session = JsonNode.Parse(await client.GetStringAsync("/studio/api/session"))!;
        return (string)session["csrf"]!;
    }

    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string path, object body, string? csrf)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        if (csrf is not null) request.Headers.Add(StudioApp.CsrfHeader, csrf);
        return await client.SendAsync(request);
    }

    /// <summary>A fresh browser context (its own cookies), logged in as <paramref name="name"/> through the login form.</summary>
    public async Task<IPage> LoginAsync(string name)
    {
        ReportBrowser.RequireChromium();
        if (browser is null)
        {
            playwright = await Playwright.CreateAsync();
            browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ReportBrowser.Chromium, Headless = true,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
            });
        }
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 860 }, AcceptDownloads = true });
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        pageErrors.Add(page, errors);
        page.PageError += (_, message) => { lock (errors) errors.Add(message); };
        await page.GotoAsync(StudioAddress.AbsoluteUri);
        await page.Locator("#name").FillAsync(name);
        await page.Locator("#password").FillAsync(Password(name));
        await page.Locator("#password").PressAsync("Enter");
        await Assertions.Expect(page.Locator("#who")).ToContainTextAsync(name);
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Tasks");
        return page;
    }

    /// <summary>Closes the page's browser context; the page must have raised no script error.</summary>
    public async Task CloseAsync(IPage page)
    {
        await page.Context.CloseAsync();
        if (pageErrors.TryGetValue(page, out var errors))
            lock (errors) Assert.Empty(errors);
    }

    public static async Task ScreenshotAsync(IPage page, string name)
    {
        Directory.CreateDirectory(Screenshots);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name), FullPage = true });
    }
}
