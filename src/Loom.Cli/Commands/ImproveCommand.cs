using System.CommandLine;
using System.Globalization;
using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tensors;
using Microsoft.Extensions.AI;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom improve</c>: the closed loop over a model registry (HOME): init registers the base checkpoint, run trains a
/// candidate on the feedback since the served version and promotes it only when it wins, versions lists the lineage,
/// promote and rollback change the served version (a running <c>loom serve --registry HOME</c> follows).
/// </summary>
internal static class ImproveCommand
{
    internal static Command Create()
    {
        var command = new Command("improve", "Train the served model on its feedback, promote a candidate only when it wins, keep every version with its lineage.");
        command.Subcommands.Add(Init());
        command.Subcommands.Add(Run());
        command.Subcommands.Add(Versions());
        command.Subcommands.Add(Promote());
        command.Subcommands.Add(Rollback());
        return command;
    }

    static Option<string> Home() => new("--home") { Description = "The model registry folder (versions/, current, history.jsonl)", Required = true };

    static Command Init()
    {
        var home = Home();
        var model = new Option<string>("--model") { Description = "The base checkpoint folder (registered as v0 and served)", Required = true };
        var command = new Command("init", "Start a registry: copy the base checkpoint in as v0 and make it current.") { home, model };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            var registry = ModelRegistry.Init(parse.GetValue(home)!, parse.GetValue(model)!);
            Console.WriteLine($"registered {registry.Current} from {Checkpoint.Resolve(parse.GetValue(model)!)} in {registry.Home}; it is current");
            return 0;
        }));
        return command;
    }

    static Command Run()
    {
        var home = Home();
        var store = new Option<string>("--store") { Description = "Feedback store: a SQLite file or a PostgreSQL connection string", Required = true };
        var heldOut = new Option<string>("--heldout") { Description = "JSONL of held-out prompts: {\"prompt\", \"reference\"|\"references\"}", Required = true };
        var judge = new Option<string>("--judge")
        {
            Description = "Judge of candidate vs served: f1, exact_match, contains (program judges, need references), reward:DIR, chat:DIR, model:DIR or gguf:FILE",
            Required = true,
        };
        var margin = new Option<double>("--margin") { Description = "Promote only when the win rate is at least 0.5 + margin", DefaultValueFactory = _ => 0.05 };
        var minAgree = new Option<int>("--min-agree") { Description = "Train only on items where at least this many annotators agree", DefaultValueFactory = _ => 1 };
        var minPairs = new Option<int>("--min-pairs") { Description = "Fewer preference pairs (and no corrections) means nothing to do", DefaultValueFactory = _ => 1 };
        var task = new Option<string?>("--task") { Description = "Only judgements of this feedback task" };
        var after = new Option<long?>("--after") { Description = "Only judgements with a larger id (default: after the largest id any version was trained on)" };
        var method = new Option<string>("--method") { Description = "dpo, or grpo (a reward model on the pairs, then GRPO)", DefaultValueFactory = _ => "dpo" };
        var sftSteps = new Option<int>("--sft-steps") { Description = "Supervised steps on corrections", DefaultValueFactory = _ => 30 };
        var dpoSteps = new Option<int>("--dpo-steps") { Description = "DPO steps on preference pairs", DefaultValueFactory = _ => 30 };
        var rewardSteps = new Option<int>("--reward-steps") { Description = "Reward-model steps (grpo)", DefaultValueFactory = _ => 30 };
        var grpoSteps = new Option<int>("--grpo-steps") { Description = "GRPO steps (grpo)", DefaultValueFactory = _ => 20 };
        var beta = new Option<float>("--beta") { Description = "DPO β", DefaultValueFactory = _ => 0.1f };
        var learningRate = new Option<float>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-4f };
        var batch = new Option<int>("--batch") { Description = "Rows, pairs or prompts per step", DefaultValueFactory = _ => 8 };
        var loraRank = new Option<int>("--lora-rank") { Description = "Train LoRA adapters of this rank and merge them (0 = every weight)", DefaultValueFactory = _ => 0 };
        var loraAlpha = new Option<float>("--lora-alpha") { Description = "LoRA alpha", DefaultValueFactory = _ => 16f };
        var samples = new Option<int>("--samples") { Description = "Answers each model samples per held-out prompt", DefaultValueFactory = _ => 4 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature of the evaluation (0 = greedy)", DefaultValueFactory = _ => 1f };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest sampled answer", DefaultValueFactory = _ => 48 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of training and sampling", DefaultValueFactory = _ => 1UL };
        var threads = SharedOptions.Threads();
        var command = new Command("run", "One round: feedback since the served version → SFT/DPO (or GRPO) → candidate vs served on held-out prompts → register, promote if it wins.");
        foreach (Option option in new Option[] { home, store, heldOut, judge, margin, minAgree, minPairs, task, after, method, sftSteps, dpoSteps, rewardSteps, grpoSteps,
            beta, learningRate, batch, loraRank, loraAlpha, samples, temperature, maxNew, seed, threads })
            command.Options.Add(option);
        command.SetAction((parse, cancellationToken) => RetrievalCli.RunAsync("improve run", async () =>
        {
            using var compute = new ComputeContext(SharedOptions.ThreadCount(parse, threads));
            int rank = parse.GetValue(loraRank);
            if (rank < 0) throw new ArgumentException($"--lora-rank must be ≥ 0, got {rank}");
            var prompts = Improver.ReadHeldOut(parse.GetValue(heldOut)!);
            await using var judges = new JudgeHandles(SharedOptions.ThreadCount(parse, threads), compute);
            string judgeSpec = parse.GetValue(judge)!;
            var pairwise = judges.Open(judgeSpec, prompts, parse.GetValue(heldOut)!);
            var options = new ImproveOptions
            {
                Judge = pairwise, JudgeName = judgeSpec, HeldOutPrompts = prompts, Margin = parse.GetValue(margin), MinAgree = parse.GetValue(minAgree),
                MinPairs = parse.GetValue(minPairs), TaskId = parse.GetValue(task), AfterId = parse.GetValue(after),
                Method = parse.GetValue(method) switch
                {
                    "dpo" => ImproveMethod.Dpo,
                    "grpo" => ImproveMethod.Grpo,
                    var other => throw new ArgumentException($"--method must be dpo or grpo, not '{other}'"),
                },
                SftSteps = parse.GetValue(sftSteps), DpoSteps = parse.GetValue(dpoSteps), RewardSteps = parse.GetValue(rewardSteps), GrpoSteps = parse.GetValue(grpoSteps),
                Beta = parse.GetValue(beta), LearningRate = parse.GetValue(learningRate), Batch = parse.GetValue(batch),
                Lora = rank == 0 ? null : new LoraOptions { Rank = rank, Alpha = parse.GetValue(loraAlpha) },
                SamplesPerPrompt = parse.GetValue(samples), Temperature = parse.GetValue(temperature), MaxNewTokens = parse.GetValue(maxNew), Seed = parse.GetValue(seed),
                Compute = compute, Progress = Console.WriteLine,
            };
            using var feedback = await FeedbackStores.OpenAsync(parse.GetValue(store)!, cancellationToken);
            var report = await Improver.RunAsync(new ModelRegistry(parse.GetValue(home)!), feedback, options, cancellationToken);
            Print(report);
            return 0;
        }));
        return command;
    }

    static void Print(ImproveReport report)
    {
        Console.WriteLine($"feedback: {report.Judgements} judgement(s) after id {report.AfterId} → {report.Pairs} pair(s), {report.Corrections} correction(s)");
        if (report.Evaluation is PairwiseComparison e)
            Console.WriteLine($"evaluation: {report.Candidate} vs {report.Parent}: win rate {e.WinRate:F3} over {e.Comparisons} comparison(s) " +
                $"({e.Wins} won, {e.Ties} tied, {e.Losses} lost); needs {report.Threshold:F3}");
        Console.WriteLine("time: " + string.Join(", ", report.Stages.Select(s => $"{s.Stage} {s.Elapsed.TotalSeconds:F1} s")) + $"; total {report.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine(report.Decision switch
        {
            ImproveDecision.Promoted => $"promoted {report.Candidate}: {report.Reason}",
            ImproveDecision.Rejected => $"kept {report.Candidate}, not promoted: {report.Reason}",
            _ => report.Reason,
        });
    }

    static Command Versions()
    {
        var home = Home();
        var command = new Command("versions", "Every version with its lineage: parent, method, feedback, evaluation, promotion; * marks the served one.") { home };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            var registry = new ModelRegistry(parse.GetValue(home)!);
            var versions = registry.Versions();
            if (versions.Count == 0) throw new ArgumentException($"{registry.Home}: no versions; run `loom improve init` first");
            string[] header = ["", "version", "parent", "method", "created", "judgements", "pairs", "corr.", "last id", "win rate", "decision"];
            var rows = versions.Select(v => new[]
            {
                v.Current ? "*" : "", v.Name, v.Lineage.Parent ?? "-", v.Lineage.Method, v.Lineage.Created.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
                v.Lineage.JudgementIds.Count.ToString(CultureInfo.InvariantCulture), v.Lineage.Data?.Pairs.ToString(CultureInfo.InvariantCulture) ?? "-",
                v.Lineage.Data?.Corrections.ToString(CultureInfo.InvariantCulture) ?? "-", v.Lineage.LastJudgementId.ToString(CultureInfo.InvariantCulture),
                v.Lineage.Evaluation?.WinRate.ToString("F3", CultureInfo.InvariantCulture) ?? "-",
                v.Lineage.Evaluation?.Decision ?? (v.Promoted ? "promoted" : "-"),
            }).ToList();
            var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
            foreach (var row in rows.Prepend(header)) Console.WriteLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
            return 0;
        }));
        return command;
    }

    static Command Promote()
    {
        var home = Home();
        var version = new Option<string>("--version") { Description = "The version to serve", Required = true };
        var reason = new Option<string>("--reason") { Description = "Recorded in history.jsonl", DefaultValueFactory = _ => "manual" };
        var command = new Command("promote", "Serve a registered version now (e.g. a candidate that was kept but not promoted).") { home, version, reason };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            var registry = new ModelRegistry(parse.GetValue(home)!);
            string? before = registry.Current;
            registry.Promote(parse.GetValue(version)!, parse.GetValue(reason)!);
            Console.WriteLine($"serving {registry.Current} (was {before ?? "none"})");
            return 0;
        }));
        return command;
    }

    static Command Rollback()
    {
        var home = Home();
        var to = new Option<string?>("--to") { Description = "The version to serve again (default: the one served before the current one was promoted)" };
        var command = new Command("rollback", "Serve an earlier version again; recorded in history.jsonl.") { home, to };
        command.SetAction(parse => UserErrors.Run(() =>
        {
            var registry = new ModelRegistry(parse.GetValue(home)!);
            string? before = registry.Current;
            string now = registry.Rollback(parse.GetValue(to));
            Console.WriteLine($"rolled back from {before} to {now}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Opens the judge a spec names, as <c>loom eval</c>'s pairwise tasks do (<see cref="EvalTasks.PairwiseJudge"/>): a program
    /// judge, a reward model, or a chat model; chat models opened here are disposed with the handles.
    /// </summary>
    sealed class JudgeHandles(int threads, ComputeContext compute) : IAsyncDisposable
    {
        readonly List<GeneratorHandle> opened = [];

        public IPairwiseJudge Open(string spec, IReadOnlyList<EvalTasks.PromptItem> prompts, string heldOutPath)
        {
            bool program = !spec.StartsWith("reward:", StringComparison.Ordinal) && !EvalTask.IsChatJudge(spec);
            if (program)
            {
                try { EvalTasks.Judge(spec == "program" ? "f1" : spec, "", "", [""]); }
                catch (ArgumentException) { throw new ArgumentException($"--judge is \"{spec}\", expected f1, exact_match, contains, program, reward:DIR, chat:DIR, model:DIR or gguf:FILE"); }
                if (prompts.FirstOrDefault(p => p.References.Count == 0) is { } bare)
                    throw new InvalidDataException($"{heldOutPath}: the program judge {spec} needs a \"reference\" on every prompt; \"{bare.Prompt}\" has none");
            }
            var task = new EvalTask("improve", EvalTaskKind.Pairwise, heldOutPath, [], new EvalTaskOptions(Judge: spec), new Dictionary<string, double>());
            var subjects = new EvalSubjects(new ModelVersion("improve", ""), ChatJudges: OpenChat, Compute: compute);
            return EvalTasks.PairwiseJudge(task, subjects);
        }

        IChatClient OpenChat(string spec)
        {
            string path = spec[(spec.IndexOf(':') + 1)..];
            bool isGguf = spec.StartsWith("gguf:", StringComparison.Ordinal);
            var handle = GeneratorHandle.Open(isGguf ? null : path, isGguf ? path : null, threads);
            opened.Add(handle);
            return handle.Generator.AsIChatClient();
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var handle in opened) await handle.DisposeAsync();
        }
    }
}
