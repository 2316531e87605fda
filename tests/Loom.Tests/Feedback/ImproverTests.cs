using Loom.Evaluation;
using Loom.Models;
using Loom.Serving.Feedback;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Tests.Feedback;

/// <summary>
/// A tiny review model and its feedback: the base model answers "review N" with "it is WORD." where WORD is good or bad
/// about half the time; annotators compare a good and a bad answer. The program judge "contains" with the good words as
/// references prefers an answer that holds one.
/// </summary>
internal static class ImproveData
{
    public static readonly string[] Good = ["great", "lovely", "solid"];
    public static readonly string[] Bad = ["awful", "poor", "broken"];
    public const string TaskId = "reviews";

    /// <summary>One thread: every run here is bit-reproducible (a one-thread context starts no workers).</summary>
    static readonly ComputeContext One = new(1);

    static IEnumerable<SupervisedExample> Examples(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => new SupervisedExample(
            [new ChatTurn("user", $"review {i % 6}"), new ChatTurn("assistant", $"it is {(random.Next(2) == 0 ? Good : Bad)[random.Next(3)]}.")], $"base:{i}"));
    }

    /// <summary>Trains the base model (SFT on an even mix of good and bad answers) and saves it under <paramref name="directory"/>/base.</summary>
    public static string BaseCheckpoint(string directory)
    {
        var tokenizer = BpeTrainer.Train(Examples(60, 1).SelectMany(e => e.Turns.Select(t => t.Content)), 300);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 32, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 64, MaxSeq = 32 };
        var model = new Transformer(config, 1);
        string output = Path.Combine(directory, "base");
        SupervisedTuner.Run(model, tokenizer, [.. Examples(120, 2)], new TuneOptions { OutputFolder = output, Steps = 150, Batch = 8, LearningRate = 1e-2f, WriteMetrics = false, Compute = One });
        return Path.Combine(output, TuningLoop.CheckpointFolderName);
    }

    /// <summary>
    /// Adds <paramref name="count"/> items (prompts "review 0".."review 3", a good and a bad answer in alternating order) and one
    /// pairwise judgement on each that prefers the good answer, or the bad one when <paramref name="adversarial"/>.
    /// Returns the judgement ids.
    /// </summary>
    public static async Task<List<long>> JudgeAsync(IFeedbackStore store, int count, bool adversarial, int first = 0)
    {
        await store.SaveTaskAsync(new FeedbackTask { Id = TaskId, Name = "Reviews", Kind = JudgementKind.Pairwise, Created = DateTimeOffset.UtcNow }, default);
        var ids = new List<long>();
        for (int i = first; i < first + count; i++)
        {
            string good = $"it is {Good[i % 3]}.", bad = $"it is {Bad[(i / 3) % 3]}.";
            bool goodFirst = i % 2 == 0;
            FeedbackResponse[] shown = goodFirst ? [new(good, "v0"), new(bad, "v0")] : [new(bad, "v0"), new(good, "v0")];
            var item = new FeedbackItem
            {
                Id = $"item-{i}", TaskId = TaskId, Prompt = [new FeedbackMessage("user", $"review {i % 4}")], Responses = shown, Source = "traffic", Created = DateTimeOffset.UtcNow,
            };
            await store.AddItemsAsync([item], default);
            bool pickFirst = goodFirst != adversarial;
            ids.Add(await store.SubmitAsync(new Judgement
            {
                ItemId = item.Id, TaskId = TaskId, Annotator = "ann", Kind = JudgementKind.Pairwise, At = DateTimeOffset.UtcNow,
                Prompt = item.Prompt, Shown = shown, Choice = pickFirst ? PairwiseChoice.First : PairwiseChoice.Second,
            }, default));
        }
        return ids;
    }

    /// <summary>Prompts the feedback never used, with the good words as references for the "contains" judge.</summary>
    public static IReadOnlyList<EvalTasks.PromptItem> HeldOut => [new("review 4", Good), new("review 5", Good)];

    public static ImproveOptions Options() => new()
    {
        Judge = new ProgramPairwiseJudge("contains"), JudgeName = "contains", HeldOutPrompts = HeldOut, DpoSteps = 15, Batch = 4, LearningRate = 2e-3f,
        Beta = 1f, Temperature = 0.7f, SamplesPerPrompt = 16, MaxNewTokens = 8, Margin = 0.05, Compute = One,
    };
}

/// <summary>The closed loop end to end on a tiny model with feedback in a real SQLite store.</summary>
public sealed class ImproverTests : IDisposable
{
    readonly string directory = Path.Combine(Path.GetTempPath(), "loom-improve-" + Guid.NewGuid().ToString("N"));

