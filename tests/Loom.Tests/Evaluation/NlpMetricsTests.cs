using Loom.Evaluation;

namespace Loom.Tests.Evaluation;

/// <summary>
/// BLEU, GLEU and F1 against the test vectors published with Microsoft.Extensions.AI.Evaluation.NLP (its unit tests in
/// dotnet/extensions, test/Libraries/Microsoft.Extensions.AI.Evaluation.NLP.Tests, which follow NLTK's), and ROUGE-L
/// against Lin (2004)'s worked example and Google rouge-score's tests. Expected values are given to 4 decimals there.
/// </summary>
public class NlpMetricsTests
{
    const string Reference1 = "It is a guide to action that ensures that the military will forever heed Party commands";
    const string Reference2 = "It is the guiding principle which guarantees the military forces always being under the command of the Party";
    const string Reference3 = "It is the practical guide for the army always to heed the directions of the party";
    const string Hypothesis1 = "It is a guide to action which ensures that the military always obeys the commands of the party";
    const string Hypothesis2 = "It is to insure the troops forever hearing the activity guidebook that party direct";

    static string[] Split(string s) => s.Split(' ');

    [Theory]
    [InlineData(" $41.23 ", new[] { "$", "41.23" })]
    [InlineData("word1,word2", new[] { "WORD1", ",", "WORD2" })]
    [InlineData("word1-\n word2", new[] { "WORD1", "WORD2" })]
    [InlineData("word1-\r\nword2", new[] { "WORD1WORD2" })]
    [InlineData("Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.  Please buy me\ntwo of them.\nThanks.",
        new[] { "GOOD", "MUFFINS", "COST", "$", "3.88", "(", "ROUGHLY", "3,36", "EUROS", ")", "IN", "NEW", "YORK", ".", "PLEASE", "BUY", "ME", "TWO", "OF", "THEM", ".", "THANKS", "." })]
    [InlineData("Hello, world! How's it going?", new[] { "HELLO", ",", "WORLD", "!", "HOW", "'", "S", "IT", "GOING", "?" })]
    [InlineData("&quot;Quotes&quot; and &amp; symbols &lt; &gt; &apos;", new[] { "\"", "QUOTES", "\"", "AND", "&", "SYMBOLS", "<", ">", "'" })]
    [InlineData("word1 © word2 ™ word3 — word4", new[] { "WORD1", "©", "WORD2", "™", "WORD3", "—", "WORD4" })]
    [InlineData("-\nThis is a test.", new[] { "THIS", "IS", "A", "TEST", "." })]
    public void WordTokenizerSplitsAsTheNlpEvaluators(string text, string[] expected) => Assert.Equal(expected, NlpMetrics.WordTokenize(text));

    [Fact]
    public void ModifiedPrecisionAndBrevityPenaltyMatchTheVectors()
    {
        static double P(string[][] refs, string hyp, int n) { var (a, b) = NlpMetrics.ModifiedPrecision(refs, Split(hyp), n); return a / (double)b; }
        Assert.Equal(0.2857, P([Split("the cat is on the mat"), Split("there is a cat on the mat")], "the the the the the the the", 1), 4);
        string[][] military = [Split(Reference1), Split(Reference2), Split(Reference3)];
        Assert.Equal(1.0, P(military, "of the", 2), 4);
        Assert.Equal(0.9444, P(military, Hypothesis1, 1), 4);
        Assert.Equal(0.5714, P(military, Hypothesis2, 1), 4);
        Assert.Equal(0.5882, P(military, Hypothesis1, 2), 4);
        Assert.Equal(0.07692, P(military, Hypothesis2, 2), 4);
        static double Bp(int[] refs, int hyp) =>
            NlpMetrics.BrevityPenalty(NlpMetrics.ClosestReferenceLength([.. refs.Select(n => Enumerable.Repeat("a", n).ToArray())], hyp), hyp);
        Assert.Equal(0.8669, Bp([11, 8], 7), 4);
        Assert.Equal(1.0, Bp([11, 8, 6, 7], 7), 4);
        Assert.Equal(0.26359, Bp([28, 28], 12), 4);
        Assert.Equal(0.9200, Bp([13, 2], 12), 4);
        Assert.Equal(1.0, Bp([11, 13], 12), 4);
    }

