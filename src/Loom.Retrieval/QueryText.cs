using System.Text.RegularExpressions;

namespace Loom.Retrieval;

/// <summary>Turns free text into the words a full-text query may use (no operators, no stop words).</summary>
public static partial class QueryText
{
    static readonly HashSet<string> StopWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from", "how",
        "i", "if", "in", "into", "is", "it", "its", "of", "on", "or", "so", "that", "the", "their", "then",
        "there", "these", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with",
        "you", "your", "we", "me", "my",
    };

    [GeneratedRegex(@"[\p{L}\p{N}]+")]
    private static partial Regex WordPattern();

    /// <summary>Distinct lower-case words of the query, stop words removed (kept if nothing else is left).</summary>
    public static IReadOnlyList<string> Words(string query)
    {
        var all = WordPattern().Matches(query).Select(match => match.Value.ToLowerInvariant()).Distinct().ToList();
        var content = all.Where(word => !StopWords.Contains(word)).ToList();
        return content.Count > 0 ? content : all;
    }
}

/// <summary>
/// Chooses the words of a full-text query under a posting budget: the rarest query words (highest
/// IDF) are kept while their chunk counts add up to at most <see cref="Budget"/>; the rarest word is
/// always kept and words no chunk holds are dropped. Full-text engines score every chunk holding
/// any query word, so query time grows with the postings read, and the common words (small BM25
/// weight) hold most of them. Stores with at most Budget chunks keep every word. Chunk counts are
/// remembered per word until the store's generation changes.
/// </summary>
public sealed class PostingBudget
{
    /// <summary>
    /// On the dotnet-docs index (80,974 chunks, 386 questions): 5,000 postings ran BM25 at p50/p95
    /// 4.8/6.6 ms with recall@5 0.241, every word at 20.6/50.3 ms with 0.295; hybrid recall@5 moved
    /// by under 0.01 (bench retrieval-eval, retrieval-latency).
    /// </summary>
    public const long Default = 5000;

    readonly Dictionary<string, long> frequencies = new(StringComparer.Ordinal);
    readonly Lock gate = new();
    long generation = -1;
    long chunkCount = -1;

    /// <summary>Postings a query may read; long.MaxValue keeps every word.</summary>
    public long Budget { get; set; } = Default;

    /// <param name="words">The query words (<see cref="QueryText.Words"/>).</param>
    /// <param name="storeGeneration">The store's write counter: a change forgets the remembered counts.</param>
    /// <param name="countChunks">Chunks in the store.</param>
    /// <param name="countChunksWith">Chunks holding one word, as the full-text engine matches it.</param>
    public async Task<IReadOnlyList<string>> ChooseAsync(IReadOnlyList<string> words, long storeGeneration, Func<Task<long>> countChunks, Func<string, Task<long>> countChunksWith)
    {
        if (Budget == long.MaxValue)
            return words;
        long chunks;
        lock (gate)
        {
            if (storeGeneration != generation)
            {
                frequencies.Clear();
                generation = storeGeneration;
                chunkCount = -1;
            }
            chunks = chunkCount;
        }
        if (chunks < 0)
        {
            chunks = await countChunks();
            lock (gate) chunkCount = chunks;
        }
        if (chunks <= Budget)
            return words;
        var counted = new List<(string Word, long Frequency)>();
        foreach (string word in words)
        {
            long frequency;
            bool known;
            lock (gate) known = frequencies.TryGetValue(word, out frequency);
            if (!known)
            {
                frequency = await countChunksWith(word);
                lock (gate) frequencies[word] = frequency;
            }
            if (frequency > 0)
                counted.Add((word, frequency));
        }
        return SelectRarest(counted, Budget);
    }

    /// <summary>The words in order of rising chunk count while the counts add up to at most budget (the first is always kept).</summary>
    public static List<string> SelectRarest(IReadOnlyList<(string Word, long Frequency)> counted, long budget)
    {
        var kept = new List<string>();
        long postings = 0;
        foreach (var (word, frequency) in counted.OrderBy(item => item.Frequency).ThenBy(item => item.Word, StringComparer.Ordinal))
        {
            if (kept.Count > 0 && postings + frequency > budget)
                break;
            kept.Add(word);
            postings += frequency;
        }
        return kept;
    }
}
