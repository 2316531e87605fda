using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Loom.Evaluation;
using Loom.IO;
using Loom.Models;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;
using Loom.Training;
using Loom.Training.Tuning;
using Microsoft.Extensions.AI;
using Spectre.Console;

namespace Loom.Cli;

/// <summary>What <c>loom quickstart</c> was asked for; null corpus means a sample of dotnet-docs.</summary>
internal sealed record QuickstartOptions(string OutputFolder, string? Corpus, bool Fast, int Threads, double Minutes);

/// <summary>
/// The sizes of one quickstart run: how much of the docs each stage reads, the model, and each stage's share of the time.
/// </summary>
internal sealed record QuickstartPlan
{
    public int MembersRead { get; init; }         // doc members read from the SDK before sampling
    public int CorpusMembers { get; init; }       // members written to the pretraining corpus
    public int VocabSize { get; init; }           // byte-level BPE vocabulary
    public LlamaConfig Model { get; init; } = new();
    public int Batch { get; init; }               // sequences per pretraining step
    public int PretrainSteps { get; init; }       // scheduled steps (the time budget may stop earlier)
    public double PretrainShare { get; init; }    // fraction of the overall budget for pretraining
    public int TuneExamples { get; init; }        // instruction examples written from the docs
    public int HeldOut { get; init; }             // instruction examples kept for evaluation
    public int TuneSteps { get; init; }           // scheduled tuning steps
    public double TuneShare { get; init; }        // fraction of the overall budget for tuning
    public double IngestShare { get; init; }      // fraction of the overall budget for embedding documents
    public int IndexMembers { get; init; }        // members ingested into the retrieval index
    public int Questions { get; init; }           // demo questions answered with citations
    public int SampleCount { get; init; }         // held-out prompts shown before/after tuning
    public int AnswerTokens { get; init; }        // tokens generated per answer
    public int ValidationTokens { get; init; }    // validation tokens for perplexity

    public static QuickstartPlan For(bool fast) => fast
        ? new QuickstartPlan
        {
            MembersRead = 4000, CorpusMembers = 2000, VocabSize = 1024,
            Model = new LlamaConfig { Dim = 64, Layers = 2, Heads = 4, KvHeads = 4, HiddenDim = 192, MaxSeq = 320 },
            Batch = 4, PretrainSteps = 80, PretrainShare = 0.3, TuneExamples = 260, HeldOut = 10, TuneSteps = 60, TuneShare = 0.15, IngestShare = 0.15,
            IndexMembers = 120, Questions = 2, SampleCount = 3, AnswerTokens = 16, ValidationTokens = 4096,
        }
        : new QuickstartPlan
        {
            MembersRead = 80000, CorpusMembers = 16000, VocabSize = 2048,
            Model = new LlamaConfig { Dim = 128, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 384, MaxSeq = 256 },
            Batch = 8, PretrainSteps = 600, PretrainShare = 0.45, TuneExamples = 3000, HeldOut = 50, TuneSteps = 250, TuneShare = 0.17, IngestShare = 0.13,
            IndexMembers = 2500, Questions = 4, SampleCount = 5, AnswerTokens = 40, ValidationTokens = 32768,
        };
}

/// <summary>
/// Loom's main job end to end on embedded defaults: corpus → BPE tokenizer and token shards → pretraining →
/// supervised tuning on instructions written from the docs → retrieval index → grounded answers → HTML report.
/// Every stage is a library call; this class only picks sizes, keeps time and prints what happens.
/// </summary>
internal sealed class QuickstartRun(QuickstartOptions options)
{
    public const string MarkerFileName = "quickstart.json";
    public const string ReportFileName = "report.html";
    public const string TokensFolderName = "tokens";
    public const string PretrainFolderName = "pretrain";
    public const string TunedFolderName = "tuned";
    public const string IndexFolderName = "index";
    const int SourceChars = 180;     // source text per citation in the prompt, so prompt + answer fit the context
    const int SourcesPerAnswer = 2;

    readonly QuickstartPlan plan = QuickstartPlan.For(options.Fast);
    ComputeContext compute = ComputeContext.Default; // the run's own context of options.Threads, set in RunAsync
    readonly List<(string Stage, TimeSpan Elapsed)> timings = [];
    readonly bool interactive = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
    readonly Stopwatch total = Stopwatch.StartNew();
    int stageNumber;

