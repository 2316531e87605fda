using System.CommandLine;
using System.Diagnostics;
using Loom.IO;
using Loom.Logs;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Tensors;

namespace Loom.Cli.Commands;

/// <summary><c>loom logs parse|train|detect|watch|explain</c>: template mining, the log model, detection, a live file, explanations.</summary>
internal static class LogsCommand
{
    internal static Command Create()
    {
        var command = new Command("logs", "Parse logs into templates, train a log model on normal sessions, detect anomalous sessions, watch a live file, explain a flagged session.");
        command.Subcommands.Add(CreateParse());
        command.Subcommands.Add(CreateTrain());
        command.Subcommands.Add(CreateDetect());
        command.Subcommands.Add(CreateWatch());
        command.Subcommands.Add(CreateExplain());
        return command;
    }

    static Option<string?> PresetOption() => new("--preset") { Description = $"Log format preset: {string.Join(", ", LogPresets.All.Keys)} (default generic)." };
    static Option<string?> LayoutOption() => new("--layout") { Description = "Header layout such as '<Date> <Time> <Level>: <Content>' (replaces the preset's)." };

    static Command CreateParse()
    {
        var input = new Argument<string>("file") { Description = "The log file." };
        var output = new Option<string>("--out") { Description = "Structured output: .jsonl or .csv.", Required = true };
        var preset = PresetOption();
        var layout = LayoutOption();
        var similarity = new Option<double?>("--similarity") { Description = "Similarity threshold (replaces the preset's)." };
        var templates = new Option<string?>("--templates") { Description = "Also write the templates (id, count, template) as CSV here." };
        var command = new Command("parse", "Mine templates from a log file and write each line's template id, template and parameters.")
        {
            input, output, preset, layout, similarity, templates,
        };
        command.SetAction(result => UserErrors.Run(() =>
        {
            var presetValue = LogPresets.Get(result.GetValue(preset) ?? LogPresets.GenericName);
            var parser = new LogParser(new LogParserOptions
            {
                Preset = presetValue.Name,
                Layout = result.GetValue(layout),
                Miner = result.GetValue(similarity) is { } st ? presetValue.Miner with { Similarity = st } : null,
            });
            var stopwatch = Stopwatch.StartNew();
            long lines = parser.ParseToFile(result.GetValue(input)!, result.GetValue(output)!);
            if (result.GetValue(templates) is { } templatesPath)
                AtomicFile.WriteAllText(templatesPath, "template_id,count,template\n" + string.Concat(parser.Miner.Templates.Select(t =>
                    $"{t.Id},{t.Count},\"{t.Text.Replace("\"", "\"\"", StringComparison.Ordinal)}\"\n")));
            Console.WriteLine($"parsed {lines} lines into {parser.Miner.Templates.Count} templates in {stopwatch.Elapsed.TotalSeconds:F2} s " +
                $"({lines / Math.Max(stopwatch.Elapsed.TotalSeconds, 1e-9):F0} lines/s); {parser.UnmatchedHeaders} lines did not match the header layout");
            return 0;
        }));
        return command;
    }

    static Option<string?> SessionsOption() => new("--session") { Description = "How raw lines form sessions: id:REGEX (default id:blk_-?\\d+), field:NAME, window:FIELD:SECONDS, count:N. Ignored for pre-parsed sessions." };

    /// <summary>
    /// Sessions from a raw log (parsed here) or from pre-parsed event sequences (space-separated ids, or Sequence,label CSV).
    /// With <paramref name="model"/>, a raw log's events get the keys the model was trained on.
    /// </summary>
    static (List<LogSession> Sessions, IReadOnlyDictionary<string, string> Templates) ReadSessions(string path, bool preParsed, string? preset, string? layout, string? session,
        LogModel? model = null)
    {
        if (preParsed) return (Sessionizer.ReadEventSequences(path), new Dictionary<string, string>());
        var parser = new LogParser(new LogParserOptions { Preset = preset, Layout = layout });
        var keys = model is null ? null : new ModelEventKeys(model, parser);
        var lines = parser.ParseFile(path).ToList();
        var templates = parser.Miner.Templates.ToDictionary(t => Sessionizer.EventKey(t.Id), t => t.Text);
        string spec = session ?? @"id:blk_-?\d+";
        var parts = spec.Split(':', 3);
        var sessions = parts[0] switch
        {
            "id" when parts.Length >= 2 => Sessionizer.ByIdentifier(lines, spec[3..]),
            "field" when parts.Length == 2 => Sessionizer.ByField(lines, parts[1]),
            "window" when parts.Length == 3 && double.TryParse(parts[2], System.Globalization.CultureInfo.InvariantCulture, out double seconds) =>
                Sessionizer.ByTimeWindow(lines, parts[1], seconds),
            "count" when parts.Length == 2 && int.TryParse(parts[1], out int count) => Sessionizer.ByCount(lines, count),
            _ => throw new ArgumentException($"session rule '{spec}' is not one of id:REGEX, field:NAME, window:FIELD:SECONDS, count:N"),
        };
        return (keys is null ? sessions : [.. sessions.Select(keys.Rename)], templates);
    }

    static Command CreateTrain()
    {
        var input = new Argument<string>("file") { Description = "Normal sessions: a raw log, or pre-parsed sequences with --pre-parsed." };
        var output = new Option<string>("--out") { Description = "Checkpoint folder to write.", Required = true };
        var preParsed = new Option<bool>("--pre-parsed") { Description = "The input holds one session per line as space-separated event ids." };
        var preset = PresetOption();
        var layout = LayoutOption();
        var session = SessionsOption();
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 300 };
        var dim = new Option<int>("--dim") { Description = "Model width.", DefaultValueFactory = _ => 64 };
        var layers = new Option<int>("--layers") { Description = "Transformer blocks.", DefaultValueFactory = _ => 2 };
        var quantile = new Option<double>("--quantile") { Description = "Quantile of held-out normal scores used as the threshold.", DefaultValueFactory = _ => 0.99 };
        var threads = SharedOptions.Threads();
        var command = new Command("train", "Train a log model (a small Llama transformer over event ids) on normal sessions and set its threshold.")
        {
            input, output, preParsed, preset, layout, session, steps, dim, layers, quantile, threads,
        };
        command.SetAction(result => UserErrors.Run(() =>
        {
            using var compute = new ComputeContext(SharedOptions.ThreadCount(result, threads));
            var options = new LogModelOptions
            {
                Steps = result.GetValue(steps), Dim = result.GetValue(dim), Layers = result.GetValue(layers),
                ThresholdQuantile = result.GetValue(quantile), Compute = compute,
            }.Validate();
            var (sessions, templates) = ReadSessions(result.GetValue(input)!, result.GetValue(preParsed), result.GetValue(preset), result.GetValue(layout), result.GetValue(session));
            var stopwatch = Stopwatch.StartNew();
            var model = LogModel.Train(sessions, options, templates, Console.WriteLine);
            model.Save(result.GetValue(output)!);
            Console.WriteLine($"trained on {sessions.Count} sessions in {stopwatch.Elapsed.TotalSeconds:F1} s; wrote {result.GetValue(output)}");
            return 0;
        }));
        return command;
    }

    static Command CreateDetect()
    {
        var input = new Argument<string>("file") { Description = "Sessions to score: a raw log, or pre-parsed sequences (optionally Sequence,label CSV) with --pre-parsed." };
        var modelPath = new Option<string>("--model") { Description = "Log model checkpoint folder.", Required = true };
        var output = new Option<string>("--out") { Description = "JSONL verdicts, one per session.", Required = true };
        var preParsed = new Option<bool>("--pre-parsed") { Description = "The input holds one session per line as space-separated event ids." };
        var preset = PresetOption();
        var layout = LayoutOption();
        var session = SessionsOption();
        var tune = new Option<string?>("--tune-on") { Description = "A labelled dev set (Sequence,label CSV) to tune the threshold on instead of the trained one." };
        var threads = SharedOptions.Threads();
        var command = new Command("detect", "Score every session, flag the anomalous ones and say where they went wrong.")
        {
            input, modelPath, output, preParsed, preset, layout, session, tune, threads,
        };
        command.SetAction(result => UserErrors.Run(() =>
        {
            using var compute = new ComputeContext(SharedOptions.ThreadCount(result, threads));
            var model = LogModel.Load(result.GetValue(modelPath)!, compute);
            if (result.GetValue(tune) is { } devPath)
            {
                var dev = Sessionizer.ReadEventSequences(devPath);
                if (dev.Any(s => s.Anomalous is null)) throw new InvalidDataException($"{devPath}: the dev set needs labels (Sequence,label)");
                var (threshold, f1) = AnomalyDetector.TuneThreshold(model.Score(dev).Select(s => s.Score).ToList(), dev.Select(s => s.Anomalous!.Value).ToList());
                Console.WriteLine($"threshold tuned on {dev.Count} labelled sessions: {threshold:F3} (F1 {f1:F3} there; trained threshold {model.Threshold:F3})");
                model.Threshold = threshold;
            }
            var (sessions, _) = ReadSessions(result.GetValue(input)!, result.GetValue(preParsed), result.GetValue(preset), result.GetValue(layout), result.GetValue(session), model);
            var stopwatch = Stopwatch.StartNew();
            var verdicts = AnomalyDetector.Detect(model, sessions);
            double seconds = stopwatch.Elapsed.TotalSeconds;
            AtomicFile.WriteAllText(result.GetValue(output)!, string.Concat(verdicts.Select(v => v.ToJson() + "\n")));
            Console.WriteLine($"scored {sessions.Count} sessions in {seconds:F2} s ({sessions.Count / Math.Max(seconds, 1e-9):F0} sessions/s); flagged {verdicts.Count(v => v.Anomalous)}");
            if (verdicts.All(v => v.Label is not null) && verdicts.Count > 0)
            {
                var metrics = DetectionMetrics.From(verdicts.Select(v => (v.Anomalous, v.Label!.Value)));
                Console.WriteLine($"against the labels: precision {metrics.Precision:F4}, recall {metrics.Recall:F4}, F1 {metrics.F1:F4}");
            }
            return 0;
        }));
        return command;
    }

    static Command CreateWatch()
    {
        var input = new Argument<string>("file") { Description = "The log file to follow." };
        var modelPath = new Option<string>("--model") { Description = "Log model checkpoint folder (trained on this system's raw logs).", Required = true };
        var preset = PresetOption();
        var layout = LayoutOption();
        var pattern = new Option<string>("--session-id") { Description = "Regex naming a line's session.", DefaultValueFactory = _ => @"blk_-?\d+" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds without a new line after which a session is complete.", DefaultValueFactory = _ => 30 };
        var fromEnd = new Option<bool>("--from-end") { Description = "Only lines written after the watcher starts." };
        var command = new Command("watch", "Follow a growing log file and flag sessions as they go wrong or complete (Ctrl+C stops).")
        {
            input, modelPath, preset, layout, pattern, timeout, fromEnd,
        };
        command.SetAction((result, cancellationToken) => Task.FromResult(UserErrors.Run(() =>
        {
            var model = LogModel.Load(result.GetValue(modelPath)!);
            var watcher = new LogWatcher(model, new LogWatchOptions
            {
                Parser = new LogParserOptions { Preset = result.GetValue(preset), Layout = result.GetValue(layout) },
                IdentifierPattern = result.GetValue(pattern)!,
                SessionTimeout = TimeSpan.FromSeconds(result.GetValue(timeout)),
                FromEnd = result.GetValue(fromEnd),
            });
            var run = Task.Run(async () =>
            {
                await foreach (var report in watcher.WatchAsync(result.GetValue(input)!, cancellationToken))
                {
                    if (report.Verdict is { } verdict)
                        Console.WriteLine($"{verdict.ToJson()[..^1]},\"latency_ms\":{report.Latency.TotalMilliseconds:F2},\"completed\":{(report.Completed ? "true" : "false")}}}");
                    else
                        Console.Error.WriteLine(report.Note);
                }
            }, CancellationToken.None);
            run.GetAwaiter().GetResult();
            return 0;
        })));
        return command;
    }

    static Command CreateExplain()
    {
        var input = new Argument<string?>("file") { Description = "Sessions: a raw log, or pre-parsed sequences with --pre-parsed (not needed with --events).", Arity = ArgumentArity.ZeroOrOne };
        var logModel = new Option<string>("--log-model") { Description = "Log model checkpoint folder.", Required = true };
        var verdicts = new Option<string?>("--verdicts") { Description = "JSONL from `loom logs detect`: explain the sessions flagged there." };
        var ids = new Option<string[]>("--id") { Description = "Explain this session (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var events = new Option<string?>("--events") { Description = "A session given directly: space-separated event ids." };
        var limit = new Option<int>("--limit") { Description = "Sessions explained at most.", DefaultValueFactory = _ => 10 };
        var output = new Option<string?>("--out") { Description = "JSONL explanations (default: standard output)." };
        var preParsed = new Option<bool>("--pre-parsed") { Description = "The input holds one session per line as space-separated event ids." };
        var preset = PresetOption();
        var layout = LayoutOption();
        var session = SessionsOption();
        var model = new Option<string?>("--model") { Description = "Checkpoint folder of the model that writes the account (default: the facts alone)." };
        var gguf = new Option<string?>("--gguf") { Description = "GGUF model file that writes the account." };
        var index = new Option<string?>("--index") { Description = "Index folder of runbooks to ground the account in (needs --model or --gguf)." };
        var postgres = new Option<string?>("--postgres") { Description = "Connection string, when the index lives in PostgreSQL." };
        var top = new Option<int>("--top") { Description = "Runbook sources in the prompt.", DefaultValueFactory = _ => 3 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens the model may write.", DefaultValueFactory = _ => 256 };
        var threads = SharedOptions.Threads();
        var command = new Command("explain", "Explain flagged sessions: where they went wrong, what was expected, the nearest normal sessions, and an account written by a model grounded in runbooks.")
        {
            input, logModel, verdicts, ids, events, limit, output, preParsed, preset, layout, session, model, gguf, index, postgres, top, maxTokens, threads,
        };
        command.SetAction((result, cancellationToken) => RetrievalCli.RunAsync("logs explain", async () =>
        {
            int threadCount = SharedOptions.ThreadCount(result, threads);
            using var compute = new ComputeContext(threadCount);
            var detector = LogModel.Load(result.GetValue(logModel)!, compute);
            var chosen = ChooseSessions(result.GetValue(input), result.GetValue(events), result.GetValue(verdicts), result.GetValue(ids) ?? [], detector,
                () => ReadSessions(result.GetValue(input)!, result.GetValue(preParsed), result.GetValue(preset), result.GetValue(layout), result.GetValue(session), detector).Sessions);
            int most = result.GetValue(limit);
            if (most < 1) throw new ArgumentException($"--limit must be positive, got {most}");
            string? modelFolder = result.GetValue(model), ggufFile = result.GetValue(gguf), indexFolder = result.GetValue(index);
            if (indexFolder is not null && modelFolder is null && ggufFile is null) throw new ArgumentException("--index needs a model to write the account: pass --model DIR or --gguf FILE");
            using var retrievalIndex = indexFolder is null ? null
                : await RetrievalIndex.OpenAsync(indexFolder, null, result.GetValue(postgres), create: false, cancellationToken);
            await using var generator = modelFolder is null && ggufFile is null ? null : GeneratorHandle.Open(modelFolder, ggufFile, threadCount);
            using var chat = generator is null ? null : LoomPipeline.Build(generator.Generator, new LoomPipelineOptions
            {
                Limits = new ChatLimits(),
                Retriever = retrievalIndex?.Retriever,
                Retrieval = new RetrievalChatOptions { Search = new SearchOptions(SearchMode.Hybrid, result.GetValue(top)) },
            });
            var explainer = new LogExplainer(detector, chat, new LogExplainOptions { MaxOutputTokens = result.GetValue(maxTokens) });
            var lines = new List<string>();
            foreach (var chosenSession in chosen.Take(most))
                lines.Add((await explainer.ExplainAsync(chosenSession, cancellationToken)).ToJson());
            if (result.GetValue(output) is { } outPath)
            {
                AtomicFile.WriteAllText(outPath, string.Concat(lines.Select(l => l + "\n")));
                Console.WriteLine($"explained {lines.Count} of {chosen.Count} session(s); wrote {outPath}");
            }
            else
                foreach (string line in lines) Console.WriteLine(line);
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// The sessions to explain: the one given by --events, else those of the file named by --id or flagged in the
    /// --verdicts JSONL, else those the model flags now.
    /// </summary>
    static List<LogSession> ChooseSessions(string? file, string? events, string? verdictsPath, string[] ids, LogModel model, Func<List<LogSession>> read)
    {
        if (events is not null)
        {
            if (file is not null || ids.Length > 0 || verdictsPath is not null) throw new ArgumentException("--events names the session itself: pass no file, --id or --verdicts with it");
            var list = events.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (list.Length == 0) throw new ArgumentException("--events holds no event ids");
            return [new LogSession("given", list, new long[list.Length])];
        }
        if (file is null) throw new ArgumentException("pass the sessions' file, or a session with --events");
        var sessions = read();
        var wanted = new HashSet<string>(ids, StringComparer.Ordinal);
        if (verdictsPath is not null)
        {
            if (!File.Exists(verdictsPath)) throw new FileNotFoundException($"{verdictsPath}: file not found", verdictsPath);
            long number = 0;
            foreach (string line in File.ReadLines(verdictsPath))
            {
                number++;
                if (line.Trim().Length == 0) continue;
                System.Text.Json.Nodes.JsonNode? node;
                try { node = System.Text.Json.Nodes.JsonNode.Parse(line); }
                catch (System.Text.Json.JsonException) { throw new InvalidDataException($"{verdictsPath}:{number}: not a JSON object"); }
                string id = node?["session"]?.GetValue<string>() ?? throw new InvalidDataException($"{verdictsPath}:{number}: missing field session");
                if (node["anomalous"]?.GetValue<bool>() == true) wanted.Add(id);
            }
        }
        if (wanted.Count > 0)
        {
            var found = sessions.Where(s => wanted.Contains(s.Id)).ToList();
            if (found.Count == 0) throw new ArgumentException($"none of the {wanted.Count} session id(s) asked for is among the {sessions.Count} sessions of {file}");
            return found;
        }
        if (ids.Length > 0 || verdictsPath is not null) return [];
        var verdicts = AnomalyDetector.Detect(model, sessions);
        return [.. sessions.Where((_, i) => verdicts[i].Anomalous)];
    }
}
