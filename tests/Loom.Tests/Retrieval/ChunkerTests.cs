using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

public sealed class ChunkerTests
{
    [Fact]
    public void HeadingsBecomeThePathOfTheirChunks()
    {
        string text = "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\n### Linux\n\nUse apt.\n\n## Use\n\nCall it.";
        var chunks = new Chunker().Split(text, isMarkdown: true);
        Assert.Equal(["Guide", "Guide > Install", "Guide > Install > Linux", "Guide > Use"], chunks.Select(chunk => chunk.HeadingPath));
        Assert.Equal(["Intro text.", "Run the installer.", "Use apt.", "Call it."], chunks.Select(chunk => chunk.Text));
        Assert.Equal([0, 1, 2, 3], chunks.Select(chunk => chunk.Ordinal));
        Assert.Equal("Guide > Install > Linux\nUse apt.", chunks[2].EmbeddingText);
    }

    [Fact]
    public void PlainTextKeepsHashLinesAsText()
    {
        var chunks = new Chunker().Split("# not a heading\n\nsecond paragraph", isMarkdown: false);
        var chunk = Assert.Single(chunks);
        Assert.Equal("", chunk.HeadingPath);
        Assert.Equal("# not a heading\n\nsecond paragraph", chunk.Text);
    }

    [Fact]
    public void ChunksStayWithinTheTokenBudgetAndPackWholeParagraphs()
    {
        var options = new ChunkerOptions(MaxTokens: 40, OverlapTokens: 0);
        var paragraphs = Enumerable.Range(0, 30).Select(i => $"Paragraph {i} talks about topic number {i} briefly.").ToList();
        var chunks = new Chunker(options).Split(string.Join("\n\n", paragraphs), isMarkdown: true);
        Assert.True(chunks.Count > 3);
        Assert.All(chunks, chunk => Assert.InRange(chunk.TokenCount, 1, 40));
        Assert.All(chunks, chunk => Assert.Equal(TokenCounter.Count(chunk.Text), chunk.TokenCount));
        // Without overlap, the chunks are exactly the paragraphs, in order, none split.
        var rejoined = chunks.SelectMany(chunk => chunk.Text.Split("\n\n")).ToList();
        Assert.Equal(paragraphs, rejoined);
    }

    [Fact]
    public void FencedCodeBlockThatFitsIsNeverSplit()
    {
        string code = "```csharp\n" + string.Join("\n", Enumerable.Range(0, 12).Select(i => $"var x{i} = {i};")) + "\n\nConsole.WriteLine(x0);\n```";
        string prose = string.Join(" ", Enumerable.Range(0, 40).Select(i => $"word{i}"));
        string text = "# Code\n\n" + prose + "\n\n" + code + "\n\nAfter the code.";
        int codeTokens = TokenCounter.Count(code);
        var options = new ChunkerOptions(MaxTokens: codeTokens + 10, OverlapTokens: 8);
        var chunks = new Chunker(options).Split(text, isMarkdown: true);
        // The blank line inside the fence does not end the block: one chunk holds the whole block.
        Assert.Single(chunks, chunk => chunk.Text.Contains(code));
        Assert.DoesNotContain(chunks, chunk => chunk.Text.Contains("```csharp") && !chunk.Text.Contains(code));
        Assert.All(chunks, chunk => Assert.True(chunk.TokenCount <= options.MaxTokens, $"{chunk.TokenCount} > {options.MaxTokens}"));
    }

    [Fact]
    public void CodeBlockLongerThanAChunkSplitsAtLineEnds()
    {
        var lines = Enumerable.Range(0, 200).Select(i => $"int value{i} = {i} * {i};").ToList();
        string code = "```c\n" + string.Join("\n", lines) + "\n```";
        var chunks = new Chunker(new ChunkerOptions(MaxTokens: 64, OverlapTokens: 0)).Split(code, isMarkdown: true);
        Assert.True(chunks.Count > 5);
        Assert.All(chunks, chunk => Assert.True(chunk.TokenCount <= 64));
        var allLines = chunks.SelectMany(chunk => chunk.Text.Split("\n\n")).SelectMany(piece => piece.Split('\n')).ToList();
        Assert.Equal(["```c", .. lines, "```"], allLines);
    }

    [Fact]
    public void OverlapRepeatsTheTailOfThePreviousChunk()
    {
        var sentences = Enumerable.Range(0, 60).Select(i => $"Sentence {i} is here.").ToList();
        var chunks = new Chunker(new ChunkerOptions(MaxTokens: 50, OverlapTokens: 12)).Split(string.Join(" ", sentences), isMarkdown: false);
        Assert.True(chunks.Count > 3);
        for (int i = 1; i < chunks.Count; i++)
        {
            // The overlap (up to the first paragraph break) is whole sentences from the end of the previous chunk.
            string overlap = chunks[i].Text.Split("\n\n")[0];
            Assert.Contains("\n\n", chunks[i].Text);
            Assert.EndsWith(overlap, chunks[i - 1].Text);
            Assert.InRange(TokenCounter.Count(overlap), 1, 12);
            Assert.StartsWith("Sentence", overlap);
            Assert.True(chunks[i].TokenCount <= 50);
        }
        // Every sentence appears, in order.
        string all = string.Join(" ", chunks.Select(chunk => chunk.Text));
        int position = 0;
        foreach (string sentence in sentences)
        {
            position = all.IndexOf(sentence, position, StringComparison.Ordinal);
            Assert.True(position >= 0, sentence);
        }
    }

    [Fact]
    public void ALongUnbrokenWordIsCutToFit()
    {
        string blob = new('a', 5000);
        var chunks = new Chunker(new ChunkerOptions(MaxTokens: 64, OverlapTokens: 0)).Split(blob, isMarkdown: false);
        Assert.All(chunks, chunk => Assert.True(chunk.TokenCount <= 64));
        Assert.Equal(blob, string.Concat(chunks.Select(chunk => chunk.Text.Replace(" ", ""))));
    }
}
