using Loom.Serving.Feedback;
using Loom.Tests.Retrieval;
using Microsoft.Data.Sqlite;

namespace Loom.Tests.Feedback;

/// <summary>
/// The one test suite every IFeedbackStore passes. A subclass says how to open a store by name; opening the same name
/// again must reach the same data.
/// </summary>
public abstract class FeedbackStoreContract : IDisposable
{
    protected readonly string Folder = Path.Combine(Path.GetTempPath(), "loom-feedback-" + Guid.NewGuid().ToString("N"));
    readonly List<IFeedbackStore> opened = [];

    /// <summary>Opens (creating when new) the store called name; skips when this store cannot run here.</summary>
    protected abstract Task<IFeedbackStore> OpenCoreAsync(string name);

    protected async Task<IFeedbackStore> OpenAsync(string name = "main")
    {
        var store = await OpenCoreAsync(name);
        opened.Add(store);
        return store;
    }

    protected void Close(IFeedbackStore store)
    {
        store.Dispose();
        opened.Remove(store);
    }

    static readonly DateTimeOffset Start = new(2026, 12, 2, 9, 0, 0, TimeSpan.Zero);

    /// <summary>Text a store must keep exactly: markup, quotes, escapes, non-Latin scripts, emoji, combining marks, RTL.</summary>
    const string Awkward = "<script>alert('x')</script> \"quoted\" \\back\\slash\ttab\r\nnew line — 日本語 😀👩‍👩‍👧 é (e\u0301) שלום \u200B end";

    protected static FeedbackTask Task(string id, JudgementKind kind, int overlap = 1) => new()
    {
        Id = id,
        Name = $"Task {id}",
        Kind = kind,
        Guidelines = "Prefer the answer that is correct, then the shorter one.",
        Rubric = kind == JudgementKind.Rating ? "1 wrong\n2 poor\n3 fair\n4 good\n5 perfect" : null,
        Overlap = overlap,
        Created = Start,
    };

    protected static FeedbackItem Item(string id, string taskId, int responses = 2, int minute = 0) => new()
    {
        Id = id,
        TaskId = taskId,
        Prompt = [new("system", "Be brief."), new("user", $"Question {id}? " + Awkward)],
        Responses = Enumerable.Range(0, responses).Select(i => new FeedbackResponse($"Answer {i} to {id}: " + Awkward, $"v{i}")).ToList(),
        Source = $"prompts.jsonl:{minute + 1}",
        Created = Start.AddMinutes(minute),
    };

    /// <summary>A valid judgement of kind on item (shown: the item's responses, as many as the kind takes).</summary>
    protected static Judgement Judge(FeedbackItem item, JudgementKind kind, string annotator)
    {
        var judgement = new Judgement
        {
            ItemId = item.Id,
            TaskId = item.TaskId,
            Annotator = annotator,
            Kind = kind,
            At = Start.AddHours(1),
            Prompt = item.Prompt,
            Shown = kind switch
            {
                JudgementKind.Pairwise => item.Responses.Take(2).ToList(),
                JudgementKind.Rank => item.Responses,
                _ => item.Responses.Take(1).ToList(),
            },
        };
        return kind switch
        {
            JudgementKind.Pairwise => judgement with { Choice = PairwiseChoice.Second },
            JudgementKind.Rank => judgement with { Ranking = Enumerable.Range(0, item.Responses.Count).Reverse().ToList() },
            JudgementKind.Rating => judgement with { Rating = 4 },
            JudgementKind.Correction => judgement with { Correction = "Corrected: " + Awkward },
            _ => judgement with { ThumbsUp = false },
        };
    }

    /// <summary>Stores a task of kind with items 0..count-1 (a minute apart, oldest first).</summary>
    async Task<(IFeedbackStore Store, List<FeedbackItem> Items)> TaskWithItemsAsync(JudgementKind kind, int count, int overlap = 1, int responses = 2)
    {
        var store = await OpenAsync();
        await store.SaveTaskAsync(Task("t", kind, overlap), default);
        var items = Enumerable.Range(0, count).Select(i => Item($"item-{i}", "t", responses, minute: i)).ToList();
        Assert.Equal(count, await store.AddItemsAsync(items, default));
        return (store, items);
    }