    string Out(string name) => Path.Combine(options.OutputFolder, name);

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        PrepareOutputFolder();
        using var runCompute = new ComputeContext(options.Threads);
        compute = runCompute;
        var budget = TimeSpan.FromMinutes(options.Minutes);
        Line($"loom quickstart{(options.Fast ? " --fast" : "")}: writing to {Path.GetFullPath(options.OutputFolder)}, budget {budget.TotalMinutes:F1} min, {options.Threads} threads");

        var members = Stage("read the .NET API docs", log => ReadMembers(log, cancellationToken));
        var random = new Random(1337);
        Shuffle(members, random);
        var heldOut = members.Take(plan.HeldOut).ToList();
        var tuneMembers = members.Skip(plan.HeldOut).Take(plan.TuneExamples).ToList();
        var corpusMembers = members.Take(plan.CorpusMembers).ToList();

        string corpus = Stage("write the corpus", log => WriteCorpus(corpusMembers, log));
        var shards = Stage("train the BPE tokenizer and tokenize", log =>
            CorpusPreparer.Prepare(new PrepareOptions(corpus, $"bpe:{plan.VocabSize}", Out(TokensFolderName)) { TokenizerSampleBytes = 8L << 20 }, log, cancellationToken));

        var curve = new List<(int Step, float Loss)>();
        var validationCurve = new List<(int Step, float Loss)>();
        var pretrained = Stage("pretrain", log => Pretrain(budget * plan.PretrainShare, curve, validationCurve, log, cancellationToken));
        string plotPath = Out("loss.png");
        LossPlot.Save(plotPath, curve, validationCurve);

        var model = Checkpoint.Load(pretrained.CheckpointFolder);
        var tokenizer = Tokenizer.Load(pretrained.CheckpointFolder);
        var perplexity = Stage("evaluate perplexity", log => ValidationPerplexity(model, tokenizer, log, cancellationToken));

        var evalItems = heldOut.Select(m => (Question: Question(m), Reference: FirstSentence(m.Text))).ToList();
        var before = await StageAsync("answer held-out questions (pretrained)", log => AnswerPlain(model, tokenizer, evalItems, log, cancellationToken));

        var examples = Stage("write instruction examples", log => InstructionExamples(tuneMembers, tokenizer, random, log));
        var tuneCurve = new List<(int Step, float Value)>();
        var tuned = Stage("tune on instructions", log => Tune(model, tokenizer, examples, budget * plan.TuneShare, tuneCurve, log, cancellationToken));
        var after = await StageAsync("answer held-out questions (tuned)", log => AnswerPlain(model, tokenizer, evalItems, log, cancellationToken));

        var questionMembers = heldOut.Take(plan.Questions).ToList();
        var indexMembers = questionMembers.Concat(members.Skip(plan.HeldOut).Take(plan.IndexMembers - questionMembers.Count)).ToList();
        using var index = await StageAsync("ingest docs into the retrieval index", log => Ingest(indexMembers, budget * plan.IngestShare, log, cancellationToken));
        var answers = await StageAsync("answer questions with citations", log => AnswerGrounded(model, tokenizer, index, questionMembers, log, cancellationToken));

