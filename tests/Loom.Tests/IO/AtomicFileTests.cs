using Loom.Evaluation;
using Loom.IO;

namespace Loom.Tests.IO;

public class AtomicFileTests
{
    [Fact]
    public void AFailedWriteLeavesTheOldFileAndNoTemporary()
    {
        string folder = Directory.CreateTempSubdirectory("loom-atomic-").FullName;
        string path = Path.Combine(folder, "data.txt");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write("new and partial"u8);
            throw new IOException("No space left on device");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["data.txt"], Directory.GetFiles(folder).Select(Path.GetFileName));
    }

    [Fact]
    public void ReportEscapesTextAndInlinesImages()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("loom-report-").FullName, "report.html");
        new HtmlReport("Run <1>")
            .Table(["metric", "value"], [["loss", "1.5 < 2"]])
            .Image([0x89, 0x50, 0x4E, 0x47], "curve")
            .Save(path);
        string html = File.ReadAllText(path);
        Assert.Contains("<title>Run &lt;1&gt;</title>", html);
        Assert.Contains("<td>1.5 &lt; 2</td>", html);
        Assert.Contains("data:image/png;base64,iVBORw==", html);
    }
}
