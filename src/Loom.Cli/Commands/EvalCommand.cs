using System.CommandLine;
using Loom.Evaluation;
using Loom.Models;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Cli.Commands;

/// <summary><c>loom eval</c>: task files run against a model (results JSON, HTML report, a gate on a baseline); <c>loom eval perplexity</c>.</summary>
internal static class EvalCommand
{
    /// <summary>The exit code when the gate fails: a metric got worse than the baseline beyond its tolerance.</summary>
    public const int GateFailed = 3;

    internal static Command Create()
    {
        var tasks = new Option<string[]>("--task") { Description = "A task file (JSON; see README's evaluation section); repeat for several", AllowMultipleArgumentsPerToken = true };
        var model = new Option<string?>("--model") { Description = "Checkpoint folder to evaluate" };
        var gguf = new Option<string?>("--gguf") { Description = "GGUF file to evaluate (run by llama.cpp) instead of --model" };
        var against = new Option<string?>("--against") { Description = "Model B for pairwise tasks: a checkpoint folder or a .gguf file" };
        var index = new Option<string?>("--index") { Description = "Retrieval index folder (for retrieval and rag tasks)" };
        var logModel = new Option<string?>("--log-model") { Description = "Log model checkpoint of `loom logs train` (for logs tasks; the model evaluated when no --model is given)" };
        var output = new Option<string?>("--out") { Description = "Write the results as JSON here" };
        var html = new Option<string?>("--html") { Description = "Write an HTML report here" };
        var baseline = new Option<string[]>("--baseline")
        {
            Description = "A previous results JSON to compare with (report) and gate on; repeat, oldest first, for a chain: the last is the baseline, all are plotted as trends",
        };
        var failUnder = new Option<string?>("--fail-under") { Description = "metric=tolerance[,metric=tolerance…]: exit 3 when a metric is worse than the baseline by more" };
        var cache = new Option<string?>("--cache") { Description = "Folder of cached answers, keyed by model version, prompt and options" };
        var threads = SharedOptions.Threads();
        var command = new Command("eval", "Evaluate a model on task files; with --baseline, exit 3 when a metric got worse beyond its tolerance.")
        {
            tasks, model, gguf, against, index, logModel, output, html, baseline, failUnder, cache, threads,
        };
        command.Subcommands.Add(CreatePerplexity());
        command.Subcommands.Add(CreateDocsChoices());
        command.Subcommands.Add(CreateReport());
        command.Subcommands.Add(CreateQuickstartHeldOut());
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("eval", async () =>
        {
            var taskFiles = parseResult.GetValue(tasks) ?? [];
            if (taskFiles.Length == 0) throw new ArgumentException("pass at least one --task FILE (or use `loom eval perplexity`)");
            string? folder = parseResult.GetValue(model), ggufPath = parseResult.GetValue(gguf), logFolder = parseResult.GetValue(logModel);
            var tolerances = ParseTolerances(parseResult.GetValue(failUnder));
            var history = (parseResult.GetValue(baseline) ?? []).Select(EvalRun.Load).ToList();
            if (tolerances.Count > 0 && history.Count == 0) throw new ArgumentException("--fail-under needs --baseline RUN.json");
            var baselineRun = history.Count > 0 ? history[^1] : null;
            var specs = taskFiles.Select(EvalTask.Load).ToList();
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            var kinds = specs.Select(s => s.Kind).ToHashSet();
            bool logsOnly = kinds.All(k => k == EvalTaskKind.Logs);
            if (folder is not null && ggufPath is not null) throw new ArgumentException("pass one of --model DIR and --gguf FILE, not both");
            if (folder is null && ggufPath is null && !logsOnly) throw new ArgumentException("pass --model DIR or --gguf FILE");
            if (kinds.Contains(EvalTaskKind.Logs) && logFolder is null) throw new ArgumentException("logs tasks need --log-model DIR");

            await using var subjects = await Subjects.OpenAsync(folder, ggufPath, logFolder, parseResult.GetValue(against), parseResult.GetValue(index), parseResult.GetValue(cache),
                kinds, threadCount, cancellationToken);
            var run = await EvalTasks.RunAsync(specs, subjects.Value, subjects.OpponentVersion, cancellationToken);
            foreach (var task in run.Tasks)
                foreach (var (name, value) in task.Metrics)
                    Console.WriteLine($"{task.Name} {name} {value.Value:G6}" + (value.Low is double low && value.High is double high ? $" [{low:G4}, {high:G4}]" : "") + $" (n {value.N})");
            if (subjects.Cache is { } cached) Console.WriteLine($"answer cache: {cached.Hits} hits, {cached.Misses} generated");
            if (parseResult.GetValue(output) is string outPath) run.Save(outPath);
            if (parseResult.GetValue(html) is string htmlPath)
            {
                var plots = new List<(string, byte[])>();
                if (folder is not null && LossPlot.ReadTrainingLog(Checkpoint.Resolve(folder)) is { Train.Count: > 0 } log)
                    plots.Add(("pretraining loss of this checkpoint: train per step and its moving average, validation per evaluation", LossPlot.Png(log.Train, log.Validation)));
                EvalReport.Build(run, baselineRun, plots, history.Count > 1 ? [.. history, run] : null).Save(htmlPath);
            }
            if (baselineRun is null) return 0;
            var failures = EvalGate.Check(run, baselineRun, tolerances);
            foreach (var failure in failures) Console.Error.WriteLine($"gate: {failure}");
            return failures.Count > 0 ? GateFailed : 0;
        }));
        return command;
    }

    /// <summary>Parses metric=tolerance pairs; an unknown metric or a negative tolerance is a one-line error.</summary>
    internal static Dictionary<string, double> ParseTolerances(string? text)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(text)) return result;
        foreach (string pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int equals = pair.IndexOf('=');
            if (equals <= 0) throw new ArgumentException($"--fail-under: \"{pair}\" is not metric=tolerance");
            string metric = pair[..equals];
            if (!MetricCatalog.IsKnown(metric)) throw new ArgumentException($"--fail-under: unknown metric \"{metric}\"");
            if (!double.TryParse(pair[(equals + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double tolerance) || !(tolerance >= 0))
                throw new ArgumentException($"--fail-under: the tolerance of {metric} must be a number ≥ 0");
            result[metric] = tolerance;
        }
        return result;
    }

    /// <summary>The models, clients and index a set of tasks needs, opened once and disposed together.</summary>
    sealed class Subjects : IAsyncDisposable
    {
        readonly List<Func<ValueTask>> disposals = [];
        public EvalSubjects Value { get; private set; } = null!;
        public ModelVersion? OpponentVersion { get; private set; }
        public ResponseCacheChatClient? Cache { get; private set; }

        public static async Task<Subjects> OpenAsync(string? folder, string? gguf, string? logFolder, string? against, string? indexFolder, string? cacheFolder,
            HashSet<EvalTaskKind> kinds, int threads, CancellationToken cancellationToken)
        {
            var subjects = new Subjects();
            try
            {
                var version = ModelVersion.Of(folder is not null ? Checkpoint.Resolve(folder) : gguf ?? Checkpoint.Resolve(logFolder!));
                ILogLikelihoodModel? logLikelihood = null;
                if (kinds.Contains(EvalTaskKind.Perplexity) || kinds.Contains(EvalTaskKind.MultipleChoice))
                {
                    if (gguf is not null)
                    {
                        var peer = LlamaCppLogLikelihood.Load(gguf, threads);
                        subjects.disposals.Add(() => { peer.Dispose(); return ValueTask.CompletedTask; });
                        logLikelihood = peer;
                    }
                    else
                    {
                        string resolved = Checkpoint.Resolve(folder!);
                        var compute = new ComputeContext(threads);
                        subjects.disposals.Add(() => { compute.Dispose(); return ValueTask.CompletedTask; });
                        logLikelihood = new TransformerLogLikelihood(Checkpoint.Load(resolved), Tokenizer.Load(resolved), version, compute);
                    }
                }
                IChatClient? chat = null, opponent = null;
                if (kinds.Contains(EvalTaskKind.Generate) || kinds.Contains(EvalTaskKind.Pairwise) || kinds.Contains(EvalTaskKind.Rag))
                {
                    chat = subjects.Chat(folder, gguf, threads, version, cacheFolder, primary: true);
                    if (kinds.Contains(EvalTaskKind.Pairwise))
                    {
                        if (against is null) throw new ArgumentException("pairwise tasks need --against (model B)");
                        bool isGguf = against.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
                        subjects.OpponentVersion = ModelVersion.Of(isGguf ? against : Checkpoint.Resolve(against));
                        opponent = subjects.Chat(isGguf ? null : against, isGguf ? against : null, threads, subjects.OpponentVersion, cacheFolder, primary: false);
                    }
                }
                Retriever? retriever = null;
                if (kinds.Contains(EvalTaskKind.Retrieval) || kinds.Contains(EvalTaskKind.Rag))
                {
                    if (indexFolder is null) throw new ArgumentException("retrieval and rag tasks need --index DIR");
                    var index = await RetrievalIndex.OpenAsync(indexFolder, null, null, create: false, cancellationToken);
                    subjects.disposals.Add(() => { index.Dispose(); return ValueTask.CompletedTask; });
                    retriever = index.Retriever;
                }
                var judgeCompute = new ComputeContext(threads);
                subjects.disposals.Add(() => { judgeCompute.Dispose(); return ValueTask.CompletedTask; });
                Func<IReadOnlyList<EvalTasks.LogSessionItem>, CancellationToken, IReadOnlyList<bool>>? detector = null;
                if (kinds.Contains(EvalTaskKind.Logs))
                {
                    var logs = Loom.Logs.LogModel.Load(logFolder!, judgeCompute);
                    detector = (sessions, token) => [.. Loom.Logs.AnomalyDetector.Detect(logs,
                        [.. sessions.Select(s => new Loom.Logs.LogSession(s.Id, s.Events, new long[s.Events.Count], s.Anomalous))]).Select(v => v.Anomalous)];
                }
                subjects.Value = new EvalSubjects(version, logLikelihood, chat, opponent, retriever, subjects.Judge(threads, cacheFolder), judgeCompute, detector);
                return subjects;
            }
            catch
            {
                await subjects.DisposeAsync();
                throw;
            }
        }

        /// <summary>Opens chat judges named "chat:DIR", "model:DIR" or "gguf:FILE" once each; they are disposed with the subjects.</summary>
        Func<string, IChatClient> Judge(int threads, string? cacheFolder)
        {
            var opened = new Dictionary<string, IChatClient>(StringComparer.Ordinal);
            return spec =>
            {
                if (opened.TryGetValue(spec, out var judge)) return judge;
                string path = spec[(spec.IndexOf(':') + 1)..];
                bool isGguf = spec.StartsWith("gguf:", StringComparison.Ordinal);
                var version = ModelVersion.Of(isGguf ? path : Checkpoint.Resolve(path));
                return opened[spec] = Chat(isGguf ? null : path, isGguf ? path : null, threads, version, cacheFolder, primary: false);
            };
        }

        IChatClient Chat(string? folder, string? gguf, int threads, ModelVersion version, string? cacheFolder, bool primary)
        {
            var handle = GeneratorHandle.Open(folder, gguf, threads);
            disposals.Add(handle.DisposeAsync);
            var chat = handle.Generator.AsIChatClient();
            if (cacheFolder is null) return chat;
            var cached = new ResponseCacheChatClient(chat, cacheFolder, version);
            if (primary) Cache = cached;
            return cached;
        }

        public async ValueTask DisposeAsync()
        {
            for (int i = disposals.Count - 1; i >= 0; i--) await disposals[i]();
            disposals.Clear();
        }
    }

    static Command CreateReport()
    {
        var runs = new Argument<string[]>("runs") { Description = "Results JSON files of `loom eval --out`, oldest first", Arity = ArgumentArity.OneOrMore };
        var html = new Option<string>("--html") { Description = "Write the HTML report here", Required = true };
        var command = new Command("report", "One HTML report of several evaluation runs: each metric per version, its change, and a plot of its trend.") { runs, html };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var loaded = parseResult.GetValue(runs)!.Select(EvalRun.Load).ToList();
            EvalReport.BuildTrends(loaded).Save(parseResult.GetValue(html)!);
            Console.WriteLine($"{loaded.Count} runs reported in {parseResult.GetValue(html)}");
            return 0;
        }));
        return command;
    }

    /// <summary>JSON lines that keep &lt;, &gt; and &amp; readable (generic type names are full of them).</summary>
    static readonly System.Text.Json.JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static Command CreateQuickstartHeldOut()
    {
        var output = new Option<string>("--out") { Description = "JSONL file to write ({\"prompt\", \"reference\"} per line)", Required = true };
        var fast = new Option<bool>("--fast") { Description = "The held-out questions of `loom quickstart --fast`" };
        var command = new Command("quickstart-heldout", "Write the quickstart's held-out questions and reference answers (a generate task's data) from the installed SDK's docs.")
        {
            output, fast,
        };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var items = Loom.Serving.Pipeline.Quickstart.HeldOutQuestions(parseResult.GetValue(fast));
            Loom.IO.AtomicFile.WriteAllText(parseResult.GetValue(output)!, string.Concat(items.Select(item =>
                new System.Text.Json.Nodes.JsonObject { ["prompt"] = item.Question, ["reference"] = item.Reference }.ToJsonString(Readable) + "\n")));
            Console.WriteLine($"{items.Count} held-out questions written to {parseResult.GetValue(output)}");
            return 0;
        }));
        return command;
    }

    static Command CreateDocsChoices()
    {
        var output = new Option<string>("--out") { Description = "JSONL file to write", Required = true };
        var count = new Option<int>("--count") { Description = "Questions", DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { Description = "Seed of the sample, distractors and answer positions", DefaultValueFactory = _ => 15 };
        var command = new Command("docs-choices", "Write the .NET docs multiple-choice set (which member does this summary describe, 4 choices) from the installed SDK's docs.")
        {
            output, count, seed,
        };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            int n = parseResult.GetValue(count);
            if (n < 1) throw new ArgumentException($"--count must be positive, got {n}");
            var items = DotnetDocsTasks.MemberChoices(DotnetDocs.ReadAll(), n, parseResult.GetValue(seed));
            DotnetDocsTasks.Save(parseResult.GetValue(output)!, items);
            Console.WriteLine($"{items.Count} questions written to {parseResult.GetValue(output)}");
            return 0;
        }));
        return command;
    }

    static Command CreatePerplexity()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder (or a `loom pretrain` output folder)", Required = true };
        var data = new Option<string>("--data") { Description = "A text file, or a token shards folder from `loom prepare` (its validation split is used)", Required = true };
        var maxTokens = new Option<long>("--max-tokens") { Description = "Evaluate at most this many tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "Windows per forward pass", DefaultValueFactory = _ => 8 };
        var threads = SharedOptions.Threads();
        var command = new Command("perplexity", "Loss, perplexity and bits per byte of a model on held-out text.") { model, data, maxTokens, batch, threads };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            int batchSize = parseResult.GetValue(batch);
            if (batchSize < 1) throw new ArgumentException($"--batch must be positive, got {batchSize}");
            long limit = parseResult.GetValue(maxTokens);
            if (limit < 0) throw new ArgumentException($"--max-tokens must be ≥ 0, got {limit}");
            using var compute = new ComputeContext(threadCount);

            string folder = Checkpoint.Resolve(parseResult.GetValue(model)!);
            var transformer = Checkpoint.Load(folder);
            var tokenizer = Tokenizer.Load(folder);
            string path = parseResult.GetValue(data)!;
            int[] tokens;
            if (Directory.Exists(path))
            {
                using var shards = TokenShards.Open(path);
                if (shards.Tokenizer.VocabSize != tokenizer.VocabSize)
                    throw new InvalidDataException($"{path}: the data's tokenizer has {shards.Tokenizer.VocabSize} tokens, the model's {tokenizer.VocabSize}");
                long count = limit > 0 ? Math.Min(limit, shards.Validation.Length) : shards.Validation.Length;
                if (count > Array.MaxLength) throw new ArgumentException($"{path}: {count} validation tokens; pass --max-tokens");
                tokens = new int[count];
                shards.Validation.Read(0, tokens);
            }
            else if (File.Exists(path))
            {
                tokens = tokenizer.Encode(File.ReadAllText(path));
                if (limit > 0 && tokens.Length > limit) tokens = tokens[..(int)limit];
            }
            else
            {
                throw new FileNotFoundException($"{path}: no such file or folder");
            }
            if (tokens.Length < 2) throw new InvalidDataException($"{path}: {tokens.Length} tokens, at least 2 are needed");
            var result = Perplexity.Evaluate(transformer, tokenizer, tokens, batchSize, compute);
            Console.WriteLine($"tokens {result.Tokens:N0}, bytes {result.Bytes:N0}");
            Console.WriteLine($"loss {result.Loss:F4} nats/token, perplexity {result.Perplexity:F3}, {result.BitsPerByte:F4} bits/byte");
            return 0;
        }));
        return command;
    }
}
