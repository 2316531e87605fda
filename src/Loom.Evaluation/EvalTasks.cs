using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Evaluation;

/// <summary>
/// What a task runs against; each kind needs one of them: <see cref="LogLikelihood"/> for perplexity and multiple choice,
/// <see cref="Chat"/> for generation (and pairwise, with <see cref="Opponent"/> as model B), <see cref="Retriever"/> for retrieval
/// (and rag, with <see cref="Chat"/>), <see cref="AnomalyDetector"/> for logs (one verdict per session, true = anomalous). <see cref="ChatJudges"/> opens a judge named "chat:DIR", "model:DIR" or "gguf:FILE" in a
/// task's options (the caller owns and disposes it); <see cref="Compute"/> runs reward-model judges (null: the default context).
/// </summary>
public sealed record EvalSubjects(ModelVersion Model, ILogLikelihoodModel? LogLikelihood = null, IChatClient? Chat = null,
    IChatClient? Opponent = null, Retriever? Retriever = null, Func<string, IChatClient>? ChatJudges = null, Loom.Tensors.ComputeContext? Compute = null,
    Func<IReadOnlyList<EvalTasks.LogSessionItem>, CancellationToken, IReadOnlyList<bool>>? AnomalyDetector = null);

/// <summary>Runs evaluation tasks: reads each task's JSONL (or text) data and computes its metrics.</summary>
public static partial class EvalTasks
{
    /// <summary>Runs every task and gathers the results as one run of <see cref="EvalSubjects.Model"/>.</summary>
    public static async Task<EvalRun> RunAsync(IReadOnlyList<EvalTask> tasks, EvalSubjects subjects, ModelVersion? opponent = null,
        CancellationToken cancellationToken = default)
    {
        var results = new List<TaskResult>();
        foreach (var task in tasks) results.Add(await RunAsync(task, subjects, cancellationToken));
        return new EvalRun(subjects.Model, DateTimeOffset.UtcNow, results, opponent);
    }

    public static async Task<TaskResult> RunAsync(EvalTask task, EvalSubjects subjects, CancellationToken cancellationToken = default)
    {
        var all = task.Kind switch
        {
            EvalTaskKind.Perplexity => RollingPerplexity(Need(subjects.LogLikelihood, task, "a log-likelihood model"), ReadDocuments(task), cancellationToken),
            EvalTaskKind.MultipleChoice => MultipleChoice(Need(subjects.LogLikelihood, task, "a log-likelihood model"), ReadChoices(task), task.Options, cancellationToken),
            EvalTaskKind.Generate => await GenerateAsync(Need(subjects.Chat, task, "a chat client"), ReadPrompts(task), task.Options, cancellationToken),
            EvalTaskKind.Logs => AnomalyTask(task, subjects, cancellationToken),
            EvalTaskKind.Rag => await RagAsync(Need(subjects.Retriever, task, "a retrieval index"), Need(subjects.Chat, task, "a chat client"),
                RagJudge(task, subjects), ReadRagQuestions(task), task.Options, cancellationToken),
            EvalTaskKind.Retrieval => await RetrievalAsync(Need(subjects.Retriever, task, "a retrieval index"), ReadQuestions(task), task.Options, cancellationToken),
            EvalTaskKind.Pairwise => await PairwiseAsync(Need(subjects.Chat, task, "a chat client"), Need(subjects.Opponent, task, "a second model (B)"),
                PairwiseJudge(task, subjects), ReadPrompts(task), task.Options, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(task), task.Kind, "unknown task kind"),
        };
        var metrics = task.ReportedMetrics.ToDictionary(name => name, name => all[name], StringComparer.Ordinal);
        return new TaskResult(task.Name, EvalTask.KindName(task.Kind), task.Data, metrics, task.Tolerances.Count > 0 ? task.Tolerances : null);
    }

    static T Need<T>(T? subject, EvalTask task, string what) where T : class =>
        subject ?? throw new ArgumentException($"task {task.Name} ({EvalTask.KindName(task.Kind)}) needs {what}");

    /// <summary>The judge a pairwise task names: a program, a reward model, or a chat judge opened by <see cref="EvalSubjects.ChatJudges"/>.</summary>
    public static IPairwiseJudge PairwiseJudge(EvalTask task, EvalSubjects subjects)
    {
        string judge = task.Options.Judge ?? "f1";
        if (judge.StartsWith("reward:", StringComparison.Ordinal)) return RewardPairwiseJudge.Load(judge["reward:".Length..], subjects.Compute);
        if (EvalTask.IsChatJudge(judge)) return new ChatPairwiseJudge(Need(subjects.ChatJudges, task, $"a way to open the judge {judge}")(judge));
        return new ProgramPairwiseJudge(judge);
    }

