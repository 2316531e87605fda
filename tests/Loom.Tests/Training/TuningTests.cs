using Loom.Cli;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;
using Loom.Tests.Text;
using Loom.Training.Tuning;

namespace Loom.Tests.Training;

/// <summary>The tuning runs end to end on a tiny model and a tiny BPE vocabulary: outputs, metrics, errors.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class TuningTests : IDisposable
{
    readonly string directory = Path.Combine(Path.GetTempPath(), "loom-tuning-" + Guid.NewGuid().ToString("N"));

    public TuningTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    static readonly string[] Good = ["great", "lovely", "solid"];
    static readonly string[] Bad = ["awful", "poor", "broken"];

    static List<SupervisedExample> Examples(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i => new SupervisedExample(
            [new ChatTurn("user", $"review {i % 4}"), new ChatTurn("assistant", $"it is {(random.Next(2) == 0 ? Good : Bad)[random.Next(3)]}.")], $"t:{i}"))];
    }

    static (Transformer Model, ByteLevelBpeTokenizer Tokenizer) Tiny()
    {
        var tokenizer = BpeTrainer.Train(Examples(40, 1).SelectMany(e => e.Turns.Select(t => t.Content)), 300);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 32 };
        return (new Transformer(config, 1), tokenizer);
    }

    static List<PreferencePair> Pairs(int count) =>
        [.. Enumerable.Range(0, count).Select(i => new PreferencePair([new ChatTurn("user", $"review {i % 4}")], $"it is {Good[i % 3]}.", $"it is {Bad[i % 3]}.", $"p:{i}"))];

    static List<string> Metrics(string folder) => [.. File.ReadAllLines(Path.Combine(folder, TuningLoop.MetricsFileName))];

    [Fact]
    public void SftLowersTheLossAndWritesACheckpointAndMetrics()
    {
        var (model, tokenizer) = Tiny();
        string output = Path.Combine(directory, "sft");
        var events = new List<TuneEvent>();
        var result = SupervisedTuner.Run(model, tokenizer, Examples(40, 2), new TuneOptions { OutputFolder = output, Steps = 30, Batch = 4, LearningRate = 1e-2f }, events.Add);
        var steps = events.Where(e => !e.Evaluation).ToList();
        Assert.Equal(30, result.Steps);
        Assert.True(steps[^1]["loss"] < steps[0]["loss"] * 0.7, $"loss {steps[0]["loss"]} → {steps[^1]["loss"]}");
        Assert.True(File.Exists(Path.Combine(output, "checkpoint", "config.json")));
        var loaded = Checkpoint.Load(output);
        Assert.Equal(model.Parameters[1].Span.ToArray(), loaded.Parameters[1].Span.ToArray());
        Assert.Equal(31, Metrics(output).Count); // 30 steps + 1 evaluation (40 examples: 4 held out)
        Assert.Contains("\"val_loss\"", Metrics(output)[^1]);
    }

    [Fact]
    public void LoraSftWritesAnAdapterAndAMergedCheckpoint()
    {
        var (model, tokenizer) = Tiny();
        string output = Path.Combine(directory, "lora");
        var lora = new LoraOptions { Rank = 2, Alpha = 4, Targets = ["q_proj", "v_proj", "up_proj"] };
        var frozen = model.Blocks[0].Mlp.Down.Span.ToArray();
        SupervisedTuner.Run(model, tokenizer, Examples(12, 3), new TuneOptions { OutputFolder = output, Steps = 5, Batch = 4, LearningRate = 1e-2f, Lora = lora, MergeLora = true });
        Assert.Equal(frozen, model.Blocks[0].Mlp.Down.Span.ToArray());
        Assert.True(File.Exists(Path.Combine(output, "adapter", Lora.ConfigFileName)));
        Assert.True(File.Exists(Path.Combine(output, "adapter", Lora.WeightsFileName)));

        // The merged checkpoint equals the base plus the saved adapter, merged again here.
        var merged = Checkpoint.Load(output);
        var (again, _) = Tiny();
        Lora.Load(Path.Combine(output, "adapter"), again);
        Lora.Merge(again);
        for (int i = 0; i < merged.Parameters.Count; i++)
            Assert.Equal(merged.Parameters[i].Span.ToArray(), again.Parameters[i].Span.ToArray());
    }

    [Fact]
    public void DpoRaisesTheMarginAndReportsKl()
    {
        var (model, tokenizer) = Tiny();
        string output = Path.Combine(directory, "dpo");
        var events = new List<TuneEvent>();
        DpoTuner.Run(model, tokenizer, Pairs(24), new TuneOptions { OutputFolder = output, Steps = 15, Batch = 4, LearningRate = 1e-2f }, beta: 0.5f, klPrompts: 4, maxNewTokens: 8, report: events.Add);
        var steps = events.Where(e => !e.Evaluation).ToList();
        Assert.True(steps[0]["loss"] > 0.6, "DPO starts at log 2 (policy = reference)");
        Assert.True(steps[^1]["reward_margin"] > 0.5, $"margin {steps[^1]["reward_margin"]}");
        var evaluation = events.Last(e => e.Evaluation);
        Assert.True(evaluation["accuracy"] > 0.5);
        Assert.True(float.IsFinite(evaluation["kl"]));
        Assert.True(File.Exists(Path.Combine(output, "checkpoint", SafeTensors.ModelFileName)));
    }

    [Fact]
    public void RewardModelLearnsPairsAndSavesAScoreHead()
    {
        var (model, tokenizer) = Tiny();
        string output = Path.Combine(directory, "rm");
        var (result, reward) = RewardTuner.Run(model, tokenizer, Pairs(40), new TuneOptions { OutputFolder = output, Steps = 30, Batch = 8, LearningRate = 1e-2f, EvalFraction = 0.2 });
        Assert.Equal(1f, result.LastEvaluation!["accuracy"]);
        var loaded = RewardModel.Load(output);
        Assert.Equal(reward.Head.Span.ToArray(), loaded.Head.Span.ToArray());
        var sequences = Pairs(2).Select(p => TokenSequence.FromResponse(p.Prompt, p.Chosen, tokenizer)).ToList();
        Assert.Equal(reward.Score(sequences), loaded.Score(sequences));
        Assert.Contains("LlamaForSequenceClassification", File.ReadAllText(Path.Combine(output, "checkpoint", "config.json")));
        Assert.Throws<InvalidDataException>(() => Checkpoint.Load(output));

        var best = new BestOfN(model, reward, tokenizer).Generate([new ChatTurn("user", "review 1")], 4, 8, 1f, new DeterministicRandom(1));
        Assert.Equal(4, best.Count);
        Assert.True(best.Zip(best.Skip(1)).All(p => p.First.Reward >= p.Second.Reward));
    }

    [Fact]
    public void GrpoRunsAgainstARewardModel()
    {
        var (model, tokenizer) = Tiny();
        var (body, _) = Tiny();
        var reward = new RewardModel(body);
        reward.Head.Span.Fill(0.1f);
        string output = Path.Combine(directory, "rl");
        var events = new List<TuneEvent>();
        var result = GrpoTuner.Run(model, reward, tokenizer, [[new ChatTurn("user", "review 1")], [new ChatTurn("user", "review 2")]],
            new TuneOptions { OutputFolder = output, Steps = 3, Batch = 2, LearningRate = 1e-3f }, new GrpoOptions { GroupSize = 4, MaxNewTokens = 6 }, events.Add);
        Assert.Equal(3, result.Steps);
        Assert.All(events, e => Assert.True(float.IsFinite(e["loss"]) && float.IsFinite(e["reward"]) && e["kl"] >= 0));
        Assert.Equal(0f, events[0]["kl"]); // the first rollout is scored by a policy equal to the reference
        Assert.True(File.Exists(Path.Combine(output, "checkpoint", "config.json")));
        Assert.Equal(3, Metrics(output).Count);
    }

    [Fact]
    public void KvCacheSamplerDecodesLikeTheFullForward()
    {
        var (model, _) = Tiny();
        var random = new Random(3);
        foreach (var p in model.Parameters)
            for (int i = 0; i < p.Length; i++) p[i] = p.Rank == 1 ? 1f : (float)(random.NextDouble() - 0.5);
        foreach (var t in Lora.Attach(model, new LoraOptions { Rank = 2, Targets = LoraOptions.AllTargets }).Where(t => t.Name!.Contains("lora_B")))
            for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() - 0.5);
        int[][] prompts = [[5, 6, 7], [8, 9, 10], [11, 12]];
        var samples = new PolicySampler(model).Sample(prompts, 2, 6, 0f, stopId: -1, new DeterministicRandom(1));
        for (int p = 0; p < prompts.Length; p++)
        {
            // Greedy decoding by re-running the whole prefix through Transformer.Forward.
            var ids = prompts[p].ToList();
            for (int step = 0; step < 6; step++)
            {
                var logits = model.Forward(new Tape { Recording = false }, [.. ids], 1, ids.Count);
                ids.Add(Loom.Models.Sampler.ArgMax(logits.Span.Slice((ids.Count - 1) * model.Config.VocabSize, model.Config.VocabSize)));
            }
            Assert.Equal(ids.Skip(prompts[p].Length), samples[2 * p]);
            Assert.Equal(samples[2 * p], samples[2 * p + 1]);
        }
    }

    [Fact]
    public void BadPromptLinesAreReportedWithFileAndLine()
    {
        string path = Path.Combine(directory, "prompts.jsonl");
        File.WriteAllLines(path, ["{\"prompt\":\"a\"}", "{\"prompt\": 3}", "not json", "{\"prompt\":[{\"role\":\"user\",\"content\":\"b\"}]}"]);
        var skipped = new List<string>();
        var prompts = FeedbackDatasets.ReadPrompts(path, skipped);
        Assert.Equal(2, prompts.Count);
        Assert.Equal([$"{path}:2: 'prompt' must be a string or a list of messages", $"{path}:3: malformed JSON"], skipped);
        var e = Assert.Throws<FormatException>(() => FeedbackDatasets.ReadPrompts(path, [], strict: true));
        Assert.StartsWith($"{path}:2:", e.Message);
    }

    static (int Code, string Output, string Error) Cli(params string[] args) => CliRun.Run(args);

    [Fact]
    public void CliRunsSftAndDpoAndReportsMistakesInOneLine()
    {
        var (model, tokenizer) = Tiny();
        string baseFolder = Path.Combine(directory, "base");
        Checkpoint.Save(baseFolder, model, tokenizer.Save);
        string data = Path.Combine(directory, "sft.jsonl");
        File.WriteAllLines(data, ["{\"prompt\":\"review 1\",\"completion\":\"it is great.\"}", "{\"messages\":[{\"role\":\"user\",\"content\":\"review 2\"},{\"role\":\"assistant\",\"content\":\"it is poor.\"}]}", "{\"prompt\":1}"]);
        string output = Path.Combine(directory, "cli-sft");
        var (code, stdout, stderr) = Cli("finetune", "sft", "--model", baseFolder, "--data", data, "--out", output, "--steps", "3", "--batch", "2", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("done: 3 steps", stdout);
        Assert.Contains($"{data}:3:", stderr);
        Assert.True(File.Exists(Path.Combine(output, FinetuneCommandPlot)));

        (code, _, stderr) = Cli("finetune", "sft", "--model", baseFolder, "--data", data, "--out", output, "--strict");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: {data}:3:", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));

        (code, _, stderr) = Cli("finetune", "dpo", "--model", Path.Combine(directory, "missing"), "--data", data, "--out", output);
        Assert.Equal(1, code);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("missing", stderr);

        (code, _, stderr) = Cli("finetune", "sft", "--model", baseFolder, "--data", data, "--out", output, "--lora-rank", "2", "--lora-targets", "q_proj,bogus");
        Assert.Equal(1, code);
        Assert.Contains("unknown module 'bogus'", stderr);
    }

    [Fact]
    public void GenerateBestOfRanksContinuationsWithTheRewardModel()
    {
        var (model, tokenizer) = Tiny();
        string policy = Path.Combine(directory, "policy");
        Checkpoint.Save(policy, model, tokenizer.Save);
        var (body, _) = Tiny();
        var reward = new RewardModel(body);
        var random = new Random(4);
        for (int i = 0; i < reward.Head.Length; i++) reward.Head[i] = (float)(random.NextDouble() - 0.5);
        string rewardFolder = Path.Combine(directory, "reward");
        reward.Save(rewardFolder, tokenizer);

        var (code, stdout, stderr) = Cli("generate", "it is", "--model", policy, "--best-of", "3", "--reward-model", rewardFolder, "--seed", "5", "--max-tokens", "6", "--threads", "1");
        Assert.True(code == 0, stderr);
        var scores = stderr.Split('\n').Where(l => l.StartsWith("reward ")).Select(l => float.Parse(l["reward ".Length..l.IndexOf(':')], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(3, scores.Count);
        Assert.Equal(scores.OrderByDescending(v => v), scores);
        string best = stderr.Split('\n').First(l => l.StartsWith("reward "))[(stderr.IndexOf(": ", StringComparison.Ordinal) + 2)..];
        Assert.Equal(best.TrimEnd(), stdout.TrimEnd().ReplaceLineEndings(" "));
        // The score is the reward model's on prompt + continuation.
        float expected = reward.Score([new TokenSequence(tokenizer.Encode("it is" + stdout.TrimEnd('\n')), new bool[tokenizer.Encode("it is" + stdout.TrimEnd('\n')).Length])])[0];
        Assert.Equal(scores[0], expected, 2);

        (code, _, stderr) = Cli("generate", "it is", "--model", policy, "--best-of", "3");
        Assert.Equal(1, code);
        Assert.Equal("error: --best-of needs --reward-model", stderr.Trim());
    }

    const string FinetuneCommandPlot = "curves.png";
}
