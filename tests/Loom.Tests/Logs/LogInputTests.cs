using System.Text;
using Loom.Logs;

namespace Loom.Tests.Logs;

public class LogInputTests
{
    static List<LogLine> Split(byte[] bytes, int maxLineBytes = 1 << 20) => [.. LogLineSplitter.ReadStream(new MemoryStream(bytes), maxLineBytes)];

    [Fact]
    public void BinaryJunkIsKeptAndNamed()
    {
        var junk = new byte[300];
        new Random(3).NextBytes(junk);
        junk = [.. junk.Where(b => b != (byte)'\n')];
        var lines = Split([.. "ok line\n"u8, .. junk, .. "\nlast"u8]);
        Assert.Equal(3, lines.Count);
        Assert.Equal("ok line", lines[0].Text);
        Assert.Contains("binary", lines[1].Issue);
        Assert.Equal("last", lines[2].Text);
        var parser = new LogParser();
        Assert.All(lines, l => parser.Parse(l));
        Assert.Equal(3, parser.Miner.Templates.Sum(t => t.Count));
    }

    [Fact]
    public void TenMegabyteLineIsCutWithANoteAndTheNextLineSurvives()
    {
        var big = new byte[10 << 20];
        Array.Fill(big, (byte)'x');
        var lines = Split([.. big, .. "\nafter 1\n"u8], 1 << 16);
        Assert.Equal(2, lines.Count);
        Assert.Equal(1 << 16, lines[0].Text.Length);
        Assert.Contains($"line of {10 << 20} bytes cut", lines[0].Issue);
        Assert.Equal("after 1", lines[1].Text);
        Assert.Equal(2, lines[1].Number);
    }

    [Fact]
    public void InvalidUtf8BecomesReplacementCharacters()
    {
        var lines = Split([.. Encoding.ASCII.GetBytes("bad "), 0xff, 0xfe, .. Encoding.ASCII.GetBytes(" here\n"), .. "good é\n"u8]);
        Assert.Equal(2, lines.Count);
        Assert.Equal("bad \uFFFD\uFFFD here", lines[0].Text);
        Assert.Contains("invalid UTF-8", lines[0].Issue);
        Assert.Equal("good é", lines[1].Text);
        Assert.Null(lines[1].Issue);
    }

    [Fact]
    public void NoTimestampStillParsesAndAPresetMismatchIsCounted()
    {
        var generic = new LogParser();
        var a = generic.Parse(new LogLine(1, "worker 7 started job 12", null));
        var b = generic.Parse(new LogLine(2, "2024-01-02 10:11:12 INFO worker 9 started job 4", null));
        Assert.Equal(a.TemplateId, b.TemplateId);
        Assert.Equal("worker <*> started job <*>", b.Template);

        var hdfs = new LogParser(new LogParserOptions { Preset = "HDFS" });
        var parsed = hdfs.Parse(new LogLine(1, "no header at all here", null));
        Assert.Equal(1, hdfs.UnmatchedHeaders);
        Assert.Equal("no header at all here", parsed.Content);
        Assert.Contains("header does not match", parsed.Issue);
    }

    [Fact]
    public void UnknownPresetNamesTheOption()
    {
        var e = Assert.Throws<ArgumentException>(() => new LogParser(new LogParserOptions { Preset = "Nope" }));
        Assert.Contains("LogParserOptions.Preset", e.Message);
    }
}
