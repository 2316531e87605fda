using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Loom.Retrieval;

/// <summary>A numbered source in a prompt: [Number] is what the model cites.</summary>
public sealed record NumberedSource(int Number, SearchHit Hit);

/// <summary>The answer text and the sources it actually cites (in order of first citation).</summary>
public sealed record GroundedAnswer(string Text, IReadOnlyList<NumberedSource> CitedSources, IReadOnlyList<NumberedSource> AllSources);

/// <summary>Builds the grounded prompt and reads citations back.</summary>
public static partial class RagPrompt
{
    public const string SystemInstruction =
        "Answer the question using only the numbered sources. Cite every claim with the number of its source in square brackets, " +
        "like [1] or [2][3]. If the sources do not contain the answer, say that you do not know.";

    /// <summary>The sources numbered from 1 in the order given.</summary>
    public static IReadOnlyList<NumberedSource> Number(IReadOnlyList<SearchHit> hits) =>
        hits.Select((hit, index) => new NumberedSource(index + 1, hit)).ToList();

    /// <summary>The chat messages: a system instruction, then the sources and the question as the user turn.</summary>
    public static IList<ChatMessage> Build(string question, IReadOnlyList<NumberedSource> sources)
    {
        var user = new StringBuilder();
        user.Append("Sources:\n\n");
        foreach (var source in sources)
        {
            user.Append('[').Append(source.Number).Append("] ").Append(source.Hit.Title);
            if (source.Hit.HeadingPath.Length > 0)
                user.Append(" (").Append(source.Hit.HeadingPath).Append(')');
            user.Append('\n').Append(source.Hit.Text.Trim()).Append("\n\n");
        }
        user.Append("Question: ").Append(question.Trim()).Append("\nAnswer with citations:");
        return [new ChatMessage(ChatRole.System, SystemInstruction), new ChatMessage(ChatRole.User, user.ToString())];
    }

    [GeneratedRegex(@"\[(\d+(?:\s*[,;]\s*\d+)*)\]")]
    private static partial Regex CitationPattern();

    /// <summary>Citation numbers in the text ([3], [1, 2], [4][5]), distinct, in order of first appearance, only those in 1..sourceCount.</summary>
    public static IReadOnlyList<int> ParseCitations(string answer, int sourceCount)
    {
        var result = new List<int>();
        foreach (Match match in CitationPattern().Matches(answer))
            foreach (string part in match.Groups[1].Value.Split([',', ';'], StringSplitOptions.TrimEntries))
                if (int.TryParse(part, out int number) && number >= 1 && number <= sourceCount && !result.Contains(number))
                    result.Add(number);
        return result;
    }
}

/// <summary>Retrieves sources for a question, asks any IChatClient to answer citing them, and returns the cited sources.</summary>
public sealed class GroundedAnswerer(Retriever retriever, IChatClient chatClient, SearchOptions? searchOptions = null)
{
    public async Task<GroundedAnswer> AnswerAsync(string question, CancellationToken cancellationToken)
    {
        var hits = await retriever.SearchAsync(question, searchOptions, cancellationToken);
        return await AnswerAsync(question, hits, cancellationToken);
    }

    /// <summary>Answers from given hits (no retrieval), for callers that searched already.</summary>
    public async Task<GroundedAnswer> AnswerAsync(string question, IReadOnlyList<SearchHit> hits, CancellationToken cancellationToken)
    {
        var sources = RagPrompt.Number(hits);
        var response = await chatClient.GetResponseAsync(RagPrompt.Build(question, sources), new ChatOptions { Temperature = 0 }, cancellationToken);
        string text = response.Text;
        var cited = RagPrompt.ParseCitations(text, sources.Count).Select(number => sources[number - 1]).ToList();
        return new GroundedAnswer(text, cited, sources);
    }
}
