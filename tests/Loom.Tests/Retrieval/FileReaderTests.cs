using Loom.Retrieval;
using UglyToad.PdfPig.Content;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;

namespace Loom.Tests.Retrieval;

public sealed class FileReaderTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-readers-").FullName;
    static readonly Dictionary<string, string> NoTags = [];

    string Write(string name, string content)
    {
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void HtmlBecomesHeadingsAndParagraphsWithoutScripts()
    {
        string path = Write("page.html", "<html><head><title>Cats</title><style>p{}</style></head><body><h1>Cats</h1><p>Cats  sleep\n a lot.</p><script>alert(1)</script><h2>Food</h2><ul><li>Fish</li><li>Mice</li></ul><pre>x = 1\ny = 2</pre></body></html>");
        var document = FileReader.Read(path, NoTags).Document!;
        Assert.Equal("Cats", document.Title);
        Assert.Equal("html", document.Kind);
        Assert.Equal("# Cats\n\nCats sleep a lot.\n\n## Food\n\nFish\n\nMice\n\n```\nx = 1\ny = 2\n```\n\n", document.Text);
        var chunks = new Chunker().Split(document.Text, isMarkdown: true);
        Assert.Equal("Cats > Food", chunks[^1].HeadingPath);
    }

    [Fact]
    public void CsvRowsBecomeColumnValueLinesWithQuotedFields()
    {
        string path = Write("people.csv", "id,name,note\n1,Ada,\"likes \"\"engines\"\", math\"\n2,Grace,\"multi\nline\"\n");
        var document = FileReader.Read(path, NoTags).Document!;
        Assert.Equal("id: 1\nname: Ada\nnote: likes \"engines\", math\n\nid: 2\nname: Grace\nnote: multi\nline\n\n", document.Text);
        Assert.Equal("2", document.Metadata["rows"]);
        Assert.Equal("malformed csv: line 2: unterminated quoted field", FileReader.Read(Write("bad.csv", "a,b\n1,\"open"), NoTags).SkipReason);
    }

    [Fact]
    public void JsonIsFlattenedToPaths()
    {
        string path = Write("service.json", "{\"name\":\"billing\",\"owners\":[{\"team\":\"payments\"}],\"port\":8080}");
        Assert.Equal("name: billing\nowners[0].team: payments\nport: 8080\n", FileReader.Read(path, NoTags).Document!.Text);
        var bad = FileReader.Read(Write("bad.json", "{\"name\": "), NoTags);
        Assert.Null(bad.Document);
        Assert.StartsWith("malformed json:", bad.SkipReason);
        var badLine = FileReader.Read(Write("bad.jsonl", "{\"a\":1}\n{oops}\n"), NoTags);
        Assert.StartsWith("malformed json: line 2:", badLine.SkipReason);
    }

    [Fact]
    public void SourceCodeIsFencedSoItChunksAsCode()
    {
        string path = Write("Program.cs", "class A\n{\n\n    void M() { }\n}\n");
        var document = FileReader.Read(path, NoTags).Document!;
        Assert.Equal("code", document.Kind);
        Assert.Equal("```cs\nclass A\n{\n\n    void M() { }\n}\n```", document.Text);
        Assert.Single(new Chunker().Split(document.Text, isMarkdown: true));
    }

    [Fact]
    public void PdfTextIsExtractedPageByPage()
    {
        var builder = new PdfDocumentBuilder();
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        builder.AddPage(PageSize.A4).AddText("Quarterly revenue grew", 12, new PdfPoint(25, 700), font);
        builder.AddPage(PageSize.A4).AddText("Second page text", 12, new PdfPoint(25, 700), font);
        string path = Path.Combine(folder, "report.pdf");
        File.WriteAllBytes(path, builder.Build());
        var document = FileReader.Read(path, NoTags).Document!;
        Assert.Equal("pdf", document.Kind);
        Assert.Equal("2", document.Metadata["pages"]);
        Assert.Equal("Quarterly revenue grew\n\nSecond page text\n\n", document.Text);
    }

    [Fact]
    public void BadInputsAreSkippedWithReasons()
    {
        Assert.StartsWith("unreadable PDF:", FileReader.Read(Write("broken.pdf", "this is not a PDF"), NoTags).SkipReason);
        string binary = Path.Combine(folder, "blob.txt");
        File.WriteAllBytes(binary, [0x41, 0x00, 0x42]);
        Assert.Equal("binary content (NUL bytes) in a text file", FileReader.Read(binary, NoTags).SkipReason);
        string latin1 = Path.Combine(folder, "latin1.txt");
        File.WriteAllBytes(latin1, [0x63, 0x61, 0x66, 0xE9]);
        Assert.Equal("not valid UTF-8 text", FileReader.Read(latin1, NoTags).SkipReason);
        Assert.Equal("unsupported file type '.png'", FileReader.Read(Write("x.png", "x"), NoTags).SkipReason);
        Assert.Equal("no text content", FileReader.Read(Write("empty.md", "  \n"), NoTags).SkipReason);
        Assert.Equal("file not found", FileReader.Read(Path.Combine(folder, "gone.txt"), NoTags).SkipReason);
    }

    [Fact]
    public void FileOverTheLimitIsSkippedWithoutReadingIt()
    {
        // A sparse 2 GiB file (no disk used): the size alone decides, from a stat.
        string path = Path.Combine(folder, "huge.txt");
        using (var stream = File.Create(path))
            stream.SetLength(2L << 30);
        var result = FileReader.Read(path, NoTags);
        Assert.Equal("file is 2,147,483,648 bytes, over the 1,073,741,824-byte limit", result.SkipReason);
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
