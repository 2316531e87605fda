using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Loom.Retrieval;

/// <summary>How chunks are sized. Tokens are counted with tiktoken's cl100k_base (Microsoft.ML.Tokenizers),
/// which for English prose is within a few percent of MiniLM's word pieces; MiniLM reads at most 256 of them.</summary>
/// <param name="MaxTokens">Upper bound of tokens per chunk (overlap included).</param>
/// <param name="OverlapTokens">Tokens of the previous chunk's tail repeated at the head of the next one in the same section.</param>
public sealed record ChunkerOptions(int MaxTokens = 200, int OverlapTokens = 32);

/// <summary>Counts tokens; shared and thread-safe.</summary>
public static class TokenCounter
{
    static readonly Lazy<Tokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    public static int Count(string text) => text.Length == 0 ? 0 : Tokenizer.Value.CountTokens(text);
}

/// <summary>
/// Splits text into chunks that follow its structure: markdown headings start a new section and
/// are kept as the chunk's heading path, paragraphs are packed whole, fenced code blocks are never
/// split when they fit in one chunk (longer ones split at line ends), and only a paragraph longer
/// than a chunk is split, at sentence ends and then at words.
/// </summary>
public sealed partial class Chunker(ChunkerOptions? options = null)
{
    readonly ChunkerOptions options = Validate(options ?? new ChunkerOptions());

    static ChunkerOptions Validate(ChunkerOptions options)
    {
        if (options.MaxTokens < 8)
            throw new ArgumentException($"MaxTokens must be at least 8, got {options.MaxTokens}");
        if (options.OverlapTokens < 0 || options.OverlapTokens >= options.MaxTokens / 2)
            throw new ArgumentException($"OverlapTokens must be in [0, MaxTokens/2), got {options.OverlapTokens}");
        return options;
    }

    [GeneratedRegex(@"^(#{1,6})\s+(.*?)\s*#*\s*$")]
    private static partial Regex HeadingPattern();

    [GeneratedRegex(@"^\s{0,3}(`{3,}|~{3,})")]
    private static partial Regex FencePattern();

    [GeneratedRegex(@"(?<=[.!?])\s+(?=\S)")]
    private static partial Regex SentenceBreak();

    enum BlockKind { Heading, Paragraph, Code }

    sealed record Block(BlockKind Kind, string Text, int Level);

    /// <summary>Chunks a document; markdown structure is honoured when isMarkdown, otherwise blank lines separate paragraphs.</summary>
    public IReadOnlyList<TextChunk> Split(string text, bool isMarkdown)
    {
        var chunks = new List<TextChunk>();
        var headings = new List<(int Level, string Title)>();
        var section = new List<Block>();
        foreach (var block in Parse(text.Replace("\r\n", "\n"), isMarkdown))
        {
            if (block.Kind == BlockKind.Heading)
            {
                Emit(section, HeadingPath(headings), chunks);
                section.Clear();
                headings.RemoveAll(heading => heading.Level >= block.Level);
                headings.Add((block.Level, block.Text));
                continue;
            }
            section.Add(block);
        }
        Emit(section, HeadingPath(headings), chunks);
        return chunks;
    }

    static string HeadingPath(List<(int Level, string Title)> headings) => string.Join(" > ", headings.Select(heading => heading.Title));