    static Dictionary<string, MetricValue> AnomalyTask(EvalTask task, EvalSubjects subjects, CancellationToken cancellationToken)
    {
        var detector = Need(subjects.AnomalyDetector, task, "a log model");
        var sessions = ReadSessions(task);
        return AnomalyDetection(sessions, detector(sessions, cancellationToken), task.Options);
    }

    static IChatClient RagJudge(EvalTask task, EvalSubjects subjects)
    {
        string judge = task.Options.Judge ?? "overlap";
        return judge == "overlap" ? new OverlapJudgeChatClient() : Need(subjects.ChatJudges, task, $"a way to open the judge {judge}")(judge);
    }

    // ---- perplexity: lm-evaluation-harness's loglikelihood_rolling ----

    /// <summary>A document's total negative log-likelihood and what it is divided by.</summary>
    public sealed record DocumentLoss(double Nats, long Tokens, long Words, long Bytes);

    /// <summary>
    /// Word and byte perplexity and bits per byte over documents, as lm-evaluation-harness's loglikelihood_rolling: each
    /// document is cut into disjoint windows of at most ContextLength predicted tokens; the first window is predicted from the
    /// BOS token (or, in a vocabulary without one, from the document's first token, which is then not predicted), each later
    /// window from the ContextLength tokens before its end. Words (whitespace-separated) and bytes count the whole document.
    /// </summary>
    public static Dictionary<string, MetricValue> RollingPerplexity(ILogLikelihoodModel model, IReadOnlyList<string> documents, CancellationToken cancellationToken = default)
    {
        double nats = 0;
        long words = 0, bytes = 0;
        foreach (string document in documents)
        {
            var loss = DocumentNll(model, document, cancellationToken);
            nats += loss.Nats;
            words += loss.Words;
            bytes += loss.Bytes;
        }
        int n = documents.Count;
        return new Dictionary<string, MetricValue>
        {
            ["word_perplexity"] = new(Math.Exp(nats / Math.Max(1, words)), n),
            ["byte_perplexity"] = new(Math.Exp(nats / Math.Max(1, bytes)), n),
            ["bits_per_byte"] = new(nats / Math.Max(1, bytes) / Math.Log(2), n),
        };
    }

    /// <summary>The rolling-window negative log-likelihood of one document (see <see cref="RollingPerplexity"/>).</summary>
    public static DocumentLoss DocumentNll(ILogLikelihoodModel model, string document, CancellationToken cancellationToken = default)
    {
        int[] encoded = model.Encode(document);
        int prefix;
        int[] tokens;
        if (model.BosId is int bos) (prefix, tokens) = (bos, encoded);
        else if (encoded.Length >= 2) (prefix, tokens) = (encoded[0], encoded[1..]);
        else throw new InvalidDataException($"a document of {encoded.Length} token(s) has nothing to predict without a BOS token");
        int length = model.ContextLength;
        double nats = 0;
        int firstLength = Math.Min(length, tokens.Length);
        int[] first = [prefix, .. tokens.AsSpan(0, firstLength)];
        foreach (double logp in model.LogProbabilities(first, 1, cancellationToken)) nats -= logp;
        int predicted = firstLength;
        while (predicted < tokens.Length)
        {
            int count = Math.Min(tokens.Length - predicted, length);
            int end = predicted + count;
            var window = tokens.AsSpan(end - length - 1, length + 1);
            foreach (double logp in model.LogProbabilities(window, length + 1 - count, cancellationToken)) nats -= logp;
            predicted = end;
        }
        return new DocumentLoss(nats, tokens.Length, Whitespace().Split(document).Length, Encoding.UTF8.GetByteCount(document));
    }

    // ---- multiple choice ----

    /// <summary>A question with its choices and the index of the right one.</summary>
    public sealed record ChoiceItem(string Context, IReadOnlyList<string> Choices, int Answer);

