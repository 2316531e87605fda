using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Loom.Evaluation;

/// <summary>
/// RAG answer quality judged by any <see cref="IChatClient"/> with fixed prompts (as RAGAS does): faithfulness is the
/// share of the answer's sentences (its claims) that the judge finds supported by the retrieved context. The judge sees
/// the context and the numbered sentences and must reply one line per sentence, "N: SUPPORTED" or "N: UNSUPPORTED";
/// a sentence it gives no verdict on counts as unsupported. Requests are greedy, so a cached judge answers re-runs.
/// </summary>
public static partial class ChatJudge
{
    /// <summary>The fixed instruction the judge receives before the context and the sentences.</summary>
    public const string FaithfulnessInstruction =
        "You check answers against sources. For each numbered sentence of the answer, reply on its own line with its number and " +
        "SUPPORTED if the context states it, or UNSUPPORTED if it does not. Reply with nothing else.";

    /// <summary>The answer cut into sentences (its claims): at '.', '!' or '?' followed by white space.</summary>
    public static IReadOnlyList<string> Sentences(string answer) =>
        [.. SentenceEnd().Split(answer.Trim()).Select(s => s.Trim()).Where(s => s.Length > 0)];

    /// <summary>The faithfulness prompt for an answer and its context (the text the judge reads).</summary>
    public static string FaithfulnessPrompt(string context, IReadOnlyList<string> sentences)
    {
        var prompt = new StringBuilder(FaithfulnessInstruction).Append("\n\nContext:\n").Append(context.Trim()).Append("\n\nAnswer sentences:\n");
        for (int i = 0; i < sentences.Count; i++) prompt.Append(i + 1).Append(": ").Append(sentences[i]).Append('\n');
        return prompt.ToString();
    }

    /// <summary>Supported sentences / sentences (1 for an empty answer, which claims nothing).</summary>
    public static async Task<double> FaithfulnessAsync(IChatClient judge, string context, string answer, CancellationToken cancellationToken = default)
    {
        var sentences = Sentences(answer);
        if (sentences.Count == 0) return 1;
        var response = await judge.GetResponseAsync([new ChatMessage(ChatRole.User, FaithfulnessPrompt(context, sentences))],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 16 * sentences.Count + 16 }, cancellationToken);
        var supported = new HashSet<int>();
        foreach (Match match in Verdict().Matches(response.Text))
        {
            int number = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            if (number >= 1 && number <= sentences.Count && match.Groups[2].Value.Equals("SUPPORTED", StringComparison.OrdinalIgnoreCase))
                supported.Add(number);
        }
        return supported.Count / (double)sentences.Count;
    }

    /// <summary>The fixed instruction of answer relevance, before the question and the answer.</summary>
    public const string RelevanceInstruction =
        "Rate how well the answer addresses the question, from 0 (not at all) to 10 (fully). Reply with the number only.";

    /// <summary>The answer relevance prompt (the text the judge reads).</summary>
    public static string RelevancePrompt(string question, string answer) =>
        $"{RelevanceInstruction}\n\nQuestion:\n{question.Trim()}\n\nAnswer:\n{answer.Trim()}\n";

    /// <summary>The judge's rating of the answer's relevance to the question, 0-10, divided by 10 (0 when the reply holds no rating).</summary>
    public static async Task<double> AnswerRelevanceAsync(IChatClient judge, string question, string answer, CancellationToken cancellationToken = default)
    {
        var response = await judge.GetResponseAsync([new ChatMessage(ChatRole.User, RelevancePrompt(question, answer))],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 8 }, cancellationToken);
        return Rating().Match(response.Text) is { Success: true } m && int.Parse(m.Value, CultureInfo.InvariantCulture) is var rating && rating <= 10 ? rating / 10.0 : 0;
    }

    [GeneratedRegex(@"(?<=[.!?])\s+")]
    private static partial Regex SentenceEnd();

    [GeneratedRegex(@"\b\d{1,2}\b")]
    private static partial Regex Rating();

    [GeneratedRegex(@"^\s*(\d+)\s*[:.)-]\s*(SUPPORTED|UNSUPPORTED)\b", RegexOptions.Multiline | RegexOptions.IgnoreCase)]
    private static partial Regex Verdict();
}

