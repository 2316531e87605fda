using System.CommandLine;
using System.Globalization;
using Loom.Evaluation;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tensors;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom feedback</c>: create tasks, fill their queues from prompt datasets, add annotators, and read the results
/// (per-annotator counts and agreement, the model leaderboard, the export to finetune datasets).
/// </summary>
internal static class FeedbackCommand
{
    internal static Command Create()
    {
        var command = new Command("feedback", "Human feedback: tasks, queues, annotators, agreement, leaderboard and export.");
        command.Subcommands.Add(TaskCommand());
        command.Subcommands.Add(QueueCommand());
        command.Subcommands.Add(AnnotatorCommand());
        command.Subcommands.Add(StatsCommand());
        command.Subcommands.Add(LeaderboardCommand());
        command.Subcommands.Add(ExportCommand());
        return command;
    }

    static Option<string> Store() => new("--store") { Description = "Feedback store: a SQLite file or a PostgreSQL connection string", DefaultValueFactory = _ => "feedback.db" };

    /// <summary>Runs <paramref name="action"/> on the opened store, turning bad input into one line and exit code 1.</summary>
    static void SetAction(Command command, Option<string> store, Func<ParseResult, IFeedbackStore, Task<int>> action) =>
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            using var opened = FeedbackStores.OpenAsync(parseResult.GetValue(store)!, CancellationToken.None).GetAwaiter().GetResult();
            return action(parseResult, opened).GetAwaiter().GetResult();
        }));

    static async Task<FeedbackTask> RequireTask(IFeedbackStore store, string id) =>
        await store.GetTaskAsync(id, CancellationToken.None) ?? throw new ArgumentException($"no feedback task '{id}' in the store (create it with `loom feedback task`)");

    static Command TaskCommand()
    {
        var store = Store();
        var id = new Option<string>("--id") { Description = "Task id (letters, digits, '-', '_')", Required = true };
        var kind = new Option<string>("--kind") { Description = "pairwise, rank, rating, correction or thumbs", Required = true };
        var name = new Option<string?>("--name") { Description = "Name shown to annotators (default: the id)" };
        var guidelines = new Option<string?>("--guidelines") { Description = "Text file of guidelines shown beside every item" };
        var rubric = new Option<string?>("--rubric") { Description = "Text file with one line per score 1..5 (ratings)" };
        var overlap = new Option<int>("--overlap") { Description = "Annotators each item needs", DefaultValueFactory = _ => 1 };
        var command = new Command("task", "Create or update a task.") { store, id, kind, name, guidelines, rubric, overlap };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            string kindText = parseResult.GetValue(kind)!;
            if (!Enum.TryParse<JudgementKind>(kindText, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(kindText, out _))
                throw new ArgumentException($"--kind '{kindText}' is not pairwise, rank, rating, correction or thumbs");
            int count = parseResult.GetValue(overlap);
            if (count < 1) throw new ArgumentException($"--overlap must be positive, got {count}");
            var task = new FeedbackTask
            {
                Id = parseResult.GetValue(id)!,
                Name = parseResult.GetValue(name) ?? parseResult.GetValue(id)!,
                Kind = parsed,
                Guidelines = ReadText(parseResult.GetValue(guidelines), "--guidelines") ?? "",
                Rubric = ReadText(parseResult.GetValue(rubric), "--rubric"),
                Overlap = count,
                Created = DateTimeOffset.UtcNow,
            };
            await feedback.SaveTaskAsync(task, CancellationToken.None);
            Console.Out.WriteLine($"task {task.Id}: {task.Kind.ToString().ToLowerInvariant()}, overlap {task.Overlap}");
            return 0;
        });
        return command;
    }

    static string? ReadText(string? path, string flag) =>
        path is null ? null : File.Exists(path) ? File.ReadAllText(path) : throw new FileNotFoundException($"{flag} {path}: no such file");

    static Command QueueCommand()
    {
        var store = Store();
        var task = new Option<string>("--task") { Description = "Task id", Required = true };
        var prompts = new Option<string>("--prompts") { Description = "JSONL file whose lines hold a \"prompt\" (a string or a list of messages)", Required = true };
        var models = new Option<string[]>("--model") { Description = "Checkpoint folder that writes responses (repeatable; pairwise takes one or two)", Required = true, AllowMultipleArgumentsPerToken = false };
        var responses = new Option<int?>("--responses") { Description = "Responses per prompt (default: 2 for pairwise, the number of models for the others)" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens per response at most", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature", DefaultValueFactory = _ => 0.8f };
        var seed = new Option<int>("--seed") { Description = "Seed of the first response of each prompt (the next ones +1, +2 …)", DefaultValueFactory = _ => 0 };
        var threads = SharedOptions.Threads();
        var command = new Command("queue", "Generate responses to a prompt dataset with one or more checkpoints and add them as items to judge.")
            { store, task, prompts, models, responses, maxTokens, temperature, seed, threads };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            var feedbackTask = await RequireTask(feedback, parseResult.GetValue(task)!);
            string promptsPath = parseResult.GetValue(prompts)!;
            using var compute = new ComputeContext(SharedOptions.ThreadCount(parseResult, threads));
            var loaded = new List<LoomModel>();
            try
            {
                var writers = new List<FeedbackModel>();
                foreach (string folder in parseResult.GetValue(models)!)
                {
                    if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"--model {folder}: no such checkpoint folder");
                    var model = LoomModel.Load(folder, new LoomModelOptions { Compute = compute });
                    loaded.Add(model);
                    writers.Add(new FeedbackModel(model.AsIChatClient(), ModelVersion.Of(folder).ToString()));
                }
                var options = new QueueOptions
                {
                    Responses = parseResult.GetValue(responses),
                    MaxTokens = parseResult.GetValue(maxTokens),
                    Temperature = parseResult.GetValue(temperature),
                    Seed = parseResult.GetValue(seed),
                };
                var items = await FeedbackQueue.BuildAsync(feedbackTask, promptsPath, writers, options, CancellationToken.None);
                int added = await feedback.AddItemsAsync(items, CancellationToken.None);
                Console.Out.WriteLine($"task {feedbackTask.Id}: {added} new item(s) of {items.Count} ({items.Count - added} already queued)");
                return 0;
            }
            finally
            {
                foreach (var model in loaded) await model.DisposeAsync();
            }
        });
        return command;
    }

    static Command AnnotatorCommand()
    {
        var store = Store();
        var name = new Option<string>("--name") { Description = "Annotator's login name", Required = true };
        var role = new Option<string>("--role") { Description = "owner or annotator", DefaultValueFactory = _ => "annotator" };
        var command = new Command("annotator", "Create or update an annotator; the password is read from the first line of stdin.") { store, name, role };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            string roleText = parseResult.GetValue(role)!;
            var parsed = roleText.ToLowerInvariant() switch
            {
                "owner" => AnnotatorRole.Owner,
                "annotator" => AnnotatorRole.Annotator,
                _ => throw new ArgumentException($"--role '{roleText}' is not owner or annotator"),
            };
            string annotator = parseResult.GetValue(name)!;
            if (string.IsNullOrWhiteSpace(annotator)) throw new ArgumentException("--name must not be empty");
            string? password = Console.In.ReadLine();
            if (string.IsNullOrEmpty(password)) throw new ArgumentException("no password on stdin: pipe it in, e.g. `echo \"$PASSWORD\" | loom feedback annotator --name NAME`");
            await feedback.SaveAnnotatorAsync(new Annotator(annotator, parsed), PasswordHasher.Hash(password), CancellationToken.None);
            Console.Out.WriteLine($"annotator {annotator}: {parsed.ToString().ToLowerInvariant()}");
            return 0;
        });
        return command;
    }

    static Command StatsCommand()
    {
        var store = Store();
        var task = new Option<string>("--task") { Description = "Task id", Required = true };
        var command = new Command("stats", "Items, judgements per annotator, and agreement (percent, Fleiss' kappa, Krippendorff's alpha, Cohen's kappa per pair).") { store, task };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            var feedbackTask = await RequireTask(feedback, parseResult.GetValue(task)!);
            var items = await feedback.ListItemsAsync(feedbackTask.Id, CancellationToken.None);
            var judgements = await feedback.ListJudgementsAsync(new JudgementQuery { TaskId = feedbackTask.Id }, CancellationToken.None);
            int complete = items.Count(item => judgements.Where(j => j.ItemId == item.Id).Select(j => j.Annotator).Distinct().Count() >= feedbackTask.Overlap);
            Console.Out.WriteLine($"task {feedbackTask.Id} ({feedbackTask.Kind.ToString().ToLowerInvariant()}): {items.Count} item(s), {complete} with {feedbackTask.Overlap} judgement(s), {judgements.Count} judgement(s)");
            foreach (var group in judgements.GroupBy(j => j.Annotator).OrderBy(g => g.Key, StringComparer.Ordinal))
                Console.Out.WriteLine($"  {group.Key}: {group.Count()}");
            var agreement = Agreement.ForTask(feedbackTask, items, judgements);
            Console.Out.WriteLine($"agreement over {agreement.UnitsCompared} {agreement.Units} with 2+ annotators ({agreement.OverlapItems} item(s)):");
            Console.Out.WriteLine($"  percent agreement   {Format(agreement.PercentAgreement, "F1")}");
            Console.Out.WriteLine($"  Fleiss' kappa       {Format(agreement.FleissKappa, "F3")}");
            Console.Out.WriteLine($"  Krippendorff alpha  {Format(agreement.KrippendorffAlpha, "F3")} ({agreement.AlphaMetric.ToString().ToLowerInvariant()})");
            foreach (var pair in agreement.Pairs)
                Console.Out.WriteLine($"  Cohen's kappa {pair.First} / {pair.Second}: {Format(pair.CohenKappa, "F3")} over {pair.SharedUnits}");
            if (agreement.Unmatched > 0) Console.Out.WriteLine($"  {agreement.Unmatched} judgement(s) left out: their responses are not the item's");
            return 0;
        });
        return command;
    }

    static string Format(double? value, string format) => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";

    static Command LeaderboardCommand()
    {
        var store = Store();
        var task = new Option<string?>("--task") { Description = "Only this task's pairwise judgements (default: every task)" };
        var resamples = new Option<int>("--resamples") { Description = "Bootstrap resamples for the 95% interval", DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { Description = "Seed of the bootstrap", DefaultValueFactory = _ => 0 };
        var command = new Command("leaderboard", "Bradley-Terry ratings of model versions from pairwise judgements, with bootstrap intervals.") { store, task, resamples, seed };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            string? taskId = parseResult.GetValue(task);
            if (taskId is not null) await RequireTask(feedback, taskId);
            var judgements = await feedback.ListJudgementsAsync(new JudgementQuery { TaskId = taskId }, CancellationToken.None);
            var rows = BradleyTerry.Leaderboard(judgements, new BradleyTerryOptions { Resamples = parseResult.GetValue(resamples), Seed = parseResult.GetValue(seed) });
            if (rows.Count == 0)
            {
                Console.Out.WriteLine("no pairwise judgements between different model versions yet");
                return 0;
            }
            int width = Math.Max("version".Length, rows.Max(r => r.Version.Length));
            Console.Out.WriteLine($"{"rank",4}  {"version".PadRight(width)}  {"rating",7}  {"95% interval",15}  {"games",5}  {"wins",4}  {"ties",4}");
            for (int i = 0; i < rows.Count; i++)
            {
                var r = rows[i];
                string interval = FormattableString.Invariant($"{r.Low:F0}..{r.High:F0}");
                Console.Out.WriteLine(FormattableString.Invariant($"{i + 1,4}  {r.Version.PadRight(width)}  {r.Rating,7:F1}  {interval,15}  {r.Games,5}  {r.Wins,4}  {r.Ties,4}"));
            }
            return 0;
        });
        return command;
    }

    static Command ExportCommand()
    {
        var store = Store();
        var task = new Option<string?>("--task") { Description = "Task id to export" };
        var all = new Option<bool>("--all") { Description = "Export every task" };
        var output = new Option<string>("--out") { Description = "Folder for comparisons.jsonl, rankings.jsonl, ratings.jsonl, corrections.jsonl", Required = true };
        var minAgree = new Option<int>("--min-agree") { Description = "Annotators who must agree before an item exports", DefaultValueFactory = _ => 1 };
        var command = new Command("export", "Write judgements as the JSONL datasets `loom finetune` reads, keeping items where enough annotators agree.") { store, task, all, output, minAgree };
        SetAction(command, store, async (parseResult, feedback) =>
        {
            string? taskId = parseResult.GetValue(task);
            bool everyTask = parseResult.GetValue(all);
            if ((taskId is null) == !everyTask) throw new ArgumentException("pass exactly one of --task ID and --all");
            var tasks = everyTask ? await feedback.ListTasksAsync(CancellationToken.None) : [await RequireTask(feedback, taskId!)];
            var items = new List<FeedbackItem>();
            var judgements = new List<Judgement>();
            foreach (var t in tasks)
            {
                items.AddRange(await feedback.ListItemsAsync(t.Id, CancellationToken.None));
                judgements.AddRange(await feedback.ListJudgementsAsync(new JudgementQuery { TaskId = t.Id }, CancellationToken.None));
            }
            var result = FeedbackExport.WriteJsonl(items, judgements, parseResult.GetValue(output)!, new ExportOptions { MinAgree = parseResult.GetValue(minAgree) });
            Console.Out.WriteLine($"exported {result.Comparisons} comparison(s), {result.Rankings} ranking(s), {result.Ratings} rating(s), {result.Corrections} correction(s) from {result.JudgementIds.Count} of {judgements.Count} judgement(s) to {parseResult.GetValue(output)}");
            Console.Out.WriteLine($"training data: {result.Data.Pairs.Count} preference pair(s), {result.Data.Supervised.Count} supervised example(s)");
            return 0;
        });
        return command;
    }
}
