using System.Net;
using System.Text.RegularExpressions;

namespace Loom.Evaluation;

/// <summary>
/// Sentence-level BLEU, GLEU and token F1 as Microsoft.Extensions.AI.Evaluation.NLP computes them (which follow
/// NLTK's <c>sentence_bleu</c> and <c>sentence_gleu</c>): text is split by <see cref="WordTokenize"/> (upper case,
/// HTML entities decoded, words, numbers and single punctuation marks), n-grams of 1 to 4 words.
/// </summary>
public static partial class NlpMetrics
{
    /// <summary>The word tokenizer of the NLP evaluators: a hyphen at a line end joins the two halves; numbers keep
    /// their inner '.' and ','; every other punctuation mark or symbol is a token of its own; words are upper-cased.</summary>
    public static string[] WordTokenize(string text)
    {
        string decoded = WebUtility.HtmlDecode(HyphenatedLineBreak().Replace(text, ""));
        return [.. Token().Matches(decoded).Select(m => m.Value.ToUpperInvariant())];
    }

    /// <summary>BLEU with equal weights on 1- to 4-grams, smoothed by NLTK's method 4 (the NLP evaluator's settings).</summary>
    public static double Bleu(string hypothesis, IReadOnlyList<string> references) =>
        SentenceBleu([.. references.Select(WordTokenize)], WordTokenize(hypothesis), smoothing: true);

    /// <summary>GLEU: min(n-gram precision, n-gram recall) over 1- to 4-grams (see <see cref="SentenceGleu"/>).</summary>
    public static double Gleu(string hypothesis, IReadOnlyList<string> references) =>
        SentenceGleu([.. references.Select(WordTokenize)], WordTokenize(hypothesis));

    /// <summary>Harmonic mean of the precision and recall of the hypothesis's word multiset against the reference's.</summary>
    public static double F1(string hypothesis, string reference)
    {
        var predicted = WordTokenize(hypothesis);
        var expected = WordTokenize(reference);
        if (predicted.Length == 0 || expected.Length == 0) return 0;
        int common = Overlap(Counts(predicted, 1, 1), Counts(expected, 1, 1));
        if (common == 0) return 0;
        double precision = common / (double)predicted.Length, recall = common / (double)expected.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>
    /// NLTK's sentence_bleu over tokens: clipped n-gram precisions (n = 1..4, equal weights), the brevity penalty
    /// against the reference closest in length (the shorter on a tie); without smoothing any zero precision gives 0,
    /// with it (method 4) the k-th zero precision becomes ln(hypothesis length) / (5·2^k) over its denominator.
    /// </summary>
    public static double SentenceBleu(IReadOnlyList<string[]> references, string[] hypothesis, bool smoothing, int maxN = 4)
    {
        if (references.Count == 0) throw new ArgumentException("BLEU needs at least one reference", nameof(references));
        int length = hypothesis.Length;
        if (length == 0) return 0;
        var precisions = new (int Numerator, int Denominator)[maxN];
        for (int n = 1; n <= maxN; n++) precisions[n - 1] = ModifiedPrecision(references, hypothesis, n);
        if (precisions[0].Numerator == 0) return 0;
        double logSum = 0;
        int zeros = 0;
        foreach (var (numerator, denominator) in precisions)
        {
            double p;
            if (numerator > 0) p = numerator / (double)denominator;
            else if (!smoothing) return 0;
            else if (length > 1) p = 1 / (Math.Pow(2, ++zeros) * 5 / Math.Log(length)) / denominator;
            else return 0;
            logSum += Math.Log(p) / maxN;
        }
        return BrevityPenalty(ClosestReferenceLength(references, length), length) * Math.Exp(logSum);
    }

    /// <summary>Clipped n-gram matches over the hypothesis's n-grams (denominator at least 1).</summary>
    public static (int Numerator, int Denominator) ModifiedPrecision(IReadOnlyList<string[]> references, string[] hypothesis, int n)
    {
        var counts = Counts(hypothesis, n, n);
        var maxReference = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var reference in references)
            foreach (var (gram, count) in Counts(reference, n, n))
                maxReference[gram] = Math.Max(maxReference.GetValueOrDefault(gram), count);
        int clipped = counts.Sum(pair => Math.Min(pair.Value, maxReference.GetValueOrDefault(pair.Key)));
        return (clipped, Math.Max(1, counts.Values.Sum()));
    }

    /// <summary>The reference length closest to the hypothesis's (the shorter of two equally close).</summary>
    public static int ClosestReferenceLength(IReadOnlyList<string[]> references, int hypothesisLength) =>
        references.Select(r => r.Length).OrderBy(l => Math.Abs(l - hypothesisLength)).ThenBy(l => l).First();

    /// <summary>1 when the hypothesis is longer than the reference, else exp(1 − r/c) (0 for an empty hypothesis).</summary>
    public static double BrevityPenalty(int referenceLength, int hypothesisLength) =>
        hypothesisLength > referenceLength ? 1 : hypothesisLength == 0 ? 0 : Math.Exp(1 - referenceLength / (double)hypothesisLength);

    /// <summary>
    /// Sentence GLEU: matched 1..4-grams over max(hypothesis n-grams, reference n-grams). With several references the
    /// matches and the totals are summed over them before dividing, which is what the NLP evaluators' published test
    /// vectors give (0.2778 on NLTK's three-reference example; NLTK's own sentence_gleu keeps the best reference
    /// instead); with one reference both are the same.
    /// </summary>
    public static double SentenceGleu(IReadOnlyList<string[]> references, string[] hypothesis, int minN = 1, int maxN = 4)
    {
        if (references.Count == 0) throw new ArgumentException("GLEU needs at least one reference", nameof(references));
        var hypothesisGrams = Counts(hypothesis, minN, maxN);
        int hypothesisTotal = hypothesisGrams.Values.Sum();
        long matched = 0, total = 0;
        foreach (var reference in references)
        {
            var referenceGrams = Counts(reference, minN, maxN);
            matched += Overlap(hypothesisGrams, referenceGrams);
            total += Math.Max(hypothesisTotal, referenceGrams.Values.Sum());
        }
        return total == 0 ? 0 : matched / (double)total;
    }

    static Dictionary<string, int> Counts(string[] tokens, int minN, int maxN)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int n = minN; n <= maxN; n++)
            for (int i = 0; i + n <= tokens.Length; i++)
            {
                string gram = string.Join('\u0001', tokens, i, n);
                counts[gram] = counts.GetValueOrDefault(gram) + 1;
            }
        return counts;
    }

    static int Overlap(Dictionary<string, int> a, Dictionary<string, int> b) =>
        a.Sum(pair => Math.Min(pair.Value, b.GetValueOrDefault(pair.Key)));

    [GeneratedRegex(@"-\r?\n")]
    private static partial Regex HyphenatedLineBreak();

    [GeneratedRegex(@"\p{N}+(?:[.,]\p{N}+)+|[\p{L}\p{N}\p{M}]+|[^\s]")]
    private static partial Regex Token();
}
