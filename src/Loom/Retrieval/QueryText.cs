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
