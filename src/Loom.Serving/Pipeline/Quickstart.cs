using System.Text.Json;
using Loom.Evaluation;
using Loom.IO;
using Loom.Models;
using Loom.Retrieval;
using Loom.Tensors;
using Loom.Text;
using Loom.Training;
using Loom.Training.Tuning;

namespace Loom.Serving.Pipeline;

/// <summary>Everything one quickstart run wrote and measured.</summary>
public sealed record QuickstartResult
{
    /// <summary>The output folder.</summary>
    public required string OutputFolder { get; init; }
    /// <summary>The HTML report (evaluation table, timings, loss curves, samples, cited answers).</summary>
    public required string ReportPath { get; init; }
    /// <summary>The sizes the run used.</summary>
    public required QuickstartPlan Plan { get; init; }
    /// <summary>The pretraining corpus.</summary>
    public required CorpusStageResult Corpus { get; init; }
    /// <summary>The tokenizer and token shards.</summary>
    public required TokenizeStageResult Tokens { get; init; }
    /// <summary>The pretrained checkpoint, its curves and loss plot.</summary>
    public required PretrainStageResult Pretrained { get; init; }
    /// <summary>The pretrained model on the validation tokens.</summary>
    public required PerplexityResult Perplexity { get; init; }
    /// <summary>The held-out prompts and their reference answers.</summary>
    public required IReadOnlyList<HeldOutItem> HeldOut { get; init; }
    /// <summary>Held-out answers of the pretrained model.</summary>
    public required AnswerStageResult Before { get; init; }
    /// <summary>The tuned checkpoint, its curve and loss plot.</summary>
    public required TuneStageResult Tuned { get; init; }
    /// <summary>Held-out answers of the tuned model.</summary>
    public required AnswerStageResult After { get; init; }
    /// <summary>The retrieval index folder.</summary>
    public required string IndexFolder { get; init; }
    /// <summary>What went into the index.</summary>
    public required IndexStageResult Index { get; init; }
    /// <summary>The demo questions answered with citations.</summary>
    public required IReadOnlyList<GroundedResult> Answers { get; init; }
    /// <summary>Each stage's time, in order.</summary>
    public required IReadOnlyList<StageTiming> Timings { get; init; }
}

/// <summary>
/// Loom's main job end to end on embedded defaults: corpus → BPE tokenizer and token shards → pretraining →
/// supervised tuning on instructions written from the docs → retrieval index → grounded answers → HTML report.
/// </summary>
public static class Quickstart
{
    public const string MarkerFileName = "quickstart.json";
    public const string ReportFileName = "report.html";
    public const string CorpusFileName = "corpus.txt";
    public const string TokensFolderName = "tokens";
    public const string PretrainFolderName = "pretrain";
    public const string TunedFolderName = "tuned";
    public const string IndexFolderName = "index";
    public const string LossPlotFileName = "loss.png";
    public const string TuneLossPlotFileName = "tune-loss.png";

