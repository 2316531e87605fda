using Loom.Serving.Feedback;
using Loom.Text;
using static Loom.Tests.Feedback.FeedbackFixtures;

namespace Loom.Tests.Feedback;

public class FeedbackExportTests
{
    /// <summary>Judgements of every kind, each shown in a different order to each annotator.</summary>
    static (List<FeedbackItem> Items, List<Judgement> Judgements) Mixed()
    {
        var pair0 = Item("p0", "cmp", "Say hi", ("Hello!", "v1"), ("Go away.", "v2"));
        var pair1 = Item("p1", "cmp", "2+2?", ("5", "v1"), ("4", "v2"));
        var pair2 = Item("p2", "cmp", "Sky colour?", ("blue", "v1"), ("green", "v2"));
        var rank = Item("r0", "rank", "Pick a fruit", ("apple", "v1"), ("pear", "v2"), ("plum", "v3"));
        var rate = Item("t0", "rate", "Rate me", ("fine answer", "v1"));
        var rate2 = Item("t1", "rate", "Rate me", ("weak answer", "v2"));
        var thumbs = Item("h0", "traffic", "Tell a joke", ("knock knock", "v1"));
        var fix = Item("c0", "fix", "3+4?", ("8", "v1"));
        var j = new List<Judgement>
        {
            // p0: both prefer "Hello!" (bob sees it second).
            Judge(1, pair0, "alice", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First),
            Judge(2, pair0, "bob", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Second),
            // p1: alice prefers "4", bob prefers "5": no majority.
            Judge(3, pair1, "alice", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.First),
            Judge(4, pair1, "bob", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First),
            // p2: one vote for a tie: nothing to learn.
            Judge(5, pair2, "alice", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.Tie),
            // r0: alice plum > apple > pear; bob (shown pear, plum, apple) plum > pear > apple; carol apple first.
            Judge(6, rank, "alice", JudgementKind.Rank, [0, 1, 2], ranking: [2, 0, 1]),
            Judge(7, rank, "bob", JudgementKind.Rank, [1, 2, 0], ranking: [1, 0, 2]),
            Judge(8, rank, "carol", JudgementKind.Rank, [0, 1, 2], ranking: [0, 2, 1]),
            // t0 rated 4 and 5; t1 rated 2 and 2.
            Judge(9, rate, "alice", JudgementKind.Rating, [0], rating: 4),
            Judge(10, rate, "bob", JudgementKind.Rating, [0], rating: 5),
            Judge(11, rate2, "alice", JudgementKind.Rating, [0], rating: 2),
            Judge(12, rate2, "bob", JudgementKind.Rating, [0], rating: 2),
            // h0: two ups, one down.
            Judge(13, thumbs, "alice", JudgementKind.Thumbs, [0], thumbsUp: true),
            Judge(14, thumbs, "bob", JudgementKind.Thumbs, [0], thumbsUp: true),
            Judge(15, thumbs, "carol", JudgementKind.Thumbs, [0], thumbsUp: false),
            // c0: two annotators write 7, one writes seven.
            Judge(16, fix, "alice", JudgementKind.Correction, [0], correction: "7"),
            Judge(17, fix, "bob", JudgementKind.Correction, [0], correction: "7 "),
            Judge(18, fix, "carol", JudgementKind.Correction, [0], correction: "seven"),
        };
        return ([pair0, pair1, pair2, rank, rate, rate2, thumbs, fix], j);
    }

    static string Key(PreferencePair p) => $"{ChatTemplate.Format(p.Prompt, addGenerationPrompt: false)}|{p.Chosen}|{p.Rejected}";

    [Fact]
    public void ExportsEachKindInItemTermsWithOneAgreeingAnnotator()
    {
        var (items, judgements) = Mixed();
        var result = FeedbackExport.ToData(items, judgements);
        var pairs = result.Data.Pairs.Select(p => (p.Chosen, p.Rejected)).ToList();
        // p0 only (p1 has no majority, p2 is a tie).
        Assert.Contains(("Hello!", "Go away."), pairs);
        Assert.DoesNotContain(pairs, p => p.Chosen is "4" or "5" || p.Chosen is "blue" or "green");
        // r0: plum is the majority best (2 of 3); Borda over alice and bob: plum 0, apple (1+2)/2, pear (2+1)/2 → item order.
        Assert.Contains(("plum", "apple"), pairs);
        Assert.Contains(("plum", "pear"), pairs);
        Assert.Contains(("apple", "pear"), pairs);
        Assert.Equal(1, result.Rankings);
        // Ratings: t0 mean 4.5, t1 2, thumbs up → 5; the two "Rate me" responses pair up.
        Assert.Equal([4.5, 2, 5], result.Data.Ratings.Select(r => r.Rating));
        Assert.Contains(("fine answer", "weak answer"), pairs);
        // Corrections: the two distinct texts ("7" and "7 " trimmed alike count once).
        Assert.Equal(["7", "seven"], result.Data.Supervised.Select(s => s.Turns[^1].Content));
        Assert.Contains(("7", "8"), pairs);
        Assert.Equal(2, result.Corrections);
        // Judgements used: not 3, 4 (no majority), 5 (tie), 8 (carol's top differs), 15 (thumbs down lost).
        Assert.Equal([1L, 2, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18], result.JudgementIds);
    }

