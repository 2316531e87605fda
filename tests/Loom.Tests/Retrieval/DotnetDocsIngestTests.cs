using System.Diagnostics;
using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

/// <summary>`loom ingest --index DIR dotnet-docs` as a user runs it, over a small SDK found through DOTNET_ROOT.</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class DotnetDocsIngestTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-docs-ingest-").FullName;

    static (int ExitCode, string Output) RunCli(string sdkRoot, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(Loom.Cli.Program).Assembly.Location);
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["DOTNET_ROOT"] = sdkRoot;
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.Result);
    }

    [Fact]
    public async Task EveryMemberBecomesADocumentNamedByItsIdWithItsTitleFirst()
    {
        string sdk = Path.Combine(folder, "sdk");
        string reference = Directory.CreateDirectory(Path.Combine(sdk, "packs", "Fake.App.Ref", "1.0.0", "ref", "net10.0")).FullName;
        File.WriteAllText(Path.Combine(reference, "Fake.xml"), """
            <?xml version="1.0" encoding="utf-8"?>
            <doc><assembly><name>Fake</name></assembly><members>
              <member name="T:Fake.Kettle"><summary>Boils water for tea.</summary></member>
              <member name="M:Fake.Kettle.Pour(System.Int32)"><summary>Pours the given amount into a cup.</summary><param name="millilitres">How much to pour.</param></member>
              <member name="P:Fake.Kettle.Temperature"><summary>Gets the water temperature in degrees.</summary></member>
              <member name="M:Fake.Kettle.Clean"><inheritdoc/></member>
            </members></doc>
            """);
        string index = Path.Combine(folder, "index");

        var (code, output) = RunCli(sdk, "ingest", "--index", index, "--embedder", "hashing", "--tag", "pack=fake", "dotnet-docs");
        Assert.True(code == 0, output);
        Assert.Contains("added 3", output);

        using var opened = await RetrievalIndex.OpenAsync(index, null, null, create: false, default);
        Assert.Equal(["M:Fake.Kettle.Pour(System.Int32)", "P:Fake.Kettle.Temperature", "T:Fake.Kettle"],
            (await opened.Store.ListDocumentsAsync(null, default)).Select(document => document.SourceId));
        var hit = Assert.Single(await opened.Store.SearchTextAsync("pour cup", 5, new SearchFilter(new Dictionary<string, string> { ["pack"] = "fake" }), default));
        Assert.Equal("M:Fake.Kettle.Pour(System.Int32)", hit.SourceId);
        Assert.StartsWith("Fake.Kettle.Pour(Int32)\n", hit.Text);

        // A second run finds nothing changed.
        opened.Dispose();
        (code, output) = RunCli(sdk, "ingest", "--index", index, "--tag", "pack=fake", "dotnet-docs");
        Assert.True(code == 0, output);
        Assert.Contains("unchanged 3", output);
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