    /// <summary>Runs every stage into <see cref="QuickstartOptions.OutputFolder"/>; each stage reports through <paramref name="progress"/>.</summary>
    public static async Task<QuickstartResult> RunAsync(QuickstartOptions options, IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var plan = QuickstartPlan.For(options.Fast);
        string Out(string name) => Path.Combine(options.OutputFolder, name);
        PrepareOutputFolder(options);
        int threads = options.ThreadsOrDefault;
        // One context for every stage's kernels: the run owns its threads and leaves the caller's untouched.
        using var compute = new ComputeContext(threads);
        var budget = TimeSpan.FromMinutes(options.MinutesOrDefault);
        var stages = new StageRunner(progress);

        var members = stages.Run("read the .NET API docs", log => ReadMembers(plan, log, cancellationToken));
        var random = new Random(1337);
        Shuffle(members, random);
        var heldOutMembers = members.Take(plan.HeldOut).ToList();
        var tuneMembers = members.Skip(plan.HeldOut).Take(plan.TuneExamples).ToList();

        var corpus = stages.Run("write the corpus", log => CorpusStage.Run(new CorpusStageOptions
        {
            OutputPath = Out(CorpusFileName),
            Corpus = options.CorpusOrDefault == DotnetDocs.CorpusName ? null : options.CorpusOrDefault,
            Members = members.Take(plan.CorpusMembers).ToList(),
        }, log, cancellationToken));
        var tokens = stages.Run("train the BPE tokenizer and tokenize", log => TokenizeStage.Run(new TokenizeStageOptions
        {
            Corpus = corpus.CorpusPath, OutputFolder = Out(TokensFolderName), Tokenizer = $"bpe:{plan.VocabSize}", TokenizerSampleBytes = 8L << 20,
        }, log, cancellationToken));

        var pretrained = stages.Run("pretrain", log => PretrainStage.Run(new PretrainStageOptions
        {
            Pretrain = new PretrainOptions
            {
                Compute = compute,
                DataFolder = tokens.Folder,
                OutputFolder = Out(PretrainFolderName),
                Model = plan.Model,
                Batch = plan.Batch,
                Steps = plan.PretrainSteps,
                LearningRate = 2e-3f,
                MinLearningRate = 2e-4f,
                WarmupSteps = Math.Max(2, plan.PretrainSteps / 20),
                EvalEvery = Math.Max(5, plan.PretrainSteps / 10),
                EvalBatches = options.Fast ? 2 : 8,
                SaveEvery = 0,
                Seed = 1337,
            },
            TimeBudget = budget * plan.PretrainShare,
            PlotPath = Out(LossPlotFileName),
        }, log, cancellationToken));

        var model = Checkpoint.Load(pretrained.CheckpointFolder);
        var tokenizer = Tokenizer.Load(pretrained.CheckpointFolder);
        var perplexity = stages.Run("evaluate perplexity", log => ValidationPerplexity(model, tokenizer, tokens.Folder, plan, compute, log, cancellationToken));

        var heldOut = heldOutMembers.Select(HeldOut).ToList();
        var answerOptions = new AnswerStageOptions { MaxTokens = plan.AnswerTokens, Compute = compute };
        var before = await stages.RunAsync("answer held-out questions (pretrained)",
            log => AnswerStage.RunAsync(model, tokenizer, heldOut, answerOptions, log, cancellationToken));

        var examples = stages.Run("write instruction examples", log =>
        {
            var written = InstructionData.Synthesize(tuneMembers, tokenizer, plan.Model.MaxSeq, random, log);
            log.Report($"{heldOut.Count} held out for evaluation");
            return written;
        });
        var tuned = stages.Run("tune on instructions", log => TuneStage.Run(model, tokenizer, examples, new TuneStageOptions
        {
            Tune = new TuneOptions
            {
                Compute = compute,
                OutputFolder = Out(TunedFolderName),
                Steps = plan.TuneSteps,
                Batch = plan.Batch,
                LearningRate = 1e-3f,
                MinLearningRate = 1e-4f,
                WarmupSteps = Math.Max(2, plan.TuneSteps / 20),
                EvalFraction = 0.05,
                Seed = 1,
            },
            BaseCheckpoint = Out(PretrainFolderName),
            TimeBudget = budget * plan.TuneShare,
            PlotPath = Out(TuneLossPlotFileName),
        }, log, cancellationToken));
        var after = await stages.RunAsync("answer held-out questions (tuned)",
            log => AnswerStage.RunAsync(model, tokenizer, heldOut, answerOptions, log, cancellationToken));

        // The demo questions' members go into the index first, so the time budget never leaves them out.
        var questionMembers = heldOutMembers.Take(plan.Questions).ToList();
        var indexMembers = questionMembers.Concat(members.Skip(plan.HeldOut).Take(plan.IndexMembers - questionMembers.Count));
        using var index = await RetrievalIndex.OpenAsync(Out(IndexFolderName), Embedders.MiniLm, null, create: true, cancellationToken,
            new MiniLmEmbeddingGenerator(threads: threads));
        var indexed = await stages.RunAsync("ingest docs into the retrieval index", log => IndexStage.RunAsync(index,
            indexMembers.Select(member => DotnetDocsReader.ToDocument(member)),
            new IndexStageOptions { TimeBudget = budget * plan.IngestShare, AlwaysIngest = questionMembers.Count }, log, cancellationToken));
        var answers = await stages.RunAsync("answer questions with citations", log => GroundedAnswers.AnswerAsync(model, tokenizer, index,
            questionMembers.Select(m => (InstructionData.Question(m), m.Id)).ToList(), plan.AnswerTokens, compute, log, cancellationToken));

        var result = new QuickstartResult
        {
            OutputFolder = options.OutputFolder, ReportPath = Out(ReportFileName), Plan = plan, Corpus = corpus, Tokens = tokens,
            Pretrained = pretrained, Perplexity = perplexity, HeldOut = heldOut, Before = before, Tuned = tuned, After = after,
            IndexFolder = Out(IndexFolderName), Index = indexed, Answers = answers, Timings = stages.Timings.ToList(),
        };
        stages.Run("write the report", _ => QuickstartReport.Write(result));
        return result with { Timings = stages.Timings.ToList() };
    }