/// <summary>
/// A program judge behind <see cref="IChatClient"/>, answering the fixed prompts of <see cref="ChatJudge"/> and
/// <see cref="ChatPairwiseJudge"/>. Faithfulness: a sentence is supported when at least <paramref name="threshold"/> of its
/// content words (three letters or more, lower case) occur in the context. Relevance: 10 × the share of the question's
/// content words in the answer, rounded. Pairwise: the answer with the higher word F1 against the reference (against the
/// question when there is none); "TIE" when equal. A real, if lexical, judge: deterministic, free, usable wherever a model judge is.
/// </summary>
public sealed partial class OverlapJudgeChatClient(double threshold = 0.8) : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        string prompt = messages.Last().Text;
        if (prompt.StartsWith(ChatJudge.RelevanceInstruction, StringComparison.Ordinal)) return Reply(Relevance(prompt));
        if (prompt.StartsWith(ChatPairwiseJudge.Instruction, StringComparison.Ordinal)) return Reply(Pairwise(prompt));
        int contextStart = prompt.IndexOf("\n\nContext:\n", StringComparison.Ordinal), sentencesStart = prompt.IndexOf("\n\nAnswer sentences:\n", StringComparison.Ordinal);
        if (contextStart < 0 || sentencesStart < contextStart)
            return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, "")));
        var contextWords = Words(prompt[contextStart..sentencesStart]).ToHashSet(StringComparer.Ordinal);
        var reply = new StringBuilder();
        foreach (Match line in NumberedLine().Matches(prompt[sentencesStart..]))
        {
            var words = Words(line.Groups[2].Value).ToList();
            double covered = words.Count == 0 ? 1 : words.Count(contextWords.Contains) / (double)words.Count;
            reply.Append(line.Groups[1].Value).Append(covered >= threshold ? ": SUPPORTED\n" : ": UNSUPPORTED\n");
        }
        return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, reply.ToString())));
    }

    static Task<ChatResponse> Reply(string text) => Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, text)));

    static string Relevance(string prompt)
    {
        int question = prompt.IndexOf("\n\nQuestion:\n", StringComparison.Ordinal), answer = prompt.IndexOf("\n\nAnswer:\n", StringComparison.Ordinal);
        if (question < 0 || answer < question) return "";
        var asked = Words(prompt[question..answer]).Skip(1).ToHashSet(StringComparer.Ordinal);
        var answered = Words(prompt[answer..]).Skip(1).ToHashSet(StringComparer.Ordinal);
        double share = asked.Count == 0 ? 1 : asked.Count(answered.Contains) / (double)asked.Count;
        return Math.Round(10 * share, MidpointRounding.AwayFromZero).ToString(CultureInfo.InvariantCulture);
    }

    static string Pairwise(string prompt)
    {
        string Section(string name, string? next)
        {
            int start = prompt.IndexOf($"\n{name}:\n", StringComparison.Ordinal);
            if (start < 0) return "";
            start += name.Length + 3;
            int end = next is null ? prompt.Length : prompt.IndexOf($"\n{next}:\n", start, StringComparison.Ordinal);
            return prompt[start..(end < 0 ? prompt.Length : end)].Trim();
        }
        string reference = prompt.Contains("\nReference answer:\n", StringComparison.Ordinal) ? Section("Reference answer", "Answer A") : Section("Question", "Answer A");
        double a = NlpMetrics.F1(Section("Answer A", "Answer B"), reference), b = NlpMetrics.F1(Section("Answer B", null), reference);
        return a > b ? "A" : a < b ? "B" : "TIE";
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var update in (await GetResponseAsync(messages, options, cancellationToken)).ToChatResponseUpdates()) yield return update;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }

    internal static IEnumerable<string> Words(string text) => ContentWord().Matches(text.ToLowerInvariant()).Select(m => m.Value);

    [GeneratedRegex(@"\p{L}{3,}")]
    private static partial Regex ContentWord();

    [GeneratedRegex(@"^(\d+): (.*)$", RegexOptions.Multiline)]
    private static partial Regex NumberedLine();
}