    [Fact]
    public void MinAgreeKeepsOnlyItemsWhereEnoughAnnotatorsAgree()
    {
        var (items, judgements) = Mixed();
        var result = FeedbackExport.ToData(items, judgements, new ExportOptions { MinAgree = 2 });
        Assert.Equal(1, result.Comparisons);
        Assert.Equal(1, result.Rankings);
        // t0 (4 and 5) has no two equal scores; t1 (2, 2) does; thumbs have two ups.
        Assert.Equal([2.0, 5], result.Data.Ratings.Select(r => r.Rating));
        var correction = Assert.Single(result.Data.Supervised);
        Assert.Equal("7", correction.Turns[^1].Content);
        Assert.DoesNotContain(18L, result.JudgementIds);

        var strict = FeedbackExport.ToData(items, judgements, new ExportOptions { MinAgree = 3 });
        Assert.Equal(0, strict.Comparisons + strict.Rankings + strict.Ratings + strict.Corrections);
        Assert.Empty(strict.JudgementIds);

        var error = Assert.Throws<ArgumentException>(() => FeedbackExport.ToData(items, judgements, new ExportOptions { MinAgree = 0 }));
        Assert.Contains("ExportOptions.MinAgree", error.Message);
    }

    [Fact]
    public void JsonlFilesReadBackAsTheSameData()
    {
        var (items, judgements) = Mixed();
        string directory = Path.Combine(Path.GetTempPath(), $"loom-export-{Guid.NewGuid():N}");
        try
        {
            var written = FeedbackExport.WriteJsonl(items, judgements, directory);
            Assert.Equal(FeedbackExport.FileNames.Select(f => Path.Combine(directory, f)), written.Files);
            Assert.Empty(Directory.GetFiles(directory, "*.tmp"));
            var read = FeedbackDatasets.Read(written.Files, strict: true);
            var inMemory = FeedbackExport.ToData(items, judgements);
            Assert.Equal(inMemory.Data.Pairs.Select(Key).Order(), read.Pairs.Select(Key).Order());
            Assert.Equal(inMemory.Data.Ratings.Select(r => (r.Response, r.Rating)), read.Ratings.Select(r => (r.Response, r.Rating)));
            Assert.Equal(
                inMemory.Data.Supervised.Select(s => ChatTemplate.Format(s.Turns, addGenerationPrompt: false)),
                read.Supervised.Select(s => ChatTemplate.Format(s.Turns, addGenerationPrompt: false)));
            Assert.Equal(inMemory.JudgementIds, written.JudgementIds);
            Assert.Single(File.ReadAllLines(Path.Combine(directory, "rankings.jsonl")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void MultiTurnPromptsAndMissingItemsSurviveTheRoundTrip()
    {
        var item = new FeedbackItem
        {
            Id = "m0",
            TaskId = "cmp",
            Prompt = [new FeedbackMessage("system", "Be brief."), new FeedbackMessage("user", "Quote: \"<b>\" ✓")],
            Responses = [new FeedbackResponse("yes\nno", "v1"), new FeedbackResponse("maybe", "v2")],
        };
        // The item itself is not passed: it is rebuilt from the judgement's prompt and shown responses.
        var judgement = Judge(1, item, "alice", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Second);
        string directory = Path.Combine(Path.GetTempPath(), $"loom-export-{Guid.NewGuid():N}");
        try
        {
            var written = FeedbackExport.WriteJsonl([], [judgement], directory);
            var pair = Assert.Single(FeedbackDatasets.Read(written.Files, strict: true).Pairs);
            Assert.Equal("yes\nno", pair.Chosen);
            Assert.Equal("maybe", pair.Rejected);
            Assert.Equal([new ChatTurn("system", "Be brief."), new ChatTurn("user", "Quote: \"<b>\" ✓")], pair.Prompt);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
