using Loom.Serving.Feedback;
using static Loom.Tests.Feedback.FeedbackFixtures;

namespace Loom.Tests.Feedback;

public class BradleyTerryTests
{
    static readonly BradleyTerryOptions PlainFit = new() { Prior = 0, Resamples = 0 };

    static List<PairwiseGame> Repeat(int count, string first, string second, double score) =>
        [.. Enumerable.Range(0, count).Select(_ => new PairwiseGame(first, second, score))];

    [Fact]
    public void MatchesAHandComputedThreeVersionExample()
    {
        // A beats B 2 of 3, B beats C 2 of 3, A beats C 4 of 5. Strengths 4 : 2 : 1 predict exactly these shares
        // (4/6, 2/3, 4/5), so they are the maximum-likelihood fit. Ratings 400·log10(4, 2, 1) = 240.82, 120.41, 0,
        // shifted to mean 1000: 1120.41, 1000, 879.59.
        var games = Repeat(2, "A", "B", 1).Concat(Repeat(1, "A", "B", 0))
            .Concat(Repeat(2, "B", "C", 1)).Concat(Repeat(1, "C", "B", 1))
            .Concat(Repeat(4, "C", "A", 0)).Concat(Repeat(1, "A", "C", 0)).ToList();
        var rows = BradleyTerry.LeaderboardOfGames(games, PlainFit);
        Assert.Equal(["A", "B", "C"], rows.Select(r => r.Version));
        Assert.Equal(1000 + 400 * Math.Log10(2), rows[0].Rating, 6);
        Assert.Equal(1000, rows[1].Rating, 6);
        Assert.Equal(1000 - 400 * Math.Log10(2), rows[2].Rating, 6);
        Assert.Equal((8, 6, 0), (rows[0].Games, rows[0].Wins, rows[0].Ties));
        Assert.Equal((6, 3, 0), (rows[1].Games, rows[1].Wins, rows[1].Ties));
    }

    [Fact]
    public void TiesCountHalfAndBothBadOrSameVersionVerdictsAreIgnored()
    {
        var item = Item("i", "cmp", "q", ("a", "v1"), ("b", "v2"));
        var twin = Item("t", "cmp", "q", ("a", "v1"), ("a2", "v1"));
        var judgements = new[]
        {
            Judge(1, item, "x", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First),
            Judge(2, item, "y", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Tie),
            Judge(3, item, "z", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.BothBad),
            Judge(4, twin, "x", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.Second),
            Judge(5, item, "w", JudgementKind.Rating, [0], rating: 1),
        };
        var games = BradleyTerry.Games(judgements);
        Assert.Equal([new PairwiseGame("v1", "v2", 1), new PairwiseGame("v2", "v1", 0.5)], games);
        // v1 scores 1.5 of 2: odds 3, so the ratings differ by 400·log10 3.
        var rows = BradleyTerry.Leaderboard(judgements, PlainFit);
        Assert.Equal(400 * Math.Log10(3), rows[0].Rating - rows[1].Rating, 6);
        Assert.Equal(1000, rows.Average(r => r.Rating), 9);
        Assert.Equal((2, 1, 1), (rows[0].Games, rows[0].Wins, rows[0].Ties));
    }

    [Fact]
    public void ThePriorKeepsAnUndefeatedVersionFinite()
    {
        var rows = BradleyTerry.LeaderboardOfGames(Repeat(5, "champion", "rookie", 1), new BradleyTerryOptions { Resamples = 20 });
        Assert.Equal("champion", rows[0].Version);
        Assert.All(rows, r => Assert.True(double.IsFinite(r.Rating) && double.IsFinite(r.Low) && double.IsFinite(r.High)));
        Assert.True(rows[0].Rating - rows[1].Rating > 400, "five straight wins should put the winner far ahead");
        // The prior pulls toward the mean: with more pseudo-games the gap shrinks.
        var stronger = BradleyTerry.LeaderboardOfGames(Repeat(5, "champion", "rookie", 1), new BradleyTerryOptions { Resamples = 0, Prior = 2 });
        Assert.True(stronger[0].Rating - stronger[1].Rating < rows[0].Rating - rows[1].Rating);
    }

    [Fact]
    public void RecoversSimulatedStrengthsAndTheIntervalsHoldThem()
    {
        var truth = new Dictionary<string, double> { ["v0"] = 1200, ["v1"] = 1100, ["v2"] = 950, ["v3"] = 750 };
        var names = truth.Keys.ToArray();
        var random = new Random(12);
        var games = new List<PairwiseGame>();
        for (int g = 0; g < 3000; g++)
        {
            int a = random.Next(names.Length), b = random.Next(names.Length - 1);
            if (b >= a) b++;
            double pFirstWins = 1 / (1 + Math.Pow(10, (truth[names[b]] - truth[names[a]]) / 400));
            games.Add(new PairwiseGame(names[a], names[b], random.NextDouble() < pFirstWins ? 1 : 0));
        }
        var rows = BradleyTerry.LeaderboardOfGames(games, new BradleyTerryOptions { Seed = 3 });
        Assert.Equal(names, rows.Select(r => r.Version));
        foreach (var row in rows)
        {
            Assert.InRange(row.Rating, truth[row.Version] - 30, truth[row.Version] + 30);
            Assert.InRange(truth[row.Version], row.Low, row.High);
            Assert.True(row.High - row.Low is > 10 and < 120, $"{row.Version}: interval {row.Low:F0}..{row.High:F0}");
        }
        // The same seed gives the same intervals.
        var again = BradleyTerry.LeaderboardOfGames(games, new BradleyTerryOptions { Seed = 3 });
        Assert.Equal(rows, again);
    }

    [Fact]
    public void BadOptionsNameTheirField()
    {
        Assert.Contains("BradleyTerryOptions.Resamples", Assert.Throws<ArgumentException>(() => BradleyTerry.LeaderboardOfGames([], new BradleyTerryOptions { Resamples = -1 })).Message);
        Assert.Contains("BradleyTerryOptions.Prior", Assert.Throws<ArgumentException>(() => BradleyTerry.LeaderboardOfGames([], new BradleyTerryOptions { Prior = -1 })).Message);
        Assert.Contains("BradleyTerryOptions.Confidence", Assert.Throws<ArgumentException>(() => BradleyTerry.LeaderboardOfGames([], new BradleyTerryOptions { Confidence = 1 })).Message);
        Assert.Empty(BradleyTerry.LeaderboardOfGames([]));
    }
}
