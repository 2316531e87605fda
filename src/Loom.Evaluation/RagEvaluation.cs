using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Evaluation;

public static partial class EvalTasks
{
    /// <summary>A RAG question: the ids of its relevant sources and, optionally, the text that supports its answer.</summary>
    public sealed record RagItem(string Question, IReadOnlyList<string> Sources, string? Support = null);

    /// <summary>A retrieved source as the answerer sees it: its id and text, numbered [1], [2]… in rank order.</summary>
    public sealed record RetrievedSource(string Id, string Text);

    /// <summary>The fixed instruction the answering model receives before the numbered sources and the question.</summary>
    public const string RagInstruction = "Answer the question from the numbered sources. Cite each source you use as [n] after the sentence it supports.";

    /// <summary>The answering prompt: the instruction, the sources as "[n] text", the question.</summary>
    public static string RagPrompt(string question, IReadOnlyList<RetrievedSource> sources)
    {
        var prompt = new StringBuilder(RagInstruction).Append("\n\nSources:\n");
        for (int i = 0; i < sources.Count; i++) prompt.Append('[').Append(i + 1).Append("] ").Append(sources[i].Text.Trim()).Append('\n');
        return prompt.Append("\nQuestion: ").Append(question.Trim()).ToString();
    }

    static async Task<Dictionary<string, MetricValue>> RagAsync(Retriever retriever, IChatClient chat, IChatClient judge, IReadOnlyList<RagItem> items,
        EvalTaskOptions options, CancellationToken cancellationToken)
    {
        int k = options.K ?? 5;
        var scores = MetricCatalog.OfKind(EvalTaskKind.Rag).ToDictionary(m => m, _ => new List<double>());
        foreach (var item in items)
        {
            // Chunks fold into their sources: the k distinct sources, best first, each with its retrieved chunks' text in rank order.
            var hits = await retriever.SearchAsync(item.Question, new SearchOptions(Top: k * 4), cancellationToken);
            var sources = hits.GroupBy(h => h.SourceId, StringComparer.Ordinal).Take(k)
                .Select(g => new RetrievedSource(g.Key, string.Join("\n", g.Select(h => h.Text)))).ToList();
            var (messages, chatOptions) = Request(RagPrompt(item.Question, sources), options);
            string answer = (await chat.GetResponseAsync(messages, chatOptions, cancellationToken)).Text;
            foreach (var (metric, value) in await ScoreRagAsync(item, sources, answer, judge, k, options.CitationThreshold ?? 0.5, cancellationToken))
                scores[metric].Add(value);
        }
        return scores.ToDictionary(pair => pair.Key, pair => Bootstrap.Mean(pair.Value, options));
    }

    /// <summary>
    /// Every RAG metric of one answer: context precision@k and recall of the retrieved sources against the labels, citation
    /// correctness (<see cref="CitationCorrectness"/>), and faithfulness and answer relevance from <paramref name="judge"/>.
    /// </summary>
    public static async Task<Dictionary<string, double>> ScoreRagAsync(RagItem item, IReadOnlyList<RetrievedSource> sources, string answer, IChatClient judge,
        int k, double citationThreshold, CancellationToken cancellationToken = default)
    {
        var relevant = item.Sources.ToHashSet(StringComparer.Ordinal);
        var top = sources.Take(k).ToList();
        int found = top.Count(s => relevant.Contains(s.Id));
        string context = string.Join("\n\n", top.Select(s => s.Text));
        return new Dictionary<string, double>
        {
            ["context_precision"] = top.Count == 0 ? 0 : found / (double)top.Count,
            ["context_recall"] = found / (double)relevant.Count,
            ["citation_correctness"] = CitationCorrectness(answer, top, item.Support, citationThreshold),
            ["faithfulness"] = await ChatJudge.FaithfulnessAsync(judge, context, StripCitations(answer), cancellationToken),
            ["answer_relevance"] = await ChatJudge.AnswerRelevanceAsync(judge, item.Question, StripCitations(answer), cancellationToken),
        };
    }

    /// <summary>
    /// The share of the answer's citations [n] that are right: n names a retrieved source and that source contains the labelled
    /// supporting text (case-insensitive) or at least <paramref name="threshold"/> of the citing sentence's content words (a
    /// citation alone after a full stop cites the sentence before it). An answer that cites nothing scores 0.
    /// </summary>
    public static double CitationCorrectness(string answer, IReadOnlyList<RetrievedSource> sources, string? support, double threshold)
    {
        int citations = 0, correct = 0;
        var words = new List<string>();
        foreach (string sentence in ChatJudge.Sentences(answer))
        {
            // Citations standing after the full stop ("… string. [1]") belong to the sentence before them.
            var own = OverlapJudgeChatClient.Words(StripCitations(sentence)).ToList();
            if (own.Count > 0) words = own;
            foreach (Match citation in Citation().Matches(sentence))
            {
                citations++;
                int n = int.Parse(citation.Groups[1].Value, CultureInfo.InvariantCulture);
                if (n < 1 || n > sources.Count) continue;
                string source = sources[n - 1].Text;
                var sourceWords = OverlapJudgeChatClient.Words(source).ToHashSet(StringComparer.Ordinal);
                bool supports = support is not null && source.Contains(support.Trim(), StringComparison.OrdinalIgnoreCase);
                bool covers = words.Count > 0 && words.Count(sourceWords.Contains) / (double)words.Count >= threshold;
                if (supports || covers) correct++;
            }
        }
        return citations == 0 ? 0 : correct / (double)citations;
    }

    static string StripCitations(string text) => Citation().Replace(text, "");

    /// <summary>RAG items: {"question", "sources": [ids]} or {"question", "member": id}, with an optional "support" text.</summary>
    public static IReadOnlyList<RagItem> ReadRagQuestions(EvalTask task) =>
        [.. ReadJsonl(task).Take(task.Options.MaxItems ?? int.MaxValue).Select(line =>
        {
            string question = Required(line.Node, "question", task, line.Number);
            var sources = line.Node["sources"] is not null ? Strings(line.Node, "sources", task, line.Number) : [Required(line.Node, "member", task, line.Number)];
            if (sources.Count == 0) throw new InvalidDataException($"{task.Data}:{line.Number}: \"sources\" is empty");
            string? support = line.Node["support"] is JsonNode ? Required(line.Node, "support", task, line.Number) : null;
            return new RagItem(question, sources, support);
        })];

    [GeneratedRegex(@"\[(\d+)\]")]
    private static partial Regex Citation();
}