    static void AssertSame(FeedbackItem expected, FeedbackItem? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected with { Prompt = [], Responses = [] }, actual with { Prompt = [], Responses = [] });
        Assert.Equal(expected.Prompt, actual.Prompt);
        Assert.Equal(expected.Responses, actual.Responses);
    }

    static void AssertSame(Judgement expected, Judgement actual)
    {
        Assert.Equal(expected with { Prompt = [], Shown = [], Ranking = null }, actual with { Prompt = [], Shown = [], Ranking = null });
        Assert.Equal(expected.Prompt, actual.Prompt);
        Assert.Equal(expected.Shown, actual.Shown);
        Assert.Equal(expected.Ranking, actual.Ranking);
    }

    [SkippableFact]
    public async Task TaskIsSavedListedAndUpdatedButKeepsItsKind()
    {
        var store = await OpenAsync();
        Assert.Null(await store.GetTaskAsync("compare", default));
        var compare = Task("compare", JudgementKind.Pairwise, overlap: 3);
        await store.SaveTaskAsync(compare, default);
        await store.SaveTaskAsync(Task("rate", JudgementKind.Rating) with { Created = Start.AddDays(1) }, default);
        Assert.Equal(compare, await store.GetTaskAsync("compare", default));
        Assert.Equal(["compare", "rate"], (await store.ListTasksAsync(default)).Select(task => task.Id));
        Assert.Equal("1 wrong\n2 poor\n3 fair\n4 good\n5 perfect", (await store.GetTaskAsync("rate", default))!.Rubric);

        var renamed = compare with { Name = "Compare " + Awkward, Guidelines = Awkward, Overlap = 2, Rubric = "r" };
        await store.SaveTaskAsync(renamed, default);
        Assert.Equal(renamed, await store.GetTaskAsync("compare", default));
        Assert.Equal(2, (await store.ListTasksAsync(default)).Count);

        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SaveTaskAsync(compare with { Kind = JudgementKind.Rank }, default));
        Assert.StartsWith("FeedbackTask.Kind", exception.Message);
        Assert.Equal(JudgementKind.Pairwise, (await store.GetTaskAsync("compare", default))!.Kind);
    }

    [SkippableTheory]
    [InlineData("", "FeedbackTask.Id")]
    [InlineData("has space", "FeedbackTask.Id")]
    [InlineData("ok", "FeedbackTask.Overlap must be at least 1, got 0")]
    public async Task BadTaskIsRefusedNamingTheField(string id, string message)
    {
        var store = await OpenAsync();
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SaveTaskAsync(Task(id, JudgementKind.Rating, overlap: id == "ok" ? 0 : 1), default));
        Assert.StartsWith(message, exception.Message);
        Assert.Empty(await store.ListTasksAsync(default));
    }

    [SkippableFact]
    public async Task ItemsRoundTripExactlyAndAddingIsIdempotentById()
    {
        var (store, items) = await TaskWithItemsAsync(JudgementKind.Pairwise, 3);
        foreach (var item in items)
            AssertSame(item, await store.GetItemAsync(item.Id, default));
        Assert.Null(await store.GetItemAsync("missing", default));

        // The same ids again (one with new text) and one new item: only the new one is added, the stored text stays.
        var changed = items[1] with { Responses = [new("different", "v9"), new("also different", "v8")], Created = Start.AddMinutes(-5) };
        var fresh = Item("item-3", "t", minute: 3);
        Assert.Equal(1, await store.AddItemsAsync([items[0], changed, fresh, fresh], default));
        AssertSame(items[1], await store.GetItemAsync("item-1", default));
        var listed = await store.ListItemsAsync("t", default);
        Assert.Equal(["item-0", "item-1", "item-2", "item-3"], listed.Select(item => item.Id));
        for (int i = 0; i < 3; i++)
            AssertSame(items[i], listed[i]);
        Assert.Empty(await store.ListItemsAsync("other", default));

        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.AddItemsAsync([Item("a", "t"), Item("b", "nope")], default));
        Assert.StartsWith("FeedbackItem.TaskId 'nope'", exception.Message);
        Assert.Null(await store.GetItemAsync("a", default));
        exception = await Assert.ThrowsAsync<ArgumentException>(() => store.AddItemsAsync([Item("c", "t", responses: 0)], default));
        Assert.StartsWith("FeedbackItem.Responses of item 'c' must hold at least one response", exception.Message);
        exception = await Assert.ThrowsAsync<ArgumentException>(() => store.AddItemsAsync([Item("d", "t"), Item("e", "t", responses: 1)], default));
        Assert.Equal("FeedbackItem.Responses of item 'e' must hold at least 2 responses for Pairwise task 't', got 1", exception.Message);
        exception = await Assert.ThrowsAsync<ArgumentException>(() => store.AddItemsAsync([Item("f", "t") with { Prompt = [new("user", "half \uD83D of an emoji")] }], default));
        Assert.Equal("FeedbackItem.Prompt[0].Content holds a lone UTF-16 surrogate (U+D83D) at index 5", exception.Message);
        Assert.Equal(["item-0", "item-1", "item-2", "item-3"], (await store.ListItemsAsync("t", default)).Select(item => item.Id));
    }

    [SkippableFact]
    public async Task ItemsComeOldestFirstWhateverTheInsertOrder()
    {
        var store = await OpenAsync();
        await store.SaveTaskAsync(Task("t", JudgementKind.Thumbs), default);
        await store.AddItemsAsync([Item("late", "t", 1, minute: 9), Item("early", "t", 1, minute: 1)], default);
        await store.AddItemsAsync([Item("middle", "t", 1, minute: 5)], default);
        Assert.Equal(["early", "middle", "late"], (await store.ListItemsAsync("t", default)).Select(item => item.Id));
        Assert.Equal("early", (await store.NextItemAsync("t", "ann", default))!.Id);
    }

    [SkippableTheory]
    [InlineData(JudgementKind.Pairwise)]
    [InlineData(JudgementKind.Rank)]
    [InlineData(JudgementKind.Rating)]
    [InlineData(JudgementKind.Correction)]
    [InlineData(JudgementKind.Thumbs)]
    public async Task JudgementRoundTripKeepsEveryField(JudgementKind kind)
    {
        var (store, items) = await TaskWithItemsAsync(kind, 2, responses: 3);
        // Shown in an order other than the item's, with a time that has milliseconds and an offset.
        var shown = kind switch
        {
            JudgementKind.Pairwise => [items[0].Responses[2], items[0].Responses[0]],
            JudgementKind.Rank => [items[0].Responses[1], items[0].Responses[2], items[0].Responses[0]],
            _ => new List<FeedbackResponse> { items[0].Responses[2] },
        };
        var judgement = Judge(items[0], kind, "alice") with
        {
            Shown = shown,
            At = new DateTimeOffset(2026, 12, 2, 11, 30, 15, 123, TimeSpan.FromHours(2)),
            Comment = "Comment: " + Awkward,
        };
        if (kind == JudgementKind.Rank)
            judgement = judgement with { Ranking = [2, 0, 1] };
        long id = await store.SubmitAsync(judgement, default);
        Assert.True(id > 0);
        var stored = Assert.Single(await store.ListJudgementsAsync(new JudgementQuery(), default));
        AssertSame(judgement with { Id = id }, stored);
        Assert.Equal(judgement.At.ToUnixTimeMilliseconds(), stored.At.ToUnixTimeMilliseconds());

        // Without a comment, the field comes back null; without a time, the store sets the time of submission.
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var plain = Judge(items[1], kind, "alice") with { At = default };
        long second = await store.SubmitAsync(plain, default);
        Assert.True(second > id);
        var storedPlain = (await store.ListJudgementsAsync(new JudgementQuery { ItemId = "item-1" }, default)).Single();
        Assert.Null(storedPlain.Comment);
        Assert.InRange(storedPlain.At, before, DateTimeOffset.UtcNow.AddSeconds(1));
        AssertSame(plain with { Id = second, At = storedPlain.At }, storedPlain);
    }

    public static TheoryData<string, string> BadJudgements => new()
    {
        { "pairwise-no-choice", "Judgement.Choice must be set for a Pairwise judgement" },
        { "pairwise-three-shown", "Judgement.Shown must hold exactly 2 response(s) for a Pairwise judgement, got 3" },
        { "rank-repeat", "Judgement.Ranking must be a permutation of 0..2, got [0,0,1]" },
        { "rank-out-of-range", "Judgement.Ranking must be a permutation of 0..2, got [0,1,3]" },
        { "rank-short", "Judgement.Ranking must be a permutation of 0..2, got [1,0]" },
        { "rank-one-shown", "Judgement.Shown must hold at least 2 response(s) for a Rank judgement, got 1" },
        { "rating-zero", "Judgement.Rating must be 1 to 5, got 0" },
        { "rating-six", "Judgement.Rating must be 1 to 5, got 6" },
        { "rating-missing", "Judgement.Rating must be set for a Rating judgement" },
        { "rating-two-shown", "Judgement.Shown must hold exactly 1 response(s) for a Rating judgement, got 2" },
        { "rating-with-choice", "Judgement.Choice must be null for a Rating judgement" },
        { "correction-blank", "Judgement.Correction must be non-empty text" },
        { "thumbs-missing", "Judgement.ThumbsUp must be set for a Thumbs judgement" },
        { "empty-annotator", "Judgement.Annotator must not be empty" },
        { "empty-item", "Judgement.ItemId must not be empty" },
        { "missing-item", "Judgement.ItemId 'nope' is not a stored item" },
        { "missing-task", "Judgement.TaskId 'nope' is not a stored task" },
        { "task-mismatch", "Judgement.TaskId 'other' does not match item 'item-0'" },
        { "kind-mismatch", "Judgement.Kind Rating does not match task 't'" },
        { "nul-comment", "Judgement.Comment must not hold the NUL character" },
        { "surrogate-annotator", "Judgement.Annotator holds a lone UTF-16 surrogate (U+DC00) at index 1" },
    };

    [SkippableTheory]
    [MemberData(nameof(BadJudgements))]
    public async Task JudgementThatDoesNotFitIsRefusedNamingTheField(string variant, string message)
    {
        var store = await OpenAsync();
        string kindName = variant.Split('-')[0];
        var kind = variant switch
        {
            "empty-annotator" or "empty-item" or "missing-item" or "missing-task" or "task-mismatch" or "kind-mismatch" or "nul-comment" or "surrogate-annotator" => JudgementKind.Thumbs,
            _ => Enum.Parse<JudgementKind>(kindName, ignoreCase: true),
        };
        await store.SaveTaskAsync(Task("t", kind), default);
        await store.SaveTaskAsync(Task("other", kind), default);
        var item = Item("item-0", "t", responses: 3);
        await store.AddItemsAsync([item], default);
        var valid = Judge(item, kind, "alice");
        var bad = variant switch
        {
            "pairwise-no-choice" => valid with { Choice = null },
            "pairwise-three-shown" => valid with { Shown = item.Responses },
            "rank-repeat" => valid with { Ranking = [0, 0, 1] },
            "rank-out-of-range" => valid with { Ranking = [0, 1, 3] },
            "rank-short" => valid with { Ranking = [1, 0] },
            "rank-one-shown" => valid with { Shown = [item.Responses[0]], Ranking = [0] },
            "rating-zero" => valid with { Rating = 0 },
            "rating-six" => valid with { Rating = 6 },
            "rating-missing" => valid with { Rating = null },
            "rating-two-shown" => valid with { Shown = item.Responses.Take(2).ToList() },
            "rating-with-choice" => valid with { Choice = PairwiseChoice.Tie },
            "correction-blank" => valid with { Correction = "  " },
            "thumbs-missing" => valid with { ThumbsUp = null },
            "empty-annotator" => valid with { Annotator = "" },
            "empty-item" => valid with { ItemId = " " },
            "missing-item" => valid with { ItemId = "nope" },
            "missing-task" => valid with { TaskId = "nope" },
            "task-mismatch" => valid with { TaskId = "other" },
            "kind-mismatch" => valid with { Kind = JudgementKind.Rating, ThumbsUp = null, Rating = 3 },
            "nul-comment" => valid with { Comment = "a\0b" },
            "surrogate-annotator" => valid with { Annotator = "a\uDC00" },
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SubmitAsync(bad, default));
        Assert.StartsWith(message, exception.Message);
        Assert.DoesNotContain('\n', exception.Message);
        Assert.Empty(await store.ListJudgementsAsync(new JudgementQuery(), default));
        // The valid judgement is taken.
        Assert.True(await store.SubmitAsync(valid, default) > 0);
    }

    [SkippableFact]
    public async Task AnAnnotatorJudgesAnItemOnce()
    {
        var (store, items) = await TaskWithItemsAsync(JudgementKind.Rating, 1);
        long first = await store.SubmitAsync(Judge(items[0], JudgementKind.Rating, "alice"), default);
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SubmitAsync(Judge(items[0], JudgementKind.Rating, "alice") with { Rating = 1 }, default));
        Assert.Equal("Judgement.Annotator 'alice' has already judged item 'item-0'", exception.Message);
        long second = await store.SubmitAsync(Judge(items[0], JudgementKind.Rating, "bob"), default);
        Assert.True(second > first);
        var stored = await store.ListJudgementsAsync(new JudgementQuery(), default);
        Assert.Equal([("alice", 4), ("bob", 4)], stored.Select(judgement => (judgement.Annotator, judgement.Rating!.Value)));
    }

    [SkippableFact]
    public async Task ListJudgementsFiltersInIdOrder()
    {
        var store = await OpenAsync();
        await store.SaveTaskAsync(Task("a", JudgementKind.Thumbs), default);
        await store.SaveTaskAsync(Task("b", JudgementKind.Thumbs), default);
        var items = new[] { Item("a1", "a", 1), Item("a2", "a", 1), Item("b1", "b", 1) };
        await store.AddItemsAsync(items, default);
        var submitted = new List<(long Id, string Item, string Annotator)>();
        foreach (string annotator in new[] { "ann", "bob" })
        {
            foreach (var item in items.Reverse())
                submitted.Add((await store.SubmitAsync(Judge(item, JudgementKind.Thumbs, annotator), default), item.Id, annotator));
        }
        async Task<List<long>> IdsAsync(JudgementQuery query) => (await store.ListJudgementsAsync(query, default)).Select(judgement => judgement.Id).ToList();
        List<long> Expected(Func<(long Id, string Item, string Annotator), bool> keep) => submitted.Where(keep).Select(entry => entry.Id).Order().ToList();

        Assert.Equal(Expected(_ => true), await IdsAsync(new JudgementQuery()));
        Assert.Equal(Expected(entry => entry.Item != "b1"), await IdsAsync(new JudgementQuery { TaskId = "a" }));
        Assert.Equal(Expected(entry => entry.Item == "a2"), await IdsAsync(new JudgementQuery { ItemId = "a2" }));
        Assert.Equal(Expected(entry => entry.Annotator == "bob"), await IdsAsync(new JudgementQuery { Annotator = "bob" }));
        long after = submitted[2].Id;
        Assert.Equal(Expected(entry => entry.Id > after), await IdsAsync(new JudgementQuery { AfterId = after }));
        Assert.Equal(Expected(entry => entry.Id > after && entry.Item == "a1" && entry.Annotator == "bob"),
            await IdsAsync(new JudgementQuery { AfterId = after, TaskId = "a", ItemId = "a1", Annotator = "bob" }));
        Assert.Empty(await IdsAsync(new JudgementQuery { Annotator = "nobody" }));
        Assert.Empty(await IdsAsync(new JudgementQuery { AfterId = submitted.Max(entry => entry.Id) }));
    }

    [SkippableFact]
    public async Task NextItemHonoursOverlapAndNeverRepeats()
    {
        var (store, items) = await TaskWithItemsAsync(JudgementKind.Thumbs, 3, overlap: 2, responses: 1);
        string[] annotators = ["ann", "bob", "cat"];
        var seen = annotators.ToDictionary(name => name, _ => new List<string>());
        async Task<bool> JudgeNextAsync(string annotator)
        {
            var next = await store.NextItemAsync("t", annotator, default);
            if (next is null)
                return false;
            Assert.DoesNotContain(next.Id, seen[annotator]);
            seen[annotator].Add(next.Id);
            await store.SubmitAsync(Judge(next, JudgementKind.Thumbs, annotator), default);
            return true;
        }
        // Ann and Bob each take the oldest item first and finish its two judgements; Cat then starts on item-1.
        Assert.True(await JudgeNextAsync("ann"));
        Assert.True(await JudgeNextAsync("bob"));
        Assert.Equal("item-1", (await store.NextItemAsync("t", "cat", default))!.Id);
        Assert.Equal("item-1", (await store.NextItemAsync("t", "ann", default))!.Id);
        while (await JudgeNextAsync("cat")) { }
        Assert.Equal(["item-1", "item-2"], seen["cat"]);
        while (await JudgeNextAsync("ann")) { }
        while (await JudgeNextAsync("bob")) { }
        // Every item has exactly two judgements from distinct annotators; everyone's queue is empty.
        var judgements = await store.ListJudgementsAsync(new JudgementQuery { TaskId = "t" }, default);
        Assert.All(items, item => Assert.Equal(2, judgements.Count(judgement => judgement.ItemId == item.Id)));
        Assert.Equal(judgements.Count, judgements.Select(judgement => (judgement.ItemId, judgement.Annotator)).Distinct().Count());
        Assert.DoesNotContain("item-0", seen["cat"]);
        foreach (string annotator in annotators.Append("dan"))
            Assert.Null(await store.NextItemAsync("t", annotator, default));
        Assert.Null(await store.NextItemAsync("missing", "ann", default));

        // Raising the overlap puts the items back in the queue of those who have not judged them.
        await store.SaveTaskAsync(Task("t", JudgementKind.Thumbs, overlap: 3), default);
        Assert.Equal("item-0", (await store.NextItemAsync("t", "cat", default))!.Id);
        Assert.Equal("item-0", (await store.NextItemAsync("t", "dan", default))!.Id);
        Assert.Null(await store.NextItemAsync("t", "ann", default));
    }

    [SkippableFact]
    public async Task ParallelSubmissionsAreAllStoredWithUniqueIncreasingIds()
    {
        const int Workers = 8, PerWorker = 50;
        var (store, items) = await TaskWithItemsAsync(JudgementKind.Rating, PerWorker, responses: 1);
        var ids = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => System.Threading.Tasks.Task.Run(async () =>
        {
            var mine = new List<long>();
            foreach (var item in items)
                mine.Add(await store.SubmitAsync(Judge(item, JudgementKind.Rating, $"annotator-{worker}") with { Rating = 1 + worker % 5 }, default));
            return mine;
        })));
        foreach (var mine in ids)
            Assert.True(mine.Zip(mine.Skip(1)).All(pair => pair.First < pair.Second), "each worker's ids increase");
        var all = ids.SelectMany(mine => mine).ToList();
        Assert.Equal(Workers * PerWorker, all.Distinct().Count());
        var stored = await store.ListJudgementsAsync(new JudgementQuery(), default);
        Assert.Equal(all.Order(), stored.Select(judgement => judgement.Id));
        for (int worker = 0; worker < Workers; worker++)
        {
            var own = stored.Where(judgement => judgement.Annotator == $"annotator-{worker}").ToList();
            Assert.Equal(items.Select(item => item.Id), own.Select(judgement => judgement.ItemId));
            Assert.All(own, judgement => Assert.Equal(1 + worker % 5, judgement.Rating));
        }
    }

    [SkippableFact]
    public async Task AnnotatorsAndVersionsRoundTripAndPersist()
    {
        var store = await OpenAsync("people");
        Assert.Null(await store.GetAnnotatorAsync("alice", default));
        await store.SaveAnnotatorAsync(new Annotator("alice", AnnotatorRole.Owner), "hash-1", default);
        await store.SaveAnnotatorAsync(new Annotator("bob", AnnotatorRole.Annotator), "hash-2", default);
        await store.SaveAnnotatorAsync(new Annotator("alice", AnnotatorRole.Annotator), "hash-3", default);
        Assert.Equal((new Annotator("alice", AnnotatorRole.Annotator), "hash-3"), await store.GetAnnotatorAsync("alice", default));
        Assert.Equal([new Annotator("alice", AnnotatorRole.Annotator), new Annotator("bob", AnnotatorRole.Annotator)], await store.ListAnnotatorsAsync(default));
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => store.SaveAnnotatorAsync(new Annotator(" ", AnnotatorRole.Owner), "h", default));
        Assert.StartsWith("Annotator.Name", exception.Message);

        Assert.Empty(await store.ListVersionsAsync(default));
        var root = new ModelVersionEntry("v0", null, "/models/v0", Start, "{}");
        var child = new ModelVersionEntry("v1", "v0", "/models/v1", Start.AddHours(1), """{"parent":"v0","judgements":{"after":0,"to":42},"note":"<script>😀"}""");
        await store.SaveVersionAsync(child, default);
        await store.SaveVersionAsync(root, default);
        Assert.Equal([root, child], await store.ListVersionsAsync(default));
        var moved = child with { Path = "/elsewhere/v1" };
        await store.SaveVersionAsync(moved, default);
        Assert.Equal([root, moved], await store.ListVersionsAsync(default));

        await store.SaveTaskAsync(Task("t", JudgementKind.Correction), default);
        var item = Item("i", "t", 1);
        await store.AddItemsAsync([item], default);
        long id = await store.SubmitAsync(Judge(item, JudgementKind.Correction, "alice"), default);
        Close(store);

        var reopened = await OpenAsync("people");
        Assert.Equal((new Annotator("alice", AnnotatorRole.Annotator), "hash-3"), await reopened.GetAnnotatorAsync("alice", default));
        Assert.Equal([root, moved], await reopened.ListVersionsAsync(default));
        AssertSame(Judge(item, JudgementKind.Correction, "alice") with { Id = id }, Assert.Single(await reopened.ListJudgementsAsync(new JudgementQuery(), default)));
        AssertSame(item, await reopened.GetItemAsync("i", default));
        // Ids keep increasing after a reopen.
        await reopened.AddItemsAsync([Item("j", "t", 1)], default);
        Assert.True(await reopened.SubmitAsync(Judge(Item("j", "t", 1), JudgementKind.Correction, "alice"), default) > id);
    }

    public virtual void Dispose()
    {
        foreach (var store in opened)
            store.Dispose();
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(Folder))
            Directory.Delete(Folder, recursive: true);
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteFeedbackStoreTests : FeedbackStoreContract
{
    protected override Task<IFeedbackStore> OpenCoreAsync(string name) =>
        FeedbackStores.OpenAsync(Path.Combine(Folder, name + ".db"), default);

    [Fact]
    public async Task OpensInWalModeWithFullSyncOnTheGivenPath()
    {
        var store = Assert.IsType<SqliteFeedbackStore>(await OpenAsync("durable"));
        Assert.Equal(Path.Combine(Folder, "durable.db"), store.DatabasePath);
        Assert.Equal("wal", store.Pragma("journal_mode"));
        Assert.Equal("2", store.Pragma("synchronous"));
        Assert.Equal("30000", store.Pragma("busy_timeout"));
    }

    [Fact]
    public async Task AFileThatIsNotAFeedbackDatabaseIsRefusedNamingIt()
    {
        Directory.CreateDirectory(Folder);
        string text = Path.Combine(Folder, "notes.txt");
        File.WriteAllText(text, "These are notes, not a database. They are long enough to fill a SQLite header and then some more.\n");
        var exception = await Assert.ThrowsAsync<InvalidDataException>(() => FeedbackStores.OpenAsync(text, default));
        Assert.Equal($"{text}: not a Loom feedback database (not a SQLite file)", exception.Message);
        Assert.StartsWith("These are notes", File.ReadAllText(text));

        string other = Path.Combine(Folder, "other.db");
        using (var connection = new SqliteConnection($"Data Source={other};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE recipes(name TEXT)";
            command.ExecuteNonQuery();
        }
        exception = await Assert.ThrowsAsync<InvalidDataException>(() => FeedbackStores.OpenAsync(other, default));
        Assert.Equal($"{other}: not a Loom feedback database (it holds other tables)", exception.Message);

        string newer = Path.Combine(Folder, "newer.db");
        Close(await OpenAsync("newer"));
        using (var connection = new SqliteConnection($"Data Source={newer};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE loom_feedback_schema SET version = 99";
            command.ExecuteNonQuery();
        }
        exception = await Assert.ThrowsAsync<InvalidDataException>(() => FeedbackStores.OpenAsync(newer, default));
        Assert.Equal($"{newer}: feedback database schema version 99, this Loom reads version 1", exception.Message);
    }

    [Fact]
    public async Task TwoOpenStoresOnOneFileSeeEachOthersJudgements()
    {
        var first = await OpenAsync("shared");
        var second = await OpenAsync("shared");
        await first.SaveTaskAsync(Task("t", JudgementKind.Thumbs, overlap: 1), default);
        var item = Item("i", "t", 1);
        await second.AddItemsAsync([item], default);
        await first.SubmitAsync(Judge(item, JudgementKind.Thumbs, "ann"), default);
        Assert.Null(await second.NextItemAsync("t", "bob", default));
        var exception = await Assert.ThrowsAsync<ArgumentException>(() => second.SubmitAsync(Judge(item, JudgementKind.Thumbs, "ann"), default));
        Assert.StartsWith("Judgement.Annotator 'ann' has already judged", exception.Message);
    }

    [Theory]
    [InlineData("Host=db;Username=loom", true)]
    [InlineData("host=db", true)]
    [InlineData("postgres://loom@db/feedback", true)]
    [InlineData("postgresql://loom@db/feedback", true)]
    [InlineData("feedback.db", false)]
    [InlineData("/var/lib/loom/Host=db", false)]
    [InlineData("postgres-feedback.db", false)]
    public void LocationIsPostgresOnlyForAConnectionString(string location, bool postgres) =>
        Assert.Equal(postgres, FeedbackStores.IsPostgres(location));

    [Fact]
    public void PostgresUriBecomesNpgsqlKeywords()
    {
        var keywords = new Npgsql.NpgsqlConnectionStringBuilder(FeedbackStores.ToNpgsql("postgresql://loom:p%40ss%3Aword@db.example:6543/loom_feedback?sslmode=require"));
        Assert.Equal("db.example", keywords.Host);
        Assert.Equal(6543, keywords.Port);
        Assert.Equal("loom", keywords.Username);
        Assert.Equal("p@ss:word", keywords.Password);
        Assert.Equal("loom_feedback", keywords.Database);
        Assert.Equal(Npgsql.SslMode.Require, keywords.SslMode);
        keywords = new Npgsql.NpgsqlConnectionStringBuilder(FeedbackStores.ToNpgsql("postgres://db"));
        Assert.Equal(("db", 5432), (keywords.Host, keywords.Port));
        Assert.Null(keywords.Username);
        Assert.Null(keywords.Database);
        Assert.Equal("Host=x;Username=y", FeedbackStores.ToNpgsql("Host=x;Username=y"));
        var exception = Assert.Throws<ArgumentException>(() => FeedbackStores.ToNpgsql("postgres://u:secret@db/x?nonsense=1"));
        Assert.StartsWith("PostgreSQL URI parameter 'nonsense'", exception.Message);
        exception = Assert.Throws<ArgumentException>(() => FeedbackStores.ToNpgsql("postgres://u:secret@/x"));
        Assert.DoesNotContain("secret", exception.Message);
    }
}

/// <summary>
/// Runs against the server in env LOOM_TEST_POSTGRES (a connection string); each test works in its own schemas and
/// drops them. Without the variable the tests skip, except under CI=true where they fail.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class PostgresFeedbackStoreTests : FeedbackStoreContract
{
    readonly string? connectionString = PostgresTestServer.ConnectionString();
    readonly string schemaPrefix = "loom_test_" + Guid.NewGuid().ToString("N")[..12] + "_";
    readonly HashSet<string> schemas = [];

    protected override async Task<IFeedbackStore> OpenCoreAsync(string name)
    {
        Skip.If(connectionString is null, PostgresTestServer.SkipMessage);
        schemas.Add(schemaPrefix + name);
        return await PostgresFeedbackStore.OpenAsync(connectionString!, schemaPrefix + name, default);
    }

    [SkippableFact]
    public async Task ASchemaThatIsNotAFeedbackStoreIsRefusedNamingIt()
    {
        Skip.If(connectionString is null, PostgresTestServer.SkipMessage);
        string schema = schemaPrefix + "other";
        schemas.Add(schema);
        await using (var dataSource = Npgsql.NpgsqlDataSource.Create(connectionString!))
        {
            await using var command = dataSource.CreateCommand($"CREATE SCHEMA {schema}; CREATE TABLE {schema}.recipes(name text)");
            await command.ExecuteNonQueryAsync();
        }
        var exception = await Assert.ThrowsAsync<InvalidDataException>(() => PostgresFeedbackStore.OpenAsync(connectionString!, schema, default));
        Assert.Equal($"PostgreSQL schema {schema}: not a Loom feedback store (it holds other tables)", exception.Message);
        var badName = await Assert.ThrowsAsync<ArgumentException>(() => PostgresFeedbackStore.OpenAsync(connectionString!, "Bad-Name", default));
        Assert.StartsWith("PostgreSQL schema 'Bad-Name'", badName.Message);
    }

    [SkippableFact]
    public async Task FeedbackStoresOpensPostgresForAConnectionString()
    {
        Skip.If(connectionString is null, PostgresTestServer.SkipMessage);
        // FeedbackStores opens the default schema; it is created when missing and left as it was found.
        await using var dataSource = Npgsql.NpgsqlDataSource.Create(connectionString!);
        await using var exists = dataSource.CreateCommand($"SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{PostgresFeedbackStore.DefaultSchema}'");
        bool existed = Convert.ToInt64(await exists.ExecuteScalarAsync()) > 0;
        using (var store = await FeedbackStores.OpenAsync(connectionString!, default))
            Assert.Equal(PostgresFeedbackStore.DefaultSchema, Assert.IsType<PostgresFeedbackStore>(store).Schema);
        if (!existed)
            await PostgresFeedbackStore.DropAsync(connectionString!, PostgresFeedbackStore.DefaultSchema, default);
    }

    public override void Dispose()
    {
        base.Dispose();
        foreach (string schema in schemas)
            PostgresFeedbackStore.DropAsync(connectionString!, schema, default).GetAwaiter().GetResult();
    }
}
