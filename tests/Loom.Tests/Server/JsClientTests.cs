using System.Diagnostics;

namespace Loom.Tests.Server;

/// <summary>
/// The official `openai` npm client and LangChain.js against the server, each case run by node from tests/clients/acceptance.mjs
/// (installed by `npm ci` there; .ci/run does it). Without node or the installed packages the cases skip, except under CI=true
/// where that is a failure.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public class JsClientTests(ClientFixture server) : IClassFixture<ClientFixture>
{
    [SkippableFact] public Task Chat() => Run("chat");
    [SkippableFact] public Task Streaming() => Run("stream");
    [SkippableFact] public Task Logprobs() => Run("logprobs");
    [SkippableFact] public Task Base64EmbeddingsEqualFloatEmbeddings() => Run("embeddings");
    [SkippableFact] public Task JsonSchema() => Run("json_schema");
    [SkippableFact] public Task ToolsRoundTripWithAToolMessage() => Run("tools");
    [SkippableFact] public Task LangChainWithStructuredOutput() => Run("langchain_structured");
    [SkippableFact] public Task LangChainBindTools() => Run("langchain_tools");

    async Task Run(string name)
    {
        string folder = ClientsFolder();
        string? missing = !File.Exists(Path.Combine(folder, "node_modules", "openai", "package.json")) ? $"{folder}/node_modules is not installed (run npm ci there)"
            : !NodeRuns() ? "node is not installed" : null;
        if (missing is not null)
        {
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", $"JS client tests cannot run under CI: {missing}");
            Skip.If(true, $"JS client tests skipped: {missing}");
        }
        var start = new ProcessStartInfo("node") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("acceptance.mjs");
        start.ArgumentList.Add(name);
        start.Environment["LOOM_BASE_URL"] = new Uri(server.BaseAddress, "/v1").ToString();
        start.Environment["LOOM_API_KEY"] = ClientFixture.ApiKey;
        start.Environment["LOOM_MODEL"] = ClientFixture.ModelName;
        start.Environment["LOOM_EMBEDDING_MODEL"] = "all-MiniLM-L6-v2";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }
        Assert.True(process.ExitCode == 0, $"node acceptance.mjs {name} exited {process.ExitCode}:\n{await errors}\n{await output}");
    }

    static bool NodeRuns()
    {
        try
        {
            using var node = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true, UseShellExecute = false })!;
            node.WaitForExit(10_000);
            return node.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    /// <summary>tests/clients, found by walking up from the test assembly to the repository root.</summary>
    static string ClientsFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "tests", "clients", "package.json"))) return Path.Combine(dir.FullName, "tests", "clients");
        throw new DirectoryNotFoundException("tests/clients/package.json not found above " + AppContext.BaseDirectory);
    }
}
