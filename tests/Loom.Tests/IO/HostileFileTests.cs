using System.Runtime.InteropServices;
using System.Text;
using Loom.IO;
using Loom.Retrieval;
using Loom.Text;

namespace Loom.Tests.IO;

/// <summary>
/// Files that are hostile by accident or design (issue 18 items 7 and 8): HTML nested 100,000 levels deep, a tuning
/// file whose bytes are not UTF-8, and a file whose name is not UTF-8.
/// </summary>
public sealed class HostileFileTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-hostile-").FullName;

    public void Dispose()
    {
        // A file whose name is not UTF-8 cannot be deleted through .NET's path strings; unlink it by its bytes first.
        foreach (var raw in rawNames) Unlink(raw);
        Directory.Delete(folder, recursive: true);
    }

    readonly List<byte[]> rawNames = [];

    [Fact]
    public void HtmlNestedAHundredThousandLevelsIsReadAsPlainText()
    {
        string path = Path.Combine(folder, "deep.html");
        var html = new StringBuilder("<html><head><title>Deep</title></head><body><h1>Top</h1>");
        const int levels = 100_000;
        for (int i = 0; i < levels; i++) html.Append("<div>");
        html.Append("<p>bottom words &amp; more</p>");
        for (int i = 0; i < levels; i++) html.Append("</div>");
        html.Append("<script>var hidden = 1;</script></body></html>");
        File.WriteAllText(path, html.ToString());

        var result = FileReader.Read(path, new Dictionary<string, string>());
        Assert.Null(result.SkipReason);
        var document = result.Document!;
        Assert.Equal("Top bottom words & more", document.Text.Trim());
        Assert.Equal("Deep", document.Title);
        // The depth the linear pre-scan measured, and why the document was not parsed into a tree.
        Assert.Equal($"nested {levels + 2:N0} levels, over the {FileReader.MaxHtmlDepth:N0}-level limit: read as plain text",
            document.Metadata["html"]);
    }

    [Fact]
    public void HtmlUnderTheDepthLimitKeepsItsStructure()
    {
        string path = Path.Combine(folder, "shallow.html");
        var html = new StringBuilder("<html><body><h2>Leave</h2>");
        for (int i = 0; i < 100; i++) html.Append("<div>");
        html.Append("<p>25 days</p>");
        for (int i = 0; i < 100; i++) html.Append("</div>");
        // Elements whose end tag may be left out do not count as nesting: a long list of unclosed paragraphs is flat.
        for (int i = 0; i < 2000; i++) html.Append("<p>more");
        html.Append("</body></html>");
        File.WriteAllText(path, html.ToString());
        var document = FileReader.Read(path, new Dictionary<string, string>()).Document!;
        Assert.StartsWith("## Leave\n\n25 days\n\nmore\n\n", document.Text);
        Assert.False(document.Metadata.ContainsKey("html"));
    }

    [Fact]
    public void InvalidUtf8InATuningFileIsAnErrorNamingTheFileAndLine()
    {
        string path = Path.Combine(folder, "sft.jsonl");
        byte[] good = Encoding.UTF8.GetBytes("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n");
        byte[] bad = [.. Encoding.UTF8.GetBytes("{\"messages\":[{\"role\":\"user\",\"content\":\"caf"), 0xE9, .. Encoding.UTF8.GetBytes("\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}\n")];
        File.WriteAllBytes(path, [.. good, .. good, .. bad, .. good]);
        foreach (bool strict in new[] { false, true })
        {
            var error = Assert.Throws<InvalidDataException>(() => FeedbackDatasets.Read(path, strict));
            Assert.StartsWith($"{path}:3: ", error.Message);
            Assert.Contains("UTF-8", error.Message);
            Assert.Contains("0xE9", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        string prompts = Path.Combine(folder, "prompts.jsonl");
        File.WriteAllBytes(prompts, [.. Encoding.UTF8.GetBytes("{\"prompt\":\"ok\"}\n{\"prompt\":\"a"), 0xFF, .. Encoding.UTF8.GetBytes("\"}\n")]);
        var promptError = Assert.Throws<InvalidDataException>(() => FeedbackDatasets.ReadPrompts(prompts, []));
        Assert.StartsWith($"{prompts}:2: ", promptError.Message);
        // Valid UTF-8 (an accent, an emoji, a byte-order mark) is read as before.
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("{\"messages\":[{\"role\":\"user\",\"content\":\"café 🙂\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}\n")]);
        var data = FeedbackDatasets.Read(path, strict: true);
        Assert.Equal("café 🙂", data.Supervised.Single().Turns[0].Content);
    }

    [SkippableFact]
    public void AFileWhoseNameIsNotUtf8IsReportedByItsEscapedNameAndTheReason()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "raw byte file names are a Linux case");
        File.WriteAllText(Path.Combine(folder, "a.txt"), "a readable file");
        byte[] name = [(byte)'b', 0xFF, (byte)'.', (byte)'t', (byte)'x', (byte)'t'];
        CreateRaw(name, "unreadable by name");

        var walked = FileWalker.Walk(folder).ToList();
        Assert.Equal(2, walked.Count);
        Assert.Equal(Path.Combine(folder, "a.txt"), walked[0].Path);
        Assert.Null(walked[0].SkipReason);
        var odd = walked[1];
        Assert.Equal(Path.Combine(folder, "b\\xFF.txt"), odd.Path);
        Assert.NotNull(odd.SkipReason);
        Assert.Contains("not valid UTF-8", odd.SkipReason);
        Assert.DoesNotContain("not found", odd.SkipReason);
        Assert.DoesNotContain("FIFO", odd.SkipReason);
        // Given directly (a shell passes the raw bytes; .NET decodes them with U+FFFD), the reader gives the same reason.
        var direct = FileReader.Read(Path.Combine(folder, "b\uFFFD.txt"), new Dictionary<string, string>());
        Assert.Contains("not valid UTF-8", direct.SkipReason);
    }

    void CreateRaw(byte[] name, string content)
    {
        byte[] path = [.. Encoding.UTF8.GetBytes(folder + "/"), .. name];
        rawNames.Add(path);
        int fd = Open([.. path, 0], 0x41 /* O_WRONLY | O_CREAT */, Convert.ToInt32("644", 8));
        Assert.True(fd >= 0, $"open failed: errno {Marshal.GetLastPInvokeError()}");
        byte[] bytes = Encoding.UTF8.GetBytes(content);
        Assert.Equal(bytes.Length, (int)Write(fd, bytes, bytes.Length));
        Close(fd);
    }

    static void Unlink(byte[] path) => UnlinkRaw([.. path, 0]);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    static extern int Open(byte[] path, int flags, int mode);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    static extern nint Write(int fd, byte[] buffer, nint count);

    [DllImport("libc", EntryPoint = "close")]
    static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "unlink")]
    static extern int UnlinkRaw(byte[] path);
}