    /// <summary>acc and acc_norm over the items (lm-evaluation-harness's multiple_choice).</summary>
    public static Dictionary<string, MetricValue> MultipleChoice(ILogLikelihoodModel model, IReadOnlyList<ChoiceItem> items, EvalTaskOptions options,
        CancellationToken cancellationToken = default)
    {
        var acc = new List<double>();
        var accNorm = new List<double>();
        string delimiter = options.Delimiter ?? " ";
        foreach (var item in items)
        {
            var logLikelihoods = ChoiceLogLikelihoods(model, item, delimiter, cancellationToken);
            acc.Add(ArgMax(logLikelihoods) == item.Answer ? 1 : 0);
            var normalised = logLikelihoods.Select((ll, i) => ll / Math.Max(1, (delimiter + item.Choices[i]).Length)).ToArray();
            accNorm.Add(ArgMax(normalised) == item.Answer ? 1 : 0);
        }
        return new Dictionary<string, MetricValue> { ["acc"] = Bootstrap.Mean(acc, options), ["acc_norm"] = Bootstrap.Mean(accNorm, options) };
    }

    /// <summary>
    /// log P(delimiter + choice | context) for each choice: the continuation's tokens are those of context + continuation
    /// past the context's own tokens (as lm-evaluation-harness splits them), the sequence cut from the left to the model's
    /// context; an empty context is replaced by the BOS token.
    /// </summary>
    public static double[] ChoiceLogLikelihoods(ILogLikelihoodModel model, ChoiceItem item, string delimiter = " ", CancellationToken cancellationToken = default)
    {
        var result = new double[item.Choices.Count];
        int[] context = item.Context.Length > 0 ? model.Encode(item.Context) : [];
        for (int c = 0; c < item.Choices.Count; c++)
        {
            int[] whole = model.Encode(item.Context + delimiter + item.Choices[c]);
            int split = Math.Min(context.Length, whole.Length - 1);
            int[] sequence = whole;
            if (split == 0)
            {
                int bos = model.BosId ?? throw new InvalidDataException("a multiple-choice item with an empty context needs a model with a BOS token");
                sequence = [bos, .. whole];
                split = 1;
            }
            int continuation = sequence.Length - split;
            if (sequence.Length - 1 > model.ContextLength) sequence = sequence[^(model.ContextLength + 1)..];
            int first = Math.Max(1, sequence.Length - continuation);
            result[c] = model.LogProbabilities(sequence, first, cancellationToken).Sum();
        }
        return result;
    }

