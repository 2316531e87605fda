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

    [GeneratedRegex(@"(?<=[.!?])\s+")]
    private static partial Regex SentenceEnd();

    [GeneratedRegex(@"^\s*(\d+)\s*[:.)-]\s*(SUPPORTED|UNSUPPORTED)\b", RegexOptions.Multiline | RegexOptions.IgnoreCase)]
    private static partial Regex Verdict();
}

/// <summary>
/// A program judge behind <see cref="IChatClient"/>: it reads <see cref="ChatJudge"/>'s faithfulness prompt and calls a
/// sentence supported when at least <paramref name="threshold"/> of its content words (three letters or more, lower case)
/// occur in the context. A real, if lexical, judge: deterministic, free, and usable wherever a model judge is.
/// </summary>
public sealed partial class OverlapJudgeChatClient(double threshold = 0.8) : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        string prompt = messages.Last().Text;
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

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var update in (await GetResponseAsync(messages, options, cancellationToken)).ToChatResponseUpdates()) yield return update;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }

    static IEnumerable<string> Words(string text) => ContentWord().Matches(text.ToLowerInvariant()).Select(m => m.Value);

    [GeneratedRegex(@"\p{L}{3,}")]
    private static partial Regex ContentWord();

    [GeneratedRegex(@"^(\d+): (.*)$", RegexOptions.Multiline)]
    private static partial Regex NumberedLine();
}
