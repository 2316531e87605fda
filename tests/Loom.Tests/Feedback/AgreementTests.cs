using Loom.Serving.Feedback;
using static Loom.Tests.Feedback.FeedbackFixtures;

namespace Loom.Tests.Feedback;

public class AgreementTests
{
    [Fact]
    public void CohenKappaMatchesTheTwoByTwoExample()
    {
        // Wikipedia "Cohen's kappa": 50 proposals; both yes 20, A yes B no 5, A no B yes 10, both no 15.
        // p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, kappa = 0.4.
        var a = new List<string>();
        var b = new List<string>();
        void Add(int count, string x, string y) { for (int i = 0; i < count; i++) { a.Add(x); b.Add(y); } }
        Add(20, "yes", "yes");
        Add(5, "yes", "no");
        Add(10, "no", "yes");
        Add(15, "no", "no");
        Assert.Equal(0.4, Agreement.CohenKappa(a, b), 12);
        Assert.Equal(1.0, Agreement.CohenKappa(a, a), 12);
        Assert.True(double.IsNaN(Agreement.CohenKappa<string>(["x", "x"], ["x", "x"])));
        Assert.Throws<ArgumentException>(() => Agreement.CohenKappa<string>(["x"], ["x", "y"]));
    }

    static readonly int[][] FleissTable =
    [
        // Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories.
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ];

    [Fact]
    public void FleissKappaMatchesTheWorkedExample()
    {
        // P̄ = 0.378, P_e = 0.213, kappa = 0.210 (to three places).
        double kappa = Agreement.FleissKappaFromCounts([.. FleissTable.Select(r => (IReadOnlyList<int>)r)]);
        Assert.Equal(0.210, Math.Round(kappa, 3));
        var labels = FleissTable.Select(row => (IReadOnlyList<int>)[.. row.SelectMany((count, category) => Enumerable.Repeat(category, count))]).ToList();
        Assert.Equal(kappa, Agreement.FleissKappa(labels), 12);
        Assert.Equal(0.378, Math.Round(Agreement.ObservedAgreement(labels), 3));
    }

    [Fact]
    public void FleissKappaWithVaryingRatersPerItemFollowsTheGeneralisedFormula()
    {
        // Item 1: 3 raters a,a,b; item 2: 2 raters b,b; item 3: 4 raters a,b,a,b; item 4: 1 rater (left out).
        // P_i = 2/6, 2/2, 4/12; P̄ = (1/3 + 1 + 1/3) / 3 = 5/9. Shares over 9 ratings: a 4/9, b 5/9; P_e = 41/81.
        // kappa = (5/9 − 41/81) / (1 − 41/81) = (45 − 41) / (81 − 41) = 0.1.
        IReadOnlyList<string>[] items = [["a", "a", "b"], ["b", "b"], ["a", "b", "a", "b"], ["a"]];
        Assert.Equal(0.1, Agreement.FleissKappa(items), 12);
        Assert.Equal(5.0 / 9, Agreement.ObservedAgreement(items), 12);
    }

    // Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units, missing values.
    static readonly double?[][] Reliability =
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, null, null, null],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, null, 3],
        [null, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, null],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, null],
    ];

    [Theory]
    [InlineData(AlphaMetric.Nominal, 0.743)]
    [InlineData(AlphaMetric.Ordinal, 0.815)]
    [InlineData(AlphaMetric.Interval, 0.849)]
    [InlineData(AlphaMetric.Ratio, 0.797)]
    public void KrippendorffAlphaMatchesThePublishedExample(AlphaMetric metric, double expected)
    {
        double alpha = Agreement.KrippendorffAlpha([.. Reliability.Select(r => (IReadOnlyList<double?>)r)], metric);
        Assert.Equal(expected, Math.Round(alpha, 3));
    }

    [Fact]
    public void KrippendorffAlphaMatchesTheBinaryTwoObserverExample()
    {
        // Krippendorff (2011), section A: two observers, ten units, binary values: alpha = 0.095.
        double?[] first = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0];
        double?[] second = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0];
        Assert.Equal(0.095, Math.Round(Agreement.KrippendorffAlpha([first, second], AlphaMetric.Nominal), 3));
        Assert.True(double.IsNaN(Agreement.KrippendorffAlpha([[1.0, 1.0], [1.0]], AlphaMetric.Nominal)));
    }

    [Fact]
    public void PairwiseAgreementMapsEachAnnotatorsShownOrderBackToTheItem()
    {
        var task = Task("cmp", JudgementKind.Pairwise);
        var items = Enumerable.Range(0, 4).Select(i => Item($"i{i}", "cmp", $"q{i}", ($"good{i}", "v1"), ($"bad{i}", "v2"))).ToList();
        var judgements = new List<Judgement>();
        long id = 1;
        // Alice always sees the item order and picks the first; Bob sees it reversed and picks the second: the same response.
        foreach (var item in items)
        {
            judgements.Add(Judge(id++, item, "alice", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First));
            judgements.Add(Judge(id++, item, "bob", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Second));
        }
        // Carol picks the good response on i0 and i1, the bad one on i2 (shown reversed, she picks "First"), a tie on i3.
        judgements.Add(Judge(id++, items[0], "carol", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First));
        judgements.Add(Judge(id++, items[1], "carol", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Second));
        judgements.Add(Judge(id++, items[2], "carol", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.First));
        judgements.Add(Judge(id++, items[3], "carol", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.Tie));

        var result = Agreement.ForTask(task, items, judgements);
        Assert.Equal(4, result.OverlapItems);
        Assert.Equal(12, result.Judgements);
        Assert.Equal(0, result.Unmatched);
        // Per item, labels in item terms: i0 [0,0,0], i1 [0,0,0], i2 [0,0,1], i3 [0,0,tie].
        IReadOnlyList<string>[] expected = [["0", "0", "0"], ["0", "0", "0"], ["0", "0", "1"], ["0", "0", "tie"]];
        Assert.Equal(Agreement.ObservedAgreement(expected) * 100, result.PercentAgreement!.Value, 9);
        Assert.Equal(Agreement.FleissKappa(expected), result.FleissKappa!.Value, 9);
        double?[][] matrix = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 2]];
        Assert.Equal(Agreement.KrippendorffAlpha(matrix, AlphaMetric.Nominal), result.KrippendorffAlpha!.Value, 9);
        // Alice and Bob agree on every item although their raw choices always differ; with no variation kappa is undefined.
        var aliceBob = Assert.Single(result.Pairs, p => p.First == "alice" && p.Second == "bob");
        Assert.Equal(4, aliceBob.SharedUnits);
        Assert.Null(aliceBob.CohenKappa);
        Assert.Equal(100 * 8.0 / 12, result.PercentAgreement!.Value, 9);
    }

    [Fact]
    public void JudgementsWhoseResponsesAreNotInTheItemAreCountedApart()
    {
        var task = Task("cmp", JudgementKind.Pairwise);
        var item = Item("i0", "cmp", "q", ("a", "v1"), ("b", "v2"));
        var other = Judge(2, item, "bob", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First) with
        {
            Shown = [new FeedbackResponse("a", "v1"), new FeedbackResponse("b", "v3")],
        };
        var result = Agreement.ForTask(task, [item], [Judge(1, item, "alice", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First), other]);
        Assert.Equal(1, result.Judgements);
        Assert.Equal(1, result.Unmatched);
        Assert.Equal(0, result.UnitsCompared);
        Assert.Null(result.PercentAgreement);
    }

    [Fact]
    public void RankAgreementComparesEveryInducedPairOfResponses()
    {
        var task = Task("rank", JudgementKind.Rank);
        var item = Item("i0", "rank", "q", ("a", "v1"), ("b", "v2"), ("c", "v3"));
        // Alice: a > b > c (shown in item order). Bob is shown c, a, b and ranks [1, 0, 2] = a > c > b.
        var judgements = new[]
        {
            Judge(1, item, "alice", JudgementKind.Rank, [0, 1, 2], ranking: [0, 1, 2]),
            Judge(2, item, "bob", JudgementKind.Rank, [2, 0, 1], ranking: [1, 0, 2]),
        };
        var result = Agreement.ForTask(task, [item], judgements);
        Assert.Equal("response pairs", result.Units);
        Assert.Equal(3, result.UnitsCompared);
        // Pairs (a,b) and (a,c) agree, (b,c) does not: 2 of 3.
        Assert.Equal(100 * 2.0 / 3, result.PercentAgreement!.Value, 9);
    }

    [Fact]
    public void RatingAgreementUsesTheOrdinalAlpha()
    {
        var task = Task("rate", JudgementKind.Rating);
        var items = Enumerable.Range(0, 3).Select(i => Item($"i{i}", "rate", $"q{i}", ($"r{i}", "v1"))).ToList();
        int[][] scores = [[5, 4], [1, 1], [3, 2]];
        long id = 1;
        var judgements = items.SelectMany((item, i) => new[]
        {
            Judge(id++, item, "alice", JudgementKind.Rating, [0], rating: scores[i][0]),
            Judge(id++, item, "bob", JudgementKind.Rating, [0], rating: scores[i][1]),
        }).ToList();
        var result = Agreement.ForTask(task, items, judgements);
        Assert.Equal(AlphaMetric.Ordinal, result.AlphaMetric);
        double expected = Agreement.KrippendorffAlpha([.. scores.Select(s => (IReadOnlyList<double>)[.. s.Select(v => (double)v)])], AlphaMetric.Ordinal);
        Assert.Equal(expected, result.KrippendorffAlpha!.Value, 9);
        Assert.Equal(100.0 / 3, result.PercentAgreement!.Value, 9);
        Assert.Equal(Agreement.CohenKappa([5, 1, 3], [4, 1, 2]), Assert.Single(result.Pairs).CohenKappa!.Value, 9);
    }
}
