using Loom.Evaluation;
using Loom.Models;
using Loom.Serving.Feedback;
using Loom.Tests.Models;
using Loom.Tests.Text;
using Loom.Text;

namespace Loom.Tests.Feedback;

/// <summary><c>loom feedback</c> end to end, in-process, on tiny checkpoints and a SQLite store.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class FeedbackCommandTests : IDisposable
{
    readonly string directory = TestData.NewTemporaryDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    string StorePath => Path.Combine(directory, "feedback.db");

    string SaveCheckpoint(string name, int seed)
    {
        // Byte-level BPE, so the chat template's markers encode.
        var tokenizer = BpeTrainer.Train(["the quick brown fox jumps over the lazy dog, to be or not to be"], 300);
        var model = TestModels.Random(TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 128 }, seed);
        string folder = Path.Combine(directory, name);
        Checkpoint.Save(folder, model, tokenizer.Save);
        return folder;
    }

    (int ExitCode, string Output, string Error) RunFeedback(params string[] args) => CliRun.Run(["feedback", .. args, "--store", StorePath]);

    static IFeedbackStore Open(string path) => FeedbackStores.OpenAsync(path, CancellationToken.None).GetAwaiter().GetResult();

    [Fact]
    [Trait(TestCategories.Category, TestCategories.Slow)]
    public async Task QueuesJudgesAndReportsAPairwiseTask()
    {
        string first = SaveCheckpoint("first", 1), second = SaveCheckpoint("second", 2);
        string prompts = Path.Combine(directory, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt":"the fox"}""", "", """{"prompt":[{"role":"system","content":"be brief"},{"role":"user","content":"to be"}]}""", """{"prompt":"a dog"}"""]);
        string guidelines = Path.Combine(directory, "guidelines.md");
        File.WriteAllText(guidelines, "Prefer the answer that is correct.");

        var (code, output, error) = RunFeedback("task", "--id", "cmp", "--kind", "pairwise", "--overlap", "2", "--guidelines", guidelines);
        Assert.True(code == 0, error);
        Assert.Contains("task cmp: pairwise, overlap 2", output);
        (code, output, error) = RunFeedback("queue", "--task", "cmp", "--prompts", prompts, "--model", first, "--model", second, "--max-tokens", "6", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.Contains("3 new item(s) of 3", output);
        // Queuing again adds nothing: the ids are the task and the line number.
        (code, output, _) = RunFeedback("queue", "--task", "cmp", "--prompts", prompts, "--model", first, "--model", second, "--max-tokens", "6", "--threads", "1");
        Assert.Equal(0, code);
        Assert.Contains("0 new item(s) of 3", output);

        string firstVersion = ModelVersion.Of(first).ToString(), secondVersion = ModelVersion.Of(second).ToString();
        using (var store = Open(StorePath))
        {
            var task = (await store.GetTaskAsync("cmp", default))!;
            Assert.Equal("Prefer the answer that is correct.", task.Guidelines);
            var items = await store.ListItemsAsync("cmp", default);
            Assert.Equal(["cmp:1", "cmp:3", "cmp:4"], items.Select(i => i.Id));
            Assert.Equal($"{prompts}:3", items[1].Source);
            Assert.Equal([new FeedbackMessage("system", "be brief"), new FeedbackMessage("user", "to be")], items[1].Prompt);
            Assert.All(items, i => Assert.Equal([firstVersion, secondVersion], i.Responses.Select(r => r.ModelVersion)));

            // Two annotators prefer the first model's response everywhere, bob sees the pair reversed; carol disagrees once.
            long id = 0;
            foreach (var item in items)
            {
                await store.SubmitAsync(FeedbackFixtures.Judge(++id, item, "alice", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.First) with { Id = 0 }, default);
                await store.SubmitAsync(FeedbackFixtures.Judge(++id, item, "bob", JudgementKind.Pairwise, [1, 0], choice: PairwiseChoice.Second) with { Id = 0 }, default);
            }
            await store.SubmitAsync(FeedbackFixtures.Judge(++id, items[0], "carol", JudgementKind.Pairwise, [0, 1], choice: PairwiseChoice.Second) with { Id = 0 }, default);
        }

        (code, output, error) = RunFeedback("stats", "--task", "cmp");
        Assert.True(code == 0, error);
        Assert.Contains("3 item(s), 3 with 2 judgement(s), 7 judgement(s)", output);
        Assert.Contains("  alice: 3", output);
        Assert.Contains("  carol: 1", output);
        // Item 1: alice, bob agree and carol not (1 of 3 pairs); items 3 and 4: 1 of 1 → (1/3 + 1 + 1) / 3 = 77.8%.
        Assert.Contains("percent agreement   77.8", output);

        (code, output, error) = RunFeedback("leaderboard", "--resamples", "20");
        Assert.True(code == 0, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(firstVersion, lines[1]);
        Assert.Contains(secondVersion, lines[2]);

        string exported = Path.Combine(directory, "export");
        (code, output, error) = RunFeedback("export", "--task", "cmp", "--out", exported, "--min-agree", "2");
        Assert.True(code == 0, error);
        Assert.Contains("exported 3 comparison(s)", output);
        var data = FeedbackDatasets.Read(FeedbackExport.FileNames.Select(f => Path.Combine(exported, f)), strict: true);
        Assert.Equal(3, data.Pairs.Count);
        using (var store = Open(StorePath))
        {
            var items = await store.ListItemsAsync("cmp", default);
            Assert.Equal(items.Select(i => (i.Responses[0].Text, i.Responses[1].Text)), data.Pairs.Select(p => (p.Chosen, p.Rejected)));
        }
    }

    [Fact]
    [Trait(TestCategories.Category, TestCategories.Slow)]
    public async Task RankItemsHoldEveryResponseAndRatingItemsOneEach()
    {
        string model = SaveCheckpoint("only", 3);
        string prompts = Path.Combine(directory, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt":"the dog"}"""]);
        Assert.Equal(0, RunFeedback("task", "--id", "rank", "--kind", "rank").ExitCode);
        Assert.Equal(0, RunFeedback("task", "--id", "rate", "--kind", "rating").ExitCode);
        string[] common = ["--prompts", prompts, "--model", model, "--max-tokens", "8", "--temperature", "1.5", "--threads", "1"];
        var (code, _, error) = RunFeedback(["queue", "--task", "rank", "--responses", "3", .. common]);
        Assert.True(code == 0, error);
        (code, _, error) = RunFeedback(["queue", "--task", "rate", "--responses", "2", .. common]);
        Assert.True(code == 0, error);
        using var store = Open(StorePath);
        var ranked = Assert.Single(await store.ListItemsAsync("rank", default));
        Assert.Equal("rank:1", ranked.Id);
        Assert.Equal(3, ranked.Responses.Count);
        // Seeds 0, 1, 2: three samples of one model, not one sample three times.
        Assert.True(ranked.Responses.Select(r => r.Text).Distinct().Count() > 1);
        var rated = await store.ListItemsAsync("rate", default);
        Assert.Equal(["rate:1:0", "rate:1:1"], rated.Select(i => i.Id));
        Assert.All(rated, i => Assert.Single(i.Responses));
        // The rating items hold the same samples as the first two of the ranking (same seeds).
        Assert.Equal(ranked.Responses.Take(2).Select(r => r.Text), rated.Select(i => i.Responses[0].Text));
    }

    [Fact]
    public async Task AnnotatorPasswordsAreReadFromStdinAndStoredHashed()
    {
        var (code, output, error) = CliRun.WithInput("s3cret pass\n", "feedback", "annotator", "--name", "alice", "--role", "owner", "--store", StorePath);
        Assert.True(code == 0, error);
        Assert.Contains("annotator alice: owner", output);
        using (var store = Open(StorePath))
        {
            var (annotator, hash) = (await store.GetAnnotatorAsync("alice", default))!.Value;
            Assert.Equal(AnnotatorRole.Owner, annotator.Role);
            Assert.DoesNotContain("s3cret", hash);
            Assert.True(PasswordHasher.Verify("s3cret pass", hash));
        }
        (code, _, error) = CliRun.WithInput("", "feedback", "annotator", "--name", "bob", "--store", StorePath);
        Assert.Equal(1, code);
        Assert.StartsWith("error: no password on stdin", error);
    }

    [Fact]
    public void BadInputGetsOneLineNamingTheFlag()
    {
        Assert.Equal(0, RunFeedback("task", "--id", "r", "--kind", "rating").ExitCode);
        foreach (var (args, message) in new (string[], string)[]
        {
            (["task", "--id", "x", "--kind", "vote"], "--kind 'vote' is not pairwise, rank, rating, correction or thumbs"),
            (["task", "--id", "x", "--kind", "rank", "--overlap", "0"], "--overlap must be positive"),
            (["stats", "--task", "missing"], "no feedback task 'missing'"),
            (["export", "--out", directory], "pass exactly one of --task ID and --all"),
            (["export", "--task", "r", "--out", directory, "--min-agree", "0"], "--min-agree must be positive"),
            (["leaderboard", "--resamples", "-1"], "--resamples must not be negative"),
            (["annotator", "--name", "a", "--role", "boss"], "--role 'boss' is not owner or annotator"),
            (["queue", "--task", "r", "--prompts", Path.Combine(directory, "none.jsonl"), "--model", Path.Combine(directory, "nothing")], "--model"),
        })
        {
            var (code, _, error) = RunFeedback(args);
            Assert.Equal(1, code);
            Assert.StartsWith("error: ", error);
            Assert.Contains(message, error);
            Assert.Single(error.TrimEnd().Split('\n'));
        }
    }
}
