using System.Text;

namespace Loom.Evaluation;

/// <summary>
/// Reference-based scores for generated text, as used by SQuAD (exact match, token F1) and
/// summarisation (ROUGE-L). Exact match and token F1 normalise first: lower case, punctuation and articles
/// removed, whitespace collapsed (SQuAD's normalize_answer); ROUGE-L tokenizes as Google's rouge-score does.
/// </summary>
public static class TextMetrics
{
    public static string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (char c in text.ToLowerInvariant())
            builder.Append(char.IsPunctuation(c) || char.IsSymbol(c) ? ' ' : c);
        return string.Join(' ', Tokens(builder.ToString()).Where(w => w is not ("a" or "an" or "the")));
    }

    /// <summary>1 when the normalised texts are equal, else 0.</summary>
    public static double ExactMatch(string prediction, string reference) => Normalize(prediction) == Normalize(reference) ? 1 : 0;

    /// <summary>Harmonic mean of token precision and recall over the normalised bags of words.</summary>
    public static double TokenF1(string prediction, string reference)
    {
        var predicted = Tokens(Normalize(prediction));
        var expected = Tokens(Normalize(reference));
        if (predicted.Length == 0 || expected.Length == 0) return predicted.Length == expected.Length ? 1 : 0;
        var counts = expected.GroupBy(w => w).ToDictionary(g => g.Key, g => g.Count());
        int common = 0;
        foreach (var word in predicted)
            if (counts.TryGetValue(word, out int n) && n > 0) { common++; counts[word] = n - 1; }
        if (common == 0) return 0;
        double precision = common / (double)predicted.Length, recall = common / (double)expected.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>
    /// ROUGE-L F1 (Lin 2004): from the longest common subsequence of the tokens, which are rouge-score's
    /// (lower case, every character but a-z and 0-9 a separator, no stemming).
    /// </summary>
    public static double RougeL(string prediction, string reference)
    {
        var a = RougeTokens(prediction);
        var b = RougeTokens(reference);
        if (a.Length == 0 || b.Length == 0) return 0; // as rouge-score: nothing to match scores 0
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
                current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            (previous, current) = (current, previous);
        }
        int lcs = previous[b.Length];
        if (lcs == 0) return 0;
        double precision = lcs / (double)a.Length, recall = lcs / (double)b.Length;
        return 2 * precision * recall / (precision + recall);
    }

    static string[] RougeTokens(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (char c in text.ToLowerInvariant()) builder.Append(c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c : ' ');
        return Tokens(builder.ToString());
    }

    static string[] Tokens(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
}
