using Loom.Models;
using Loom.Retrieval;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving.Pipeline;

/// <summary>One grounded question: the member it is about, whether retrieval found it, and the answer with its sources.</summary>
/// <param name="Question">The question asked.</param>
/// <param name="ExpectedSource">The source id of the member the question is about.</param>
/// <param name="Found">Whether retrieval put that member in its top 5.</param>
/// <param name="Answer">The answer, its cited sources and all sources given.</param>
public sealed record GroundedResult(string Question, string ExpectedSource, bool Found, GroundedAnswer Answer);

/// <summary>
/// Every use of the grounded prompt in the pipeline, in one place: answering with citations through
/// <see cref="GroundedAnswerer"/>, and the same prompt for the tuning examples, shortened to fit a small model's context.
/// </summary>
internal static class GroundedAnswers
{
    const int SourceChars = 180;     // source text per citation in the prompt, so prompt + answer fit the context
    const int SourcesPerAnswer = 2;
    const int SearchDepth = 5;

    /// <summary>Answers each question from the index with the model, citing the sources it was given.</summary>
    public static async Task<List<GroundedResult>> AnswerAsync(Transformer model, ITokenizer tokenizer, RetrievalIndex index,
        IReadOnlyList<(string Question, string ExpectedSource)> questions, int answerTokens, Loom.Tensors.ComputeContext compute, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        await using var loomModel = LoomModel.Create("quickstart-tuned", model, tokenizer, new LoomModelOptions { Compute = compute });
        // The grounded answerer leaves the answer length open: the limits layer gives every request the cap.
        using var limited = loomModel.AsIChatClient().AsBuilder().UseLimits(new ChatLimits { MaxOutputTokens = answerTokens }).Build();
        var answerer = new GroundedAnswerer(index.Retriever, limited);
        var results = new List<GroundedResult>();
        foreach (var (question, expected) in questions)
        {
            var hits = await index.Retriever.SearchAsync(question, new SearchOptions(SearchMode.Hybrid, SearchDepth), cancellationToken);
            bool found = hits.Any(h => h.SourceId == expected);
            // Only the top sources, shortened, go into the prompt: the quickstart model's context is small.
            int room = model.Config.MaxSeq - answerTokens - 1;
            var shown = FittingHits(question, hits.Take(SourcesPerAnswer).ToList(), tokenizer, room, minimumSources: 1)
                ?? throw new InvalidDataException($"question '{question}' does not fit the model's context of {model.Config.MaxSeq} tokens");
            var answer = await answerer.AnswerAsync(question, shown, cancellationToken);
            results.Add(new GroundedResult(question, expected, found, answer));
        }
        progress?.Report($"retrieval hit rate (expected member in the top {SearchDepth}): {results.Count(r => r.Found)}/{results.Count}");
        return results;
    }

    /// <summary>The grounded prompt over these members, shortened to at most <paramref name="room"/> tokens; null when it does not fit.</summary>
    public static List<ChatTurn>? FittingPrompt(string question, IReadOnlyList<DocMember> members, ITokenizer tokenizer, int room) =>
        FittingHits(question, members.Select(Hit).ToList(), tokenizer, room, minimumSources: members.Count) is { } fitting
            ? RagPrompt.Build(question, RagPrompt.Number(fitting)).Select(Turn).ToList()
            : null;

    /// <summary>
    /// The sources, shortened (and, down to <paramref name="minimumSources"/>, fewer) until the grounded prompt
    /// takes at most <paramref name="room"/> tokens; null when even the shortest does not fit.
    /// </summary>
    static List<SearchHit>? FittingHits(string question, IReadOnlyList<SearchHit> hits, ITokenizer tokenizer, int room, int minimumSources)
    {
        for (int count = hits.Count; count >= Math.Min(minimumSources, hits.Count); count--)
            foreach (int chars in (int[])[SourceChars, 120, 80, 40])
            {
                var shortened = hits.Take(count).Select(h => h with { Text = Shorten(h.Text, chars) }).ToList();
                var turns = RagPrompt.Build(question, RagPrompt.Number(shortened)).Select(Turn).ToList();
                if (ChatTemplate.Encode(turns, tokenizer, addGenerationPrompt: true).Ids.Length <= room) return shortened;
            }
        return null;
    }

    static SearchHit Hit(DocMember member) =>
        new(0, member.Id, member.Title, "", Shorten(member.Text, SourceChars), 0, new Dictionary<string, string>());

    static ChatTurn Turn(ChatMessage message) => new(message.Role.Value, message.Text);

    static string Shorten(string text, int chars)
    {
        string flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= chars ? flat : flat[..chars].TrimEnd() + "…";
    }
}