    /// <summary>
    /// The held-out questions a quickstart run answers before and after tuning (the same members, in the same order, with
    /// their reference answers), as read from the installed .NET SDK's docs; <paramref name="fast"/> as <see cref="QuickstartOptions.Fast"/>.
    /// </summary>
    public static IReadOnlyList<HeldOutItem> HeldOutQuestions(bool fast, CancellationToken cancellationToken = default)
    {
        var members = ReadMembers(QuickstartPlan.For(fast), new Progress<string>(), cancellationToken);
        Shuffle(members, new Random(1337));
        return [.. members.Take(QuickstartPlan.For(fast).HeldOut).Select(HeldOut)];
    }

    static HeldOutItem HeldOut(DocMember member) => new(InstructionData.Question(member), InstructionData.FirstSentence(member.Text));

    static List<DocMember> ReadMembers(QuickstartPlan plan, IProgress<string> log, CancellationToken cancellationToken)
    {
        var members = new List<DocMember>();
        foreach (var member in DotnetDocs.ReadAll())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (InstructionData.FirstSentence(member.Text).Length < 20 || member.Title.Length > 80) continue;
            members.Add(member);
            if (members.Count >= plan.MembersRead) break;
        }
        int needed = plan.HeldOut + plan.Questions + 20;
        if (members.Count < needed)
            throw new InvalidDataException($"{DotnetDocs.CorpusName}: only {members.Count} documented members found in the .NET SDK (need at least {needed})");
        log.Report($"{members.Count:N0} documented members");
        return members;
    }

    static PerplexityResult ValidationPerplexity(Transformer model, ITokenizer tokenizer, string tokensFolder, QuickstartPlan plan, ComputeContext compute, IProgress<string> log,
        CancellationToken cancellationToken)
    {
        using var shards = TokenShards.Open(tokensFolder);
        int count = (int)Math.Min(plan.ValidationTokens, shards.Validation.Length);
        var tokens = new int[count];
        shards.Validation.Read(0, tokens);
        var result = Perplexity.Evaluate(model, tokenizer, tokens, 8, compute, cancellationToken);
        log.Report($"validation loss {result.Loss:F3}, perplexity {result.Perplexity:F1} over {result.Tokens:N0} tokens");
        return result;
    }

    /// <summary>An empty or new folder is used; a previous run's stage folders are replaced; anything else is refused untouched.</summary>
    static void PrepareOutputFolder(QuickstartOptions options)
    {
        string folder = options.OutputFolder;
        if (File.Exists(folder)) throw new IOException($"{folder}: QuickstartOptions.OutputFolder is a file, not a folder");
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
        {
            if (!File.Exists(Path.Combine(folder, MarkerFileName)))
                throw new IOException($"{folder}: folder is not empty and is not a previous quickstart run (choose another QuickstartOptions.OutputFolder)");
            foreach (var name in new[] { TokensFolderName, PretrainFolderName, TunedFolderName, IndexFolderName })
                if (Directory.Exists(Path.Combine(folder, name))) Directory.Delete(Path.Combine(folder, name), recursive: true);
        }
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, MarkerFileName), JsonSerializer.Serialize(new
        {
            fast = options.Fast, corpus = options.CorpusOrDefault, minutes = options.MinutesOrDefault, started = DateTime.UtcNow,
        }));
    }

    static void Shuffle<T>(List<T> items, Random random)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
