namespace Loom.Evaluation;

/// <summary>A metric's meaning: its one-line explanation (shown beside every value in reports) and which way is better.</summary>
public sealed record MetricInfo(string Name, string Explanation, bool HigherIsBetter);

/// <summary>Every metric a task can report, by kind.</summary>
public static class MetricCatalog
{
    static readonly MetricInfo[] All =
    [
        new("word_perplexity", "exp(total negative log-likelihood / words in the text): how surprised the model is per word", false),
        new("byte_perplexity", "exp(total negative log-likelihood / UTF-8 bytes): perplexity per byte, comparable across tokenizers", false),
        new("bits_per_byte", "total negative log-likelihood in bits / UTF-8 bytes (bits per character on ASCII text)", false),
        new("acc", "share of questions where the choice with the highest summed log-likelihood is the right one", true),
        new("acc_norm", "as acc, but each choice's log-likelihood divided by its length in characters, so long choices are not penalised", true),
        new("exact_match", "share of answers equal to a reference after lower-casing and removing punctuation and articles (SQuAD)", true),
        new("f1", "harmonic mean of word precision and recall against the reference (the NLP evaluators' F1)", true),
        new("squad_f1", "word-overlap F1 after SQuAD's normalisation (lower case, no punctuation or articles)", true),
        new("rouge_l", "ROUGE-L F1: longest common word subsequence with the reference, as precision and recall", true),
        new("bleu", "sentence BLEU: clipped 1-4-gram precision with a brevity penalty (NLTK smoothing method 4)", true),
        new("gleu", "sentence GLEU: min of 1-4-gram precision and recall against the best reference", true),
        new("hit_rate", "share of questions with a labelled source among the top k retrieved sources", true),
        new("recall", "share of each question's labelled sources found in the top k, averaged over questions", true),
        new("mrr", "mean reciprocal rank of the first labelled source within the top k (0 when none is there)", true),
        new("schema_valid", "share of answers that parse as JSON and satisfy the task's JSON Schema", true),
        new("context_precision", "share of the top k retrieved sources that are labelled relevant, averaged over questions (precision@k)", true),
        new("context_recall", "share of each question's labelled sources found in the top k, averaged over questions", true),
        new("citation_correctness", "share of citations [n] whose source supports the citing sentence (its content words or the labelled support text are in it); an answer citing nothing scores 0", true),
        new("faithfulness", "share of the answer's sentences the judge finds supported by the retrieved context (RAGAS)", true),
        new("answer_relevance", "the judge's 0-10 rating of how well the answer addresses the question, divided by 10", true),
        new("anomaly_precision", "share of the sessions flagged anomalous that are labelled anomalous", true),
        new("anomaly_recall", "share of the sessions labelled anomalous that are flagged", true),
        new("anomaly_f1", "harmonic mean of anomaly precision and recall (DeepLog's F-measure)", true),
        new("win_rate", "share of items where model A's answer beats B's under the judge (a tie counts one half)", true),
    ];

    static readonly Dictionary<EvalTaskKind, string[]> ByKind = new()
    {
        [EvalTaskKind.Perplexity] = ["word_perplexity", "byte_perplexity", "bits_per_byte"],
        [EvalTaskKind.MultipleChoice] = ["acc", "acc_norm"],
        [EvalTaskKind.Generate] = ["exact_match", "f1", "squad_f1", "rouge_l", "bleu", "gleu", "schema_valid"],
        [EvalTaskKind.Retrieval] = ["hit_rate", "recall", "mrr"],
        [EvalTaskKind.Pairwise] = ["win_rate"],
        [EvalTaskKind.Logs] = ["anomaly_precision", "anomaly_recall", "anomaly_f1"],
        [EvalTaskKind.Rag] = ["context_precision", "context_recall", "citation_correctness", "faithfulness", "answer_relevance"],
    };

    public static IReadOnlyList<string> OfKind(EvalTaskKind kind) => ByKind[kind];

    /// <summary>The metric named <paramref name="name"/>; an unknown name gets a neutral entry (higher is better, no explanation).</summary>
    public static MetricInfo Get(string name) => All.FirstOrDefault(m => m.Name == name) ?? new MetricInfo(name, "", true);

    public static bool IsKnown(string name) => All.Any(m => m.Name == name);
}