    [Fact]
    public void SentenceBleuMatchesTheVectors()
    {
        Assert.Equal(0.0, NlpMetrics.SentenceBleu([Split("The candidate has no alignment to any of the references")], Split("John loves Mary"), smoothing: false), 4);
        Assert.Equal(0.0, NlpMetrics.SentenceBleu([Split("John loves Mary")], Split("John loves Mary who loves Mike"), smoothing: false), 4);
        Assert.Equal(0.5046, NlpMetrics.SentenceBleu([Split(Reference1), Split(Reference2), Split(Reference3)], Split(Hypothesis1), smoothing: false), 4);
        Assert.Equal(0.74009, NlpMetrics.SentenceBleu([Split("he was interested in world history because he read the book")],
            Split("he read the book because he was interested in world history"), smoothing: false), 4);
        // The evaluator's settings (word tokenizer, smoothing method 4).
        Assert.Equal(1.0, NlpMetrics.Bleu("The quick brown fox jumps over the lazy dog.", ["The quick brown fox jumps over the lazy dog."]), 4);
        Assert.Equal(0.0136, NlpMetrics.Bleu("Completely unrelated sentence.", ["The quick brown fox jumps over the lazy dog."]), 4);
        Assert.Equal(0.0385, NlpMetrics.Bleu("the the the the the the the", ["the cat is on the mat"]), 4);
        Assert.Equal(0.4209, NlpMetrics.Bleu(Hypothesis1, [Reference1]), 4);
        Assert.Equal(0.0471, NlpMetrics.Bleu(Hypothesis2, [Reference3]), 4);
        Assert.Equal(0.5046, NlpMetrics.Bleu(Hypothesis1, [Reference1, Reference2, Reference3]), 4);
    }

    [Fact]
    public void SentenceGleuMatchesTheVectors()
    {
        Assert.Equal(0.0, NlpMetrics.SentenceGleu([Split("The candidate has no alignment to any of the references")], Split("John loves Mary")), 4);
        Assert.Equal(1.0, NlpMetrics.SentenceGleu([Split("John loves Mary")], Split("John loves Mary")), 4);
        Assert.Equal(0.2778, NlpMetrics.SentenceGleu([Split(Reference1), Split(Reference2), Split(Reference3)], Split(Hypothesis1)), 4);
        Assert.Equal(0.43939, NlpMetrics.SentenceGleu([Split(Reference1)], Split(Hypothesis1)), 4);
        Assert.Equal(0.12069, NlpMetrics.SentenceGleu([Split(Reference1)], Split(Hypothesis2)), 4);
        Assert.Equal(0.7895, NlpMetrics.SentenceGleu([Split("he was interested in world history because he read the book")],
            Split("he read the book because he was interested in world history")), 4);
        Assert.Equal(0.0909, NlpMetrics.SentenceGleu([Split("the cat is on the mat")], Split("the the the the the the the")), 4);
        Assert.Equal(0.2980, NlpMetrics.Gleu(Hypothesis1, [Reference1, Reference2, Reference3]), 4);
        Assert.Equal(1.0, NlpMetrics.Gleu("The quick brown fox jumps over the lazy dog.", ["The quick brown fox jumps over the lazy dog."]), 4);
        Assert.Equal(0.02939, NlpMetrics.Gleu("Completely unrelated sentence.", ["The quick brown fox jumps over the lazy dog."]), 4);
    }

    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog.", "The quick brown fox jumps over the lazy dog.", 1.0)]
    [InlineData("The quick brown fox jumps over the lazy dog.", "Completely unrelated sentence.", 0.1429)]
    [InlineData("the cat is on the mat", "the the the the the the the", 0.30769)]
    [InlineData(Reference1, Hypothesis1, 0.70589)]
    [InlineData(Reference3, Hypothesis2, 0.4000)]
    public void F1MatchesTheVectors(string reference, string hypothesis, double expected) =>
        Assert.Equal(expected, NlpMetrics.F1(hypothesis, reference), 4);

    [Fact]
    public void RougeLMatchesLinsExampleAndRougeScoresTests()
    {
        // Lin (2004), section 3.1: reference S1 "police killed the gunman"; S2 shares "police the gunman" (ROUGE-L 3/4),
        // S3 "the gunman kill police" only "the gunman" (1/2), though both share the same bigram "the gunman" with S1.
        Assert.Equal(0.75, TextMetrics.RougeL("police kill the gunman", "police killed the gunman"), 12);
        Assert.Equal(0.5, TextMetrics.RougeL("the gunman kill police", "police killed the gunman"), 12);
        // rouge-score's rouge_scorer_test: consecutive and non-consecutive LCS, punctuation ignored, empty text.
        Assert.Equal(0.8, TextMetrics.RougeL("testing one", "testing one two"), 12);
        Assert.Equal(0.8, TextMetrics.RougeL("testing two", "testing one two"), 12);
        Assert.Equal(2.0 / 3, TextMetrics.RougeL("hello world!!!", "hello "), 12);
        Assert.Equal(0, TextMetrics.RougeL("", "testing one two"));
    }
}
