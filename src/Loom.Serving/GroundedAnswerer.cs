using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>The answer text and the sources it actually cites (in order of first citation).</summary>
public sealed record GroundedAnswer(string Text, IReadOnlyList<NumberedSource> CitedSources, IReadOnlyList<NumberedSource> AllSources);

/// <summary>
/// One grounded question, greedy, through <see cref="RetrievalChatClient"/> over any IChatClient: a convenience
/// for callers that hold a plain client. Pipelines that answer people compose the layer with <see cref="LoomPipeline"/>.
/// </summary>
public sealed class GroundedAnswerer(Retriever retriever, IChatClient chatClient, SearchOptions? searchOptions = null)
{
    public Task<GroundedAnswer> AnswerAsync(string question, CancellationToken cancellationToken) =>
        AnswerAsync(new RetrievalChatClient(chatClient, retriever, new RetrievalChatOptions { Search = searchOptions }), question, cancellationToken);

    /// <summary>Answers from given hits (no retrieval), for callers that searched already.</summary>
    public Task<GroundedAnswer> AnswerAsync(string question, IReadOnlyList<SearchHit> hits, CancellationToken cancellationToken) =>
        AnswerAsync(new RetrievalChatClient(chatClient, (_, _) => Task.FromResult(hits)), question, cancellationToken);

    static async Task<GroundedAnswer> AnswerAsync(RetrievalChatClient grounded, string question, CancellationToken cancellationToken)
    {
        var response = await grounded.GetResponseAsync([new ChatMessage(ChatRole.User, question)], new ChatOptions { Temperature = 0 }, cancellationToken);
        var sources = response.GetSources()!;
        return new GroundedAnswer(response.Text, sources.Cited, sources.Given);
    }
}