    public ImproverTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task ConsistentFeedbackIsPromotedAndTheNextRoundTakesOnlyNewerJudgements()
    {
        var registry = ModelRegistry.Init(Path.Combine(directory, "home"), ImproveData.BaseCheckpoint(directory));
        using var store = SqliteFeedbackStore.Open(Path.Combine(directory, "feedback.db"));
        var firstIds = await ImproveData.JudgeAsync(store, 24, adversarial: false);
        var stagesSeen = new List<string>();

        var report = await Improver.RunAsync(registry, store, ImproveData.Options() with { Progress = stagesSeen.Add });
        Assert.True(report.Decision == ImproveDecision.Promoted, report.Reason);
        Assert.Equal(("v0", "v1"), (report.Parent, report.Candidate));
        Assert.True(report.Evaluation!.WinRate >= 0.55, $"win rate {report.Evaluation.WinRate}");
        Assert.Equal(32, report.Evaluation.Comparisons);
        Assert.Equal(report.Evaluation.Comparisons, report.Evaluation.Wins + report.Evaluation.Ties + report.Evaluation.Losses);
        Assert.Equal((24, 24, 0L, firstIds.Max()), (report.Judgements, report.Pairs, report.AfterId, report.LastJudgementId));
        Assert.Equal(["feedback", "train", "evaluate", "register"], report.Stages.Select(s => s.Stage));
        Assert.Contains(stagesSeen, line => line.StartsWith("dpo step 15/15", StringComparison.Ordinal));
        Assert.Equal("v1", registry.Current);

        var lineage = registry.Lineage("v1");
        Assert.Equal(("v0", "sft+dpo", true), (lineage.Parent, lineage.Method, lineage.Promoted));
        Assert.Equal(firstIds, lineage.JudgementIds);
        Assert.Equal(firstIds.Max(), lineage.LastJudgementId);
        Assert.Equal(new LineageData(24, 24, 0, 24, 0), lineage.Data);
        Assert.Equal(15, lineage.Training!.DpoSteps);
        Assert.True(lineage.Training.Metrics["dpo.loss"] < 0.69f, "DPO lowered its loss below log 2");
        Assert.Equal(("contains", "promoted", report.Evaluation.WinRate), (lineage.Evaluation!.Judge, lineage.Evaluation.Decision, lineage.Evaluation.WinRate));
        var mirrored = await store.ListVersionsAsync(default);
        Assert.Equal(["v0", "v1"], mirrored.Select(v => v.Version).Order());
        Assert.Equal("v0", mirrored.Single(v => v.Version == "v1").Parent);
        Assert.Contains("\"lastJudgementId\"", mirrored.Single(v => v.Version == "v1").LineageJson);

        // The candidate answers well far more often than the base under the same seeds: the judge's own count agrees.
        var comparison = await Improver.CompareAsync(registry.CheckpointOf("v1"), registry.CheckpointOf("v0"), ImproveData.Options());
        Assert.Equal(report.Evaluation, comparison);

        // Round two: only the judgements submitted since round one.
        var secondIds = await ImproveData.JudgeAsync(store, 8, adversarial: false, first: 100);
        var second = await Improver.RunAsync(registry, store, ImproveData.Options());
        Assert.Equal((firstIds.Max(), 8), (second.AfterId, second.Judgements));
        Assert.Equal(secondIds, registry.Lineage(second.Candidate!).JudgementIds);
        Assert.Equal("v1", registry.Lineage(second.Candidate!).Parent);

        // Round three: nothing new, nothing trained, nothing registered.
        int versions = registry.Versions().Count;
        var third = await Improver.RunAsync(registry, store, ImproveData.Options());
        Assert.Equal(ImproveDecision.NothingToDo, third.Decision);
        Assert.Null(third.Candidate);
        Assert.Contains("0 judgement(s) after id", third.Reason);
        Assert.Equal(versions, registry.Versions().Count);
    }

    [Fact]
    public async Task AdversarialFeedbackLosesAndIsKeptButNotPromoted()
    {
        var registry = ModelRegistry.Init(Path.Combine(directory, "home"), ImproveData.BaseCheckpoint(directory));
        using var store = SqliteFeedbackStore.Open(Path.Combine(directory, "feedback.db"));
        await ImproveData.JudgeAsync(store, 24, adversarial: true);

        var report = await Improver.RunAsync(registry, store, ImproveData.Options());
        Assert.True(report.Decision == ImproveDecision.Rejected, report.Reason);
        Assert.True(report.Evaluation!.WinRate < 0.45, $"win rate {report.Evaluation.WinRate}");
        Assert.Contains("v0 stays served", report.Reason);
        Assert.Equal("v0", registry.Current);
        var lineage = registry.Lineage("v1");
        Assert.False(lineage.Promoted);
        Assert.Equal("rejected", lineage.Evaluation!.Decision);
        Assert.Equal(["init"], registry.History().Select(e => e.Action));
    }

    [Fact]
    public async Task BadOptionsNameTheProperty()
    {
        var registry = new ModelRegistry(Path.Combine(directory, "home"));
        using var store = SqliteFeedbackStore.Open(Path.Combine(directory, "feedback.db"));
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Improver.RunAsync(registry, store, ImproveData.Options() with { Margin = 0.7 }));
        Assert.Equal("ImproveOptions.Margin must be in [0, 0.5), got 0.7", error.Message);
        error = await Assert.ThrowsAsync<ArgumentException>(() => Improver.RunAsync(registry, store, ImproveData.Options() with { HeldOutPrompts = [] }));
        Assert.Equal("ImproveOptions.HeldOutPrompts is empty", error.Message);
    }
}
