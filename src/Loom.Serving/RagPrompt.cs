using System.Text;
using System.Text.RegularExpressions;
using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>A numbered source in a prompt: [Number] is what the model cites.</summary>
public sealed record NumberedSource(int Number, SearchHit Hit);

/// <summary>The grounded prompt's wording, and citations read back from an answer.</summary>
public static partial class RagPrompt
{
    public const string SystemInstruction =
        "Answer the question using only the numbered sources. Cite every claim with the number of its source in square brackets, " +
        "like [1] or [2][3]. If the sources do not contain the answer, say that you do not know.";

    /// <summary>The sources numbered from 1 in the order given.</summary>
    public static IReadOnlyList<NumberedSource> Number(IReadOnlyList<SearchHit> hits) =>
        hits.Select((hit, index) => new NumberedSource(index + 1, hit)).ToList();

    /// <summary>The chat messages: a system instruction, then the sources and the question as the user turn.</summary>
    public static IList<ChatMessage> Build(string question, IReadOnlyList<NumberedSource> sources) =>
        [new ChatMessage(ChatRole.System, SystemInstruction), new ChatMessage(ChatRole.User, UserTurn(question, sources))];

    /// <summary>The user turn: each source as "[n] title (section)" and its text, then the question.</summary>
    public static string UserTurn(string question, IReadOnlyList<NumberedSource> sources)
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
        return user.ToString();
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

    /// <summary>The sources the answer cites, in order of first citation.</summary>
    public static IReadOnlyList<NumberedSource> Cited(string answer, IReadOnlyList<NumberedSource> sources) =>
        ParseCitations(answer, sources.Count).Select(number => sources[number - 1]).ToList();
}
