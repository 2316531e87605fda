using Loom.Text;

namespace Loom.Tests.Text;

public class FeedbackDatasetsTests
{
    static string Write(params string[] lines)
    {
        string path = Path.Combine(Path.GetTempPath(), $"loom-feedback-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void ReadsEveryFormatIntoExamplesAndPairs()
    {
        string path = Write(
            """{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}]}""",
            """{"prompt":"Capital of France?","completion":"Paris"}""",
            """{"prompt":"Say hi","chosen":"Hi!","rejected":"Go away."}""",
            """{"prompt":"Pick","responses":["a","b","c"],"ranking":[2,0,1]}""",
            """{"prompt":"Rate me","response":"good","rating":5}""",
            """{"prompt":"Rate me","response":"bad","rating":1}""",
            """{"prompt":"3+4?","response":"8","corrected":"7"}""");
        var data = FeedbackDatasets.Read(path);
        Assert.Empty(data.Skipped);
        Assert.Equal(3, data.Supervised.Count);
        Assert.Equal("7", data.Supervised[2].Turns[^1].Content);
        // 1 comparison + 3 ranking pairs + 1 correction + 1 from ratings
        Assert.Equal(6, data.Pairs.Count);
        Assert.Contains(data.Pairs, p => p.Chosen == "c" && p.Rejected == "a");
        Assert.Contains(data.Pairs, p => p.Chosen == "c" && p.Rejected == "b");
        Assert.Contains(data.Pairs, p => p.Chosen == "a" && p.Rejected == "b");
        Assert.Contains(data.Pairs, p => p.Chosen == "7" && p.Rejected == "8");
        Assert.Contains(data.Pairs, p => p.Chosen == "good" && p.Rejected == "bad");
    }

    [Fact]
    public void BadLinesAreSkippedWithFileAndLineOrStopInStrictMode()
    {
        string path = Write(
            """{"prompt":"ok","completion":"fine"}""",
            """{"prompt":"x","chosen":"y"}""",
            """not json""",
            """{"prompt":"p","responses":["a","b"],"ranking":[0,5]}""");
        var data = FeedbackDatasets.Read(path);
        Assert.Single(data.Supervised);
        Assert.Equal(3, data.Skipped.Count);
        Assert.StartsWith($"{path}:2: missing field 'rejected'", data.Skipped[0]);
        Assert.StartsWith($"{path}:3: malformed JSON", data.Skipped[1]);
        Assert.StartsWith($"{path}:4:", data.Skipped[2]);
        var error = Assert.Throws<FormatException>(() => FeedbackDatasets.Read(path, strict: true));
        Assert.StartsWith($"{path}:2:", error.Message);
    }
}