    static IEnumerable<Block> Parse(string text, bool isMarkdown)
    {
        var lines = text.Split('\n');
        var paragraph = new StringBuilder();
        Block? FlushParagraph()
        {
            if (paragraph.Length == 0)
                return null;
            var block = new Block(BlockKind.Paragraph, paragraph.ToString().TrimEnd(), 0);
            paragraph.Clear();
            return block;
        }
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (isMarkdown && FencePattern().Match(line) is { Success: true } fence)
            {
                if (FlushParagraph() is { } before)
                    yield return before;
                string marker = fence.Groups[1].Value;
                var code = new StringBuilder(line);
                int j = i + 1;
                for (; j < lines.Length; j++)
                {
                    code.Append('\n').Append(lines[j]);
                    if (lines[j].TrimStart().StartsWith(marker, StringComparison.Ordinal) && lines[j].Trim().Trim(marker[0]).Length == 0)
                        break;
                }
                i = Math.Min(j, lines.Length - 1);
                yield return new Block(BlockKind.Code, code.ToString(), 0);
                continue;
            }
            if (isMarkdown && HeadingPattern().Match(line) is { Success: true } heading)
            {
                if (FlushParagraph() is { } before)
                    yield return before;
                yield return new Block(BlockKind.Heading, heading.Groups[2].Value, heading.Groups[1].Value.Length);
                continue;
            }
            if (line.Trim().Length == 0)
            {
                if (FlushParagraph() is { } before)
                    yield return before;
                continue;
            }
            if (paragraph.Length > 0)
                paragraph.Append('\n');
            paragraph.Append(line);
        }
        if (FlushParagraph() is { } last)
            yield return last;
    }

    /// <summary>Packs a section's blocks into chunks of at most MaxTokens.</summary>
    void Emit(List<Block> blocks, string headingPath, List<TextChunk> chunks)
    {
        var pieces = new List<(string Text, int Tokens)>();
        foreach (var block in blocks)
        {
            int tokens = TokenCounter.Count(block.Text);
            if (tokens <= options.MaxTokens)
                pieces.Add((block.Text, tokens));
            else
                pieces.AddRange(SplitLong(block));
        }
        var current = new List<(string Text, int Tokens)>();
        int currentTokens = 0;
        bool currentHasNew = false;
        foreach (var piece in pieces)
        {
            // Paragraph separators cost about one token each.
            if (current.Count > 0 && currentTokens + 1 + piece.Tokens > options.MaxTokens)
            {
                Add(current, headingPath, chunks);
                var overlap = Overlap(current);
                current = overlap.Tokens + 1 + piece.Tokens <= options.MaxTokens && overlap.Text.Length > 0 ? [overlap] : [];
                currentTokens = current.Sum(item => item.Tokens + 1);
                currentHasNew = false;
            }
            current.Add(piece);
            currentTokens += piece.Tokens + 1;
            currentHasNew = true;
        }
        if (currentHasNew)
            Add(current, headingPath, chunks);
    }

    void Add(List<(string Text, int Tokens)> pieces, string headingPath, List<TextChunk> chunks)
    {
        string text = string.Join("\n\n", pieces.Select(piece => piece.Text));
        chunks.Add(new TextChunk(chunks.Count, headingPath, text, TokenCounter.Count(text)));
    }

    /// <summary>The tail of a chunk to repeat: whole sentences from its end, within OverlapTokens.</summary>
    (string Text, int Tokens) Overlap(List<(string Text, int Tokens)> pieces)
    {
        if (options.OverlapTokens == 0 || pieces.Count == 0)
            return ("", 0);
        string last = pieces[^1].Text;
        if (last.StartsWith("```", StringComparison.Ordinal) || last.StartsWith("~~~", StringComparison.Ordinal))
            return ("", 0);
        var sentences = SentenceBreak().Split(last);
        var taken = new List<string>();
        int tokens = 0;
        for (int i = sentences.Length - 1; i >= 0; i--)
        {
            int count = TokenCounter.Count(sentences[i]);
            if (tokens + count > options.OverlapTokens)
                break;
            taken.Insert(0, sentences[i]);
            tokens += count;
        }
        if (taken.Count == 0)
        {
            var words = last.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (int i = words.Length - 1; i >= 0 && tokens < options.OverlapTokens; i--)
            {
                taken.Insert(0, words[i]);
                tokens = TokenCounter.Count(string.Join(' ', taken));
            }
            if (tokens > options.OverlapTokens && taken.Count > 0)
                taken.RemoveAt(0);
        }
        string text = string.Join(' ', taken);
        return (text, TokenCounter.Count(text));
    }

    /// <summary>Splits a block longer than a chunk: code at line ends, prose at sentence ends, then at words.</summary>
    IEnumerable<(string Text, int Tokens)> SplitLong(Block block)
    {
        // Pieces leave room for the overlap that the next chunk starts with.
        int budget = options.MaxTokens - options.OverlapTokens - 1;
        var units = block.Kind == BlockKind.Code ? block.Text.Split('\n') : SentenceBreak().Split(block.Text);
        string separator = block.Kind == BlockKind.Code ? "\n" : " ";
        var current = new StringBuilder();
        foreach (string unit in units.SelectMany(unit => TokenCounter.Count(unit) > budget ? SplitWords(unit, budget) : [unit]))
        {
            string candidate = current.Length == 0 ? unit : current + separator + unit;
            if (current.Length > 0 && TokenCounter.Count(candidate) > budget)
            {
                string text = current.ToString();
                yield return (text, TokenCounter.Count(text));
                current.Clear().Append(unit);
            }
            else
            {
                current.Clear().Append(candidate);
            }
        }
        if (current.Length > 0)
        {
            string text = current.ToString();
            yield return (text, TokenCounter.Count(text));
        }
    }

    static IEnumerable<string> SplitWords(string text, int budget)
    {
        var current = new StringBuilder();
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            // A single "word" longer than a chunk (a base64 blob) is cut by characters.
            foreach (string part in word.Length > budget ? word.Chunk(budget).Select(part => new string(part)) : [word])
            {
                string candidate = current.Length == 0 ? part : current + " " + part;
                if (current.Length > 0 && TokenCounter.Count(candidate) > budget)
                {
                    yield return current.ToString();
                    current.Clear().Append(part);
                }
                else
                {
                    current.Clear().Append(candidate);
                }
            }
        }
        if (current.Length > 0)
            yield return current.ToString();
    }
}
