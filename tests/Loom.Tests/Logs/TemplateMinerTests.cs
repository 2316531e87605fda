using Loom.Logs;

namespace Loom.Tests.Logs;

public class TemplateMinerTests
{
    [Fact]
    public void GroupsMasksAndExtractsParameters()
    {
        var miner = new TemplateMiner();
        var a = miner.Add("Connection from 10.0.0.1:22 closed after 15 ms");
        var b = miner.Add("Connection from 192.168.1.7:80 closed after 3 ms");
        var c = miner.Add("Disk /dev/sda1 is full");
        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal("Connection from <*> closed after <*> ms", a.Text);
        Assert.Equal(["192.168.1.7:80", "3"], a.Parameters("Connection from 192.168.1.7:80 closed after 3 ms"));
        Assert.Equal(2, a.Count);
    }

    [Fact]
    public void DifferentWordsMakeDifferentTemplatesAndSimilarOnesMerge()
    {
        var miner = new TemplateMiner(new TemplateMinerOptions { Similarity = 0.5 });
        var open = miner.Add("session opened for user alice");
        var open2 = miner.Add("session opened for user bob");
        var fail = miner.Add("disk write failed badly");
        Assert.Same(open, open2);
        Assert.Equal("session opened for user <*>", open.Text);
        Assert.NotSame(open, fail);
        Assert.Equal(2, miner.Templates.Count);
    }

    [Fact]
    public void MasksInsideTokensAndHexAndCustomPatterns()
    {
        var miner = new TemplateMiner(new TemplateMinerOptions { Masks = [@"req-[0-9a-f-]+", .. Masking.Default] });
        var t = miner.Add("audit(1122.77:2) at 0x7fed806e for req-38101a0b-2096");
        Assert.Equal("audit(<*>.<*>:<*>) at <*> for <*>", t.Text);
        Assert.Same(t, miner.Add("audit(9.1:30) at 0xffff for req-aa11-22"));
    }

    [Fact]
    public void BadOptionsNameTheField()
    {
        var e = Assert.Throws<ArgumentException>(() => new TemplateMiner(new TemplateMinerOptions { Similarity = 2 }));
        Assert.Contains("TemplateMinerOptions.Similarity", e.Message);
        e = Assert.Throws<ArgumentException>(() => new TemplateMiner(new TemplateMinerOptions { Masks = ["("] }));
        Assert.Contains("TemplateMinerOptions.Masks[0]", e.Message);
    }

    [Theory]
    [InlineData("HDFS", 0.9975)]   // Drain's published figure
    [InlineData("Linux", 0.69)]    // a hard system
    [InlineData("OpenStack", 0.7325)]
    [InlineData("Windows", 0.997)] // its quoted registry paths are masked
    public void GroupingAccuracyOnLoghubIsAtLeastDrains(string system, double drain)
    {
        var parser = new LogParser(new LogParserOptions { Preset = system });
        var ids = parser.ParseFile(LogData.Loghub(system)).Select(p => p.TemplateId).ToList();
        var truth = GroupingAccuracy.ReadLoghubTruth(LogData.Loghub(system) + "_structured.csv");
        double accuracy = GroupingAccuracy.Compute(truth, ids);
        Assert.True(accuracy >= drain, $"{system}: {accuracy:F4} < Drain's {drain}");
        Assert.Equal(0, parser.UnmatchedHeaders);
    }

    [Fact]
    public void GroupingAccuracyCountsOnlyExactGroups()
    {
        Assert.Equal(1.0, GroupingAccuracy.Compute(["a", "a", "b"], [7, 7, 3]));
        Assert.Equal(1.0 / 3, GroupingAccuracy.Compute(["a", "a", "b"], [1, 2, 3]), 9);
        Assert.Equal(0.0, GroupingAccuracy.Compute(["a", "a", "b"], [1, 1, 1]));
    }
}