    static int ArgMax(IReadOnlyList<double> values)
    {
        int best = 0;
        for (int i = 1; i < values.Count; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    // ---- generation ----

    /// <summary>A prompt and the answers accepted as right.</summary>
    public sealed record PromptItem(string Prompt, IReadOnlyList<string> References);

    /// <summary>The request every generated answer is made with: greedy, at most MaxTokens tokens.</summary>
    public static (List<ChatMessage> Messages, ChatOptions Options) Request(string prompt, EvalTaskOptions options)
    {
        var messages = new List<ChatMessage>();
        if (options.System is string system) messages.Add(new ChatMessage(ChatRole.System, system));
        messages.Add(new ChatMessage(ChatRole.User, prompt));
        return (messages, new ChatOptions { Temperature = 0, MaxOutputTokens = options.MaxTokens ?? 64 });
    }

    /// <summary>
    /// Generation metrics over the items; with <see cref="EvalTaskOptions.Schema"/>, answers are generated under that JSON Schema
    /// (<see cref="ChatResponseFormat.ForJsonSchema"/>) and schema_valid is the share that parse and validate.
    /// </summary>
    public static async Task<Dictionary<string, MetricValue>> GenerateAsync(IChatClient chat, IReadOnlyList<PromptItem> items, EvalTaskOptions options,
        CancellationToken cancellationToken = default)
    {
        var validator = options.Schema is string schemaPath ? SchemaValidator.Load(schemaPath) : null;
        var scores = MetricCatalog.OfKind(EvalTaskKind.Generate).ToDictionary(m => m, _ => new List<double>());
        foreach (var item in items)
        {
            var (messages, chatOptions) = Request(item.Prompt, options);
            if (validator is not null) chatOptions.ResponseFormat = ChatResponseFormat.ForJsonSchema(validator.Schema, "answer");
            string answer = (await chat.GetResponseAsync(messages, chatOptions, cancellationToken)).Text;
            foreach (var (metric, value) in ScoreAnswer(answer, item.References)) scores[metric].Add(value);
            if (validator is not null) scores["schema_valid"].Add(validator.IsValid(answer) ? 1 : 0);
        }
        return scores.ToDictionary(pair => pair.Key, pair => Bootstrap.Mean(pair.Value, options));
    }

    /// <summary>Every generation metric of one answer (the best over references where a metric takes one reference).</summary>
    public static Dictionary<string, double> ScoreAnswer(string answer, IReadOnlyList<string> references) => new()
    {
        ["exact_match"] = references.Max(r => TextMetrics.ExactMatch(answer, r)),
        ["f1"] = references.Max(r => NlpMetrics.F1(answer, r)),
        ["squad_f1"] = references.Max(r => TextMetrics.TokenF1(answer, r)),
        ["rouge_l"] = references.Max(r => TextMetrics.RougeL(answer, r)),
        ["bleu"] = NlpMetrics.Bleu(answer, references),
        ["gleu"] = NlpMetrics.Gleu(answer, references),
    };

    // ---- pairwise ----

    /// <summary>win_rate of A over B under <paramref name="judge"/>, with its bootstrap interval.</summary>
    public static async Task<Dictionary<string, MetricValue>> PairwiseAsync(IChatClient a, IChatClient b, IPairwiseJudge judge, IReadOnlyList<PromptItem> items,
        EvalTaskOptions options, CancellationToken cancellationToken = default)
    {
        var wins = new List<double>();
        foreach (var item in items)
        {
            var (messages, chatOptions) = Request(item.Prompt, options);
            string answerA = (await a.GetResponseAsync(messages, chatOptions, cancellationToken)).Text;
            string answerB = (await b.GetResponseAsync(messages, chatOptions, cancellationToken)).Text;
            wins.Add(await judge.CompareAsync(item.Prompt, answerA, answerB, item.References, cancellationToken));
        }
        return new Dictionary<string, MetricValue> { ["win_rate"] = Bootstrap.Mean(wins, options) };
    }

    /// <summary>A program judge: 1 when answer A scores higher than B against the references, 0.5 on a tie, else 0.</summary>
    public static double Judge(string judge, string answerA, string answerB, IReadOnlyList<string> references)
    {
        Func<string, double> score = judge switch
        {
            "exact_match" => answer => references.Max(r => TextMetrics.ExactMatch(answer, r)),
            "contains" => answer => references.Any(r => TextMetrics.Normalize(answer).Contains(TextMetrics.Normalize(r), StringComparison.Ordinal)) ? 1 : 0,
            "f1" => answer => references.Max(r => NlpMetrics.F1(answer, r)),
            _ => throw new ArgumentException($"EvalTaskOptions.Judge \"{judge}\" is not exact_match, contains or f1", nameof(judge)),
        };
        double sa = score(answerA), sb = score(answerB);
        return sa > sb ? 1 : sa < sb ? 0 : 0.5;
    }

    // ---- retrieval ----

    /// <summary>A question and the ids of the sources that answer it.</summary>
    public sealed record QuestionItem(string Question, IReadOnlyList<string> Sources);

    static async Task<Dictionary<string, MetricValue>> RetrievalAsync(Retriever retriever, IReadOnlyList<QuestionItem> items, EvalTaskOptions options,
        CancellationToken cancellationToken)
    {
        int k = options.K ?? 5;
        var ranked = new List<IReadOnlyList<string>>();
        foreach (var item in items)
        {
            // Chunks fold into their documents: the k distinct sources, best first.
            var hits = await retriever.SearchAsync(item.Question, new SearchOptions(Top: k * 4), cancellationToken);
            ranked.Add(hits.Select(h => h.SourceId).Distinct(StringComparer.Ordinal).Take(k).ToList());
        }
        return RetrievalMetrics(items, ranked, k, options);
    }

    /// <summary>hit_rate, recall and mrr of ranked source lists (cut to k) against each question's labelled sources.</summary>
    public static Dictionary<string, MetricValue> RetrievalMetrics(IReadOnlyList<QuestionItem> items, IReadOnlyList<IReadOnlyList<string>> ranked, int k,
        EvalTaskOptions options)
    {
        var hit = new List<double>();
        var recall = new List<double>();
        var reciprocal = new List<double>();
        for (int i = 0; i < items.Count; i++)
        {
            var relevant = items[i].Sources.ToHashSet(StringComparer.Ordinal);
            var top = ranked[i].Take(k).ToList();
            int rank = top.FindIndex(relevant.Contains);
            hit.Add(rank >= 0 ? 1 : 0);
            recall.Add(top.Count(relevant.Contains) / (double)relevant.Count);
            reciprocal.Add(rank >= 0 ? 1.0 / (rank + 1) : 0);
        }
        return new Dictionary<string, MetricValue>
        {
            ["hit_rate"] = Bootstrap.Mean(hit, options), ["recall"] = Bootstrap.Mean(recall, options), ["mrr"] = Bootstrap.Mean(reciprocal, options),
        };
    }

    // ---- data ----

    /// <summary>Perplexity documents: a .txt file is one document; a .jsonl file holds {"text": …} per line.</summary>
    public static IReadOnlyList<string> ReadDocuments(EvalTask task)
    {
        IEnumerable<string> documents = task.Data.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)
            ? ReadJsonl(task).Select(line => Required(line.Node, "text", task, line.Number))
            : [ReadText(task.Data)];
        var result = new List<string>();
        foreach (string document in documents.Take(task.Options.MaxItems ?? int.MaxValue))
        {
            string text = document;
            if (task.Options.HeldOutFraction is double fraction) text = text[(int)(text.Length * (1 - fraction))..];
            if (task.Options.MaxChars is int max && text.Length > max) text = text[..max];
            result.Add(text);
        }
        return result;
    }

    /// <summary>Multiple-choice items: {"context": …, "choices": [...], "answer": index}.</summary>
    public static IReadOnlyList<ChoiceItem> ReadChoices(EvalTask task) =>
        [.. ReadJsonl(task).Take(task.Options.MaxItems ?? int.MaxValue).Select(line =>
        {
            string context = Required(line.Node, "context", task, line.Number);
            var choices = Strings(line.Node, "choices", task, line.Number);
            if (choices.Count < 2) throw new InvalidDataException($"{task.Data}:{line.Number}: \"choices\" needs at least 2 entries");
            int answer = line.Node["answer"] is JsonNode a && a.GetValueKind() == JsonValueKind.Number && a.AsValue().TryGetValue(out int value)
                ? value : throw new InvalidDataException($"{task.Data}:{line.Number}: \"answer\" must be the index of the right choice");
            if (answer < 0 || answer >= choices.Count) throw new InvalidDataException($"{task.Data}:{line.Number}: \"answer\" {answer} is outside the {choices.Count} choices");
            return new ChoiceItem(context, choices, answer);
        })];

    /// <summary>Generation items: {"prompt": …, "reference": …} or {"prompt": …, "references": [...]}.</summary>
    public static IReadOnlyList<PromptItem> ReadPrompts(EvalTask task) =>
        [.. ReadJsonl(task).Take(task.Options.MaxItems ?? int.MaxValue).Select(line =>
        {
            string prompt = Required(line.Node, "prompt", task, line.Number);
            var references = line.Node["references"] is not null ? Strings(line.Node, "references", task, line.Number) : [Required(line.Node, "reference", task, line.Number)];
            if (references.Count == 0) throw new InvalidDataException($"{task.Data}:{line.Number}: \"references\" is empty");
            return new PromptItem(prompt, references);
        })];

    /// <summary>Retrieval items: {"question": …, "member": id} (the .NET docs set) or {"question": …, "sources": [ids]}.</summary>
    public static IReadOnlyList<QuestionItem> ReadQuestions(EvalTask task) =>
        [.. ReadJsonl(task).Take(task.Options.MaxItems ?? int.MaxValue).Select(line =>
        {
            string question = Required(line.Node, "question", task, line.Number);
            var sources = line.Node["sources"] is not null ? Strings(line.Node, "sources", task, line.Number) : [Required(line.Node, "member", task, line.Number)];
            if (sources.Count == 0) throw new InvalidDataException($"{task.Data}:{line.Number}: \"sources\" is empty");
            return new QuestionItem(question, sources);
        })];

    static string ReadText(string path) =>
        File.Exists(path) ? File.ReadAllText(path) : throw new FileNotFoundException($"{path}: no such data file");

    static IEnumerable<(JsonObject Node, int Number)> ReadJsonl(EvalTask task)
    {
        if (!File.Exists(task.Data)) throw new FileNotFoundException($"{task.Data}: no such data file (task {task.Name})");
        int number = 0;
        foreach (string line in File.ReadLines(task.Data))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{task.Data}:{number}: invalid JSON ({e.Message.Split('\n')[0]})"); }
            yield return (node as JsonObject ?? throw new InvalidDataException($"{task.Data}:{number}: each line must be a JSON object"), number);
        }
    }

    static string Required(JsonObject node, string key, EvalTask task, int number) =>
        node[key] is JsonNode value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>()
            : throw new InvalidDataException($"{task.Data}:{number}: missing string \"{key}\"");

    static List<string> Strings(JsonObject node, string key, EvalTask task, int number) =>
        node[key] is JsonArray array && array.All(v => v?.GetValueKind() == JsonValueKind.String)
            ? [.. array.Select(v => v!.GetValue<string>())]
            : throw new InvalidDataException($"{task.Data}:{number}: \"{key}\" must be an array of strings");

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