        var report = Stage("write the report", _ => WriteReport(shards, pretrained, perplexity, tuned, evalItems, before, after, answers, plotPath, tuneCurve));
        PrintAnswers(answers);
        Line($"report: {Path.GetFullPath(report)}");
        Line($"done in {total.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    // ---- stages ----

    List<DocMember> ReadMembers(Action<string> log, CancellationToken cancellationToken)
    {
        var members = new List<DocMember>();
        foreach (var member in DotnetDocs.ReadAll())
        {
            cancellationToken.ThrowIfCancellationRequested();
            string answer = FirstSentence(member.Text);
            if (answer.Length < 20 || member.Title.Length > 80) continue;
            members.Add(member);
            if (members.Count >= plan.MembersRead) break;
        }
        if (members.Count < plan.HeldOut + plan.Questions + 20)
            throw new InvalidDataException($"{DotnetDocs.CorpusName}: only {members.Count} documented members found in the .NET SDK (need at least {plan.HeldOut + plan.Questions + 20})");
        log($"{members.Count:N0} documented members");
        return members;
    }

    string WriteCorpus(List<DocMember> corpusMembers, Action<string> log)
    {
        if (options.Corpus is not null && options.Corpus != DotnetDocs.CorpusName)
        {
            var corpus = TextCorpus.Open(options.Corpus);
            log($"{options.Corpus}: {corpus.Files.Count:N0} files, {corpus.TotalBytes:N0} bytes");
            return options.Corpus;
        }
        string path = Out("corpus.txt");
        long bytes = 0;
        AtomicFile.WriteAllText(path, string.Concat(corpusMembers.Select(m =>
        {
            string text = DotnetDocs.FormatDocument(m);
            bytes += text.Length;
            return text;
        })));
        log($"{corpusMembers.Count:N0} members, {bytes:N0} characters -> {path}");
        return path;
    }

    PretrainResult Pretrain(TimeSpan budget, List<(int, float)> curve, List<(int, float)> validationCurve, Action<string> log, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(budget);
        var pretrainOptions = new PretrainOptions
        {
            DataFolder = Out(TokensFolderName),
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
            Compute = compute,
        };
        log($"budget {budget.TotalSeconds:F0} s for at most {plan.PretrainSteps} steps");
        var result = Pretrainer.Run(pretrainOptions, e =>
        {
            switch (e)
            {
                case StartEvent s:
                    log($"{s.Parameters:N0} parameters ({s.Config.Layers} layers, dim {s.Config.Dim}, vocab {s.Config.VocabSize}, context {s.Config.MaxSeq}), {s.TokensPerStep:N0} tokens/step");
                    break;
                case StepEvent s:
                    curve.Add((s.Step, s.Loss));
                    if (s.Step == 1 || s.Step % 10 == 0)
                        log($"step {s.Step}/{s.Steps}: loss {s.Loss:F3}, {s.TokensPerSecond:N0} tok/s");
                    break;
                case EvalEvent s:
                    validationCurve.Add((s.Step, s.ValidationLoss));
                    log($"step {s.Step}: validation loss {s.ValidationLoss:F3}");
                    break;
            }
        }, limit.Token);
        cancellationToken.ThrowIfCancellationRequested();
        log($"{result.StepsDone} steps{(result.Interrupted ? " (time budget reached)" : "")}, loss {result.LastLoss:F3}");
        return result;
    }

    PerplexityResult ValidationPerplexity(Transformer model, ITokenizer tokenizer, Action<string> log, CancellationToken cancellationToken)
    {
        using var shards = TokenShards.Open(Out(TokensFolderName));
        int count = (int)Math.Min(plan.ValidationTokens, shards.Validation.Length);
        var tokens = new int[count];
        shards.Validation.Read(0, tokens);
        var result = Perplexity.Evaluate(model, tokenizer, tokens, 8, compute, cancellationToken);
        log($"validation loss {result.Loss:F3}, perplexity {result.Perplexity:F1} over {result.Tokens:N0} tokens");
        return result;
    }

    List<SupervisedExample> InstructionExamples(List<DocMember> tuneMembers, ITokenizer tokenizer, Random random, Action<string> log)
    {
        // Half plain questions, half the grounded-answer prompt (the member, mostly with a distractor, as numbered sources),
        // so the tuned model learns both to answer and to cite.
        var examples = new List<SupervisedExample>(tuneMembers.Count);
        int withSources = 0;
        for (int i = 0; i < tuneMembers.Count; i++)
        {
            var member = tuneMembers[i];
            string answer = FirstSentence(member.Text);
            if (i % 2 == 0)
            {
                examples.Add(new SupervisedExample([new ChatTurn("user", Question(member)), new ChatTurn("assistant", answer)], member.Id));
                continue;
            }
            var distractor = tuneMembers[(i + 1 + random.Next(tuneMembers.Count - 1)) % tuneMembers.Count];
            // One or two sources, the member's in either place, as retrieval will give them when the prompt must be shortened.
            bool alone = random.Next(4) == 0;
            bool first = alone || random.Next(2) == 0;
            var hits = alone ? new[] { Hit(member) } : first ? new[] { Hit(member), Hit(distractor) } : new[] { Hit(distractor), Hit(member) };
            string cited = $"{answer} [{(first ? 1 : 2)}]";
            int room = plan.Model.MaxSeq - tokenizer.Encode(cited).Length - 4;
            var turns = FittingPrompt(Question(member), hits, tokenizer, room, minimumSources: hits.Length);
            if (turns is null)
            {
                examples.Add(new SupervisedExample([new ChatTurn("user", Question(member)), new ChatTurn("assistant", answer)], member.Id));
                continue;
            }
            withSources++;
            examples.Add(new SupervisedExample([.. turns, new ChatTurn("assistant", cited)], member.Id));
        }
        log($"{examples.Count:N0} examples ({withSources:N0} with sources), {plan.HeldOut} held out for evaluation");
        return examples;
    }

    TuneResult Tune(Transformer model, ITokenizer tokenizer, List<SupervisedExample> examples, TimeSpan budget, List<(int, float)> curve, Action<string> log, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(budget);
        var tuneOptions = new TuneOptions
        {
            OutputFolder = Out(TunedFolderName),
            Steps = plan.TuneSteps,
            Batch = plan.Batch,
            LearningRate = 1e-3f,
            MinLearningRate = 1e-4f,
            WarmupSteps = Math.Max(2, plan.TuneSteps / 20),
            EvalFraction = 0.05,
            Seed = 1,
            Compute = compute,
        };
        log($"budget {budget.TotalSeconds:F0} s for at most {plan.TuneSteps} steps");
        var result = SupervisedTuner.Run(model, tokenizer, examples, tuneOptions, e =>
        {
            if (e.Evaluation)
            {
                log($"step {e.Step}: validation loss {e["val_loss"]:F3}");
                return;
            }
            curve.Add((e.Step, e["loss"]));
            if (e.Step == 1 || e.Step % 10 == 0) log($"step {e.Step}/{e.Steps}: loss {e["loss"]:F3}");
        }, Path.GetFullPath(Out(PretrainFolderName)), limit.Token);
        cancellationToken.ThrowIfCancellationRequested();
        log($"{result.Steps} steps{(result.Steps < plan.TuneSteps ? " (time budget reached)" : "")}, loss {result.LastStep?["loss"]:F3}");
        return result;
    }

    async Task<List<string>> AnswerPlain(Transformer model, ITokenizer tokenizer, List<(string Question, string Reference)> items, Action<string> log, CancellationToken cancellationToken)
    {
        await using var loomModel = LoomModel.Create("quickstart", model, tokenizer, new LoomModelOptions { Compute = compute });
        using var chat = new LoomChatClient(loomModel.Engine);
        var answers = new List<string>(items.Count);
        long generated = 0;
        foreach (var (question, _) in items)
        {
            var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, question)],
                new ChatOptions { Temperature = 0, MaxOutputTokens = plan.AnswerTokens }, cancellationToken);
            answers.Add(response.Text);
            generated += response.Usage?.OutputTokenCount ?? 0;
        }
        var (rouge, f1) = Scores(answers, items);
        log($"{items.Count} answers, {generated / (double)Math.Max(1, items.Count):F1} tokens each: ROUGE-L {rouge:F3}, token F1 {f1:F3}");
        return answers;
    }

    async Task<RetrievalIndex> Ingest(List<DocMember> indexMembers, TimeSpan budget, Action<string> log, CancellationToken cancellationToken)
    {
        var index = await RetrievalIndex.OpenAsync(Out(IndexFolderName), Embedders.MiniLm, null, create: true, cancellationToken,
            new MiniLmEmbeddingGenerator(threads: options.Threads));
        try
        {
            var ingestor = new Ingestor(index.Store, index.Embedder);
            // The demo questions' members come first; the rest stop coming once the stage's time is spent.
            var clock = Stopwatch.StartNew();
            var documents = indexMembers
                .TakeWhile((_, i) => i < plan.Questions || clock.Elapsed < budget)
                .Select(member => DotnetDocsReader.ToDocument(member));
            var report = await ingestor.IngestDocumentsAsync(documents, cancellationToken);
            log($"{report.Count(IngestOutcome.Added):N0} documents, {report.ChunksEmbedded:N0} chunks embedded in {report.Elapsed.TotalSeconds:F1} s " +
                $"({report.ChunksEmbedded / Math.Max(0.001, report.Elapsed.TotalSeconds):F0} chunks/s)");
            return index;
        }
        catch
        {
            index.Dispose();
            throw;
        }
    }

    async Task<List<GroundedResult>> AnswerGrounded(Transformer model, ITokenizer tokenizer, RetrievalIndex index, List<DocMember> questionMembers,
        Action<string> log, CancellationToken cancellationToken)
    {
        await using var loomModel = LoomModel.Create("quickstart-tuned", model, tokenizer, new LoomModelOptions { Compute = compute });
        using var chat = new LoomChatClient(loomModel.Engine);
        using var limited = new MaxTokensChatClient(chat, plan.AnswerTokens);
        var answerer = new GroundedAnswerer(index.Retriever, limited);
        var results = new List<GroundedResult>();
        foreach (var member in questionMembers)
        {
            string question = Question(member);
            var hits = await index.Retriever.SearchAsync(question, new SearchOptions(SearchMode.Hybrid, 5), cancellationToken);
            bool found = hits.Any(h => h.SourceId == member.Id);
            // Only the top sources, shortened, go into the prompt: the quickstart model's context is small.
            int room = plan.Model.MaxSeq - plan.AnswerTokens - 1;
            var shown = FittingHits(question, hits.Take(SourcesPerAnswer).ToList(), tokenizer, room, minimumSources: 1)
                ?? throw new InvalidDataException($"question '{question}' does not fit the model's context of {plan.Model.MaxSeq} tokens");
            var answer = await answerer.AnswerAsync(question, shown, cancellationToken);
            results.Add(new GroundedResult(question, member.Id, found, answer));
        }
        log($"retrieval hit rate (expected member in the top 5): {results.Count(r => r.Found)}/{results.Count}");
        return results;
    }

    string WriteReport(TokenShardsInfo shards, PretrainResult pretrained, PerplexityResult perplexity, TuneResult tuned,
        List<(string Question, string Reference)> evalItems, List<string> before, List<string> after, List<GroundedResult> answers,
        string plotPath, List<(int Step, float Value)> tuneCurve)
    {
        string tunePlot = Out("tune-loss.png");
        MetricsPlot.Save(tunePlot, [("tuning loss", tuneCurve)]);
        var (rougeBefore, f1Before) = Scores(before, evalItems);
        var (rougeAfter, f1After) = Scores(after, evalItems);
        var report = new HtmlReport("Loom quickstart")
            .Paragraph($"Corpus {shards.Corpus}: {shards.Documents:N0} documents, {shards.TokenCount:N0} tokens (byte-level BPE, vocabulary {shards.VocabSize:N0}). " +
                $"Model: {plan.Model.Layers} layers, dim {plan.Model.Dim}, context {plan.Model.MaxSeq}; pretrained {pretrained.StepsDone} steps, tuned {tuned.Steps} steps.")
            .Paragraph($"Instructions: \"What does {{member}} do?\" answered by the first sentence of the member's summary; {evalItems.Count} members are held out of tuning " +
                "(they are in the pretraining corpus, so the tuned model can recall them) and scored with ROUGE-L and token F1 against that sentence.")
            .Heading("Evaluation")
            .Table(["metric", "value"],
            [
                ["pretraining: final train loss", F(pretrained.LastLoss)],
                ["pretraining: validation loss (nats/token)", F(perplexity.Loss)],
                ["pretraining: validation perplexity", perplexity.Perplexity.ToString("F2", CultureInfo.InvariantCulture)],
                ["pretraining: validation bits/byte", F(perplexity.BitsPerByte)],
                ["held-out answers: ROUGE-L before tuning", F(rougeBefore)],
                ["held-out answers: ROUGE-L after tuning", F(rougeAfter)],
                ["held-out answers: token F1 before tuning", F(f1Before)],
                ["held-out answers: token F1 after tuning", F(f1After)],
                ["held-out answers: count", evalItems.Count.ToString(CultureInfo.InvariantCulture)],
                ["retrieval hit rate (top 5, demo questions)", $"{answers.Count(a => a.Found)}/{answers.Count}"],
            ])
            .Heading("Timings")
            .Table(["stage", "seconds"], timings.Select(t => (IReadOnlyList<string>)[t.Stage, t.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)]))
            .Heading("Loss curves")
            .Image(File.ReadAllBytes(plotPath), "pretraining loss (train per step, validation per evaluation)")
            .Image(File.ReadAllBytes(tunePlot), "supervised tuning loss")
            .Heading("Samples before and after tuning (held-out prompts)")
            .Table(["prompt", "reference", "before tuning", "after tuning"],
                evalItems.Take(plan.SampleCount).Select((item, i) => (IReadOnlyList<string>)[item.Question, item.Reference, Visible(before[i]), Visible(after[i])]))
            .Heading("Answers with citations");
        foreach (var answer in answers)
        {
            var sources = answer.Answer.CitedSources.Count > 0 ? answer.Answer.CitedSources : answer.Answer.AllSources;
            report.Paragraph($"Q: {answer.Question}")
                .Preformatted(answer.Answer.Text)
                .Paragraph((answer.Answer.CitedSources.Count > 0 ? "Sources: " : "Sources given (none cited): ") +
                    string.Join("; ", sources.Select(s => $"[{s.Number}] {s.Hit.SourceId}")));
        }
        string path = Out(ReportFileName);
        report.Save(path);
        return path;
    }

    // ---- helpers ----

    void PrepareOutputFolder()
    {
        string folder = options.OutputFolder;
        if (File.Exists(folder)) throw new IOException($"{folder}: is a file, not a folder");
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
        {
            if (!File.Exists(Path.Combine(folder, MarkerFileName)))
                throw new IOException($"{folder}: folder is not empty and is not a previous quickstart run (choose another --out)");
            foreach (var name in new[] { TokensFolderName, PretrainFolderName, TunedFolderName, IndexFolderName })
                if (Directory.Exists(Path.Combine(folder, name))) Directory.Delete(Path.Combine(folder, name), recursive: true);
        }
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, MarkerFileName), JsonSerializer.Serialize(new
        {
            fast = options.Fast, corpus = options.Corpus ?? DotnetDocs.CorpusName, minutes = options.Minutes, started = DateTime.UtcNow,
        }));
    }

    T Stage<T>(string name, Func<Action<string>, T> body)
    {
        var (header, stopwatch) = StartStage(name);
        T result = interactive
            ? AnsiConsole.Status().Start(Markup.Escape(header), context => body(message =>
            {
                context.Status(Markup.Escape($"{header}: {message}"));
                AnsiConsole.MarkupLine($"[grey]  {Markup.Escape(message)}[/]");
            }))
            : body(message => Console.WriteLine("  " + message));
        EndStage(name, stopwatch);
        return result;
    }

    async Task<T> StageAsync<T>(string name, Func<Action<string>, Task<T>> body)
    {
        var (header, stopwatch) = StartStage(name);
        T result = interactive
            ? await AnsiConsole.Status().StartAsync(Markup.Escape(header), context => body(message =>
            {
                context.Status(Markup.Escape($"{header}: {message}"));
                AnsiConsole.MarkupLine($"[grey]  {Markup.Escape(message)}[/]");
            }))
            : await body(message => Console.WriteLine("  " + message));
        EndStage(name, stopwatch);
        return result;
    }

    (string Header, Stopwatch Stopwatch) StartStage(string name)
    {
        string header = $"[{++stageNumber}] {name}";
        Line($"{header}...");
        return (header, Stopwatch.StartNew());
    }

    void EndStage(string name, Stopwatch stopwatch)
    {
        timings.Add((name, stopwatch.Elapsed));
        Line($"    {name}: {stopwatch.Elapsed.TotalSeconds:F1} s (total {total.Elapsed.TotalSeconds:F0} s)");
    }

    void Line(string text)
    {
        if (interactive) AnsiConsole.MarkupLine(Markup.Escape(text));
        else Console.WriteLine(text);
    }

    void PrintAnswers(List<GroundedResult> answers)
    {
        foreach (var answer in answers)
        {
            Line($"Q: {answer.Question}");
            Line($"A: {answer.Answer.Text.ReplaceLineEndings(" ")}");
            bool cited = answer.Answer.CitedSources.Count > 0;
            Line(cited ? "   Sources:" : "   Sources given to the model (none cited):");
            foreach (var source in cited ? answer.Answer.CitedSources : answer.Answer.AllSources)
                Line($"   [{source.Number}] {source.Hit.SourceId}");
        }
    }

    static (double RougeL, double TokenF1) Scores(List<string> answers, List<(string Question, string Reference)> items) =>
        answers.Count == 0 ? (0, 0) :
        (answers.Select((a, i) => TextMetrics.RougeL(a, items[i].Reference)).Average(),
         answers.Select((a, i) => TextMetrics.TokenF1(a, items[i].Reference)).Average());

    /// <summary>A generated answer as the report shows it: line breaks as ⏎, so an answer of blank lines is visible.</summary>
    static string Visible(string text) => text.Length == 0 ? "(nothing)" : text.ReplaceLineEndings("⏎");

    static string Question(DocMember member) => $"What does {member.Title} do?";

    /// <summary>The member's summary up to the end of its first sentence (at most 200 characters, on one line).</summary>
    internal static string FirstSentence(string text)
    {
        string line = text.ReplaceLineEndings(" ").Trim();
        int end = line.IndexOf(". ", StringComparison.Ordinal);
        string sentence = end >= 0 ? line[..(end + 1)] : line;
        return sentence.Length <= 200 ? sentence : sentence[..200].TrimEnd() + "…";
    }

    static string Shorten(string text, int chars = SourceChars)
    {
        string flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= chars ? flat : flat[..chars].TrimEnd() + "…";
    }

    /// <summary>
    /// The sources, shortened (and, down to <paramref name="minimumSources"/>, fewer) until the grounded prompt
    /// takes at most <paramref name="room"/> tokens; null when even the shortest does not fit.
    /// </summary>
    static IReadOnlyList<SearchHit>? FittingHits(string question, IReadOnlyList<SearchHit> hits, ITokenizer tokenizer, int room, int minimumSources)
    {
        for (int count = hits.Count; count >= Math.Min(minimumSources, hits.Count); count--)
            foreach (int chars in (int[])[SourceChars, 120, 80, 40])
            {
                var shortened = hits.Take(count).Select(h => h with { Text = Shorten(h.Text, chars) }).ToList();
                var turns = RagPrompt.Build(question, RagPrompt.Number(shortened)).Select(Turn).ToList();
                if (ChatTemplate.Encode(turns, tokenizer, addGenerationPrompt: true).Ids.Length <= room) return shortened;
            }
        return null;
    }

    static List<ChatTurn>? FittingPrompt(string question, IReadOnlyList<SearchHit> hits, ITokenizer tokenizer, int room, int minimumSources) =>
        FittingHits(question, hits, tokenizer, room, minimumSources) is { } fitting
            ? RagPrompt.Build(question, RagPrompt.Number(fitting)).Select(Turn).ToList()
            : null;

    static SearchHit Hit(DocMember member) =>
        new(0, member.Id, member.Title, "", Shorten(member.Text), 0, new Dictionary<string, string>());

    static ChatTurn Turn(ChatMessage message) => new(message.Role.Value, message.Text);

    static string F(double value) => value.ToString("F3", CultureInfo.InvariantCulture);

    static void Shuffle<T>(List<T> items, Random random)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

/// <summary>One demo question: the member it is about, whether retrieval found it, and the grounded answer.</summary>
internal sealed record GroundedResult(string Question, string ExpectedSource, bool Found, GroundedAnswer Answer);

/// <summary>Caps the answer length of every request (the grounded answerer leaves it open).</summary>
internal sealed class MaxTokensChatClient(IChatClient inner, int maxTokens) : DelegatingChatClient(inner)
{
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var capped = options?.Clone() ?? new ChatOptions();
        capped.MaxOutputTokens = maxTokens;
        return base.GetResponseAsync(messages, capped, cancellationToken);
    }
}
