using Microsoft.Playwright;

namespace Loom.Tests.Evaluation;

/// <summary>
/// Opens an HTML report in headless Chromium (the Debian package at /usr/bin/chromium; Playwright cannot download
/// browsers here) at 1280 px and measures what a reader would see: the page's scroll width and, per metric row
/// (tr.metric), whether its explanation cell (td.explain) holds text.
/// </summary>
internal static class ReportBrowser
{
    public const string Chromium = "/usr/bin/chromium";

    /// <summary>Skips the calling test when Chromium is absent locally; in CI (CI=true) its absence fails the test.</summary>
    public static void RequireChromium()
    {
        bool ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (ci) Assert.True(File.Exists(Chromium), $"{Chromium} is missing: .ci/run installs the chromium package");
        Skip.IfNot(File.Exists(Chromium), $"{Chromium} is not installed (apt-get install chromium)");
    }

    public sealed record Measure(int ScrollWidth, int MetricRows, int ExplainedRows, int Tables);

    public static async Task<Measure> OpenAsync(string htmlPath, string? screenshotPath = null)
    {
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        await page.GotoAsync(new Uri(Path.GetFullPath(htmlPath)).AbsoluteUri);
        int scrollWidth = await page.EvaluateAsync<int>("document.documentElement.scrollWidth");
        int rows = await page.EvaluateAsync<int>("document.querySelectorAll('tr.metric').length");
        int explained = await page.EvaluateAsync<int>(
            "[...document.querySelectorAll('tr.metric')].filter(r => (r.querySelector('td.explain')?.textContent ?? '').trim().length > 10).length");
        int tables = await page.EvaluateAsync<int>("document.querySelectorAll('table').length");
        if (screenshotPath is not null) await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshotPath, FullPage = true });
        return new Measure(scrollWidth, rows, explained, tables);
    }
}
