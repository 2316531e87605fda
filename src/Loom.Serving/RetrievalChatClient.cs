using System.Runtime.CompilerServices;
using System.Text;
using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>How the retrieval layer grounds a conversation; null means the default.</summary>
public sealed record RetrievalChatOptions
{
    /// <summary>How the retriever searches (mode, how many sources, filter); default <see cref="SearchOptions"/>' defaults.</summary>
    public SearchOptions? Search { get; init; }
    /// <summary>Characters of each source's text in the prompt at most (longer ones are shortened); default the whole chunk.</summary>
    public int? MaxSourceChars { get; init; }
    /// <summary>Tokens kept free for the answer at most (a request's smaller MaxOutputTokens keeps fewer); with neither set, a quarter of the context.</summary>
    public int? AnswerTokens { get; init; }
    /// <summary>Fewest sources to keep when the prompt must shrink to fit the context; default 1.</summary>
    public int? MinimumSources { get; init; }
}

/// <summary>The sources a grounded answer was given, and those it cites (in order of first citation).</summary>
public sealed record GroundingSources(IReadOnlyList<NumberedSource> Given, IReadOnlyList<NumberedSource> Cited)
{
    /// <summary>The key under which responses carry this record in their AdditionalProperties.</summary>
    public const string Key = "sources";
}

/// <summary>
/// Retrieval-augmented generation as a chat layer: searches for the last user message, numbers the sources,
/// rewrites the conversation into <see cref="RagPrompt"/>'s grounded prompt (earlier turns stay, the system
/// message becomes the citation instruction) and returns <see cref="GroundingSources"/> with the response
/// (on the last streamed update). When the inner client exposes an <see cref="ITextGenerator"/>, the prompt is
/// budgeted to its context: sources are shortened, then dropped, until prompt + the answer's room fit.
/// </summary>
public sealed class RetrievalChatClient(IChatClient innerClient, Func<string, CancellationToken, Task<IReadOnlyList<SearchHit>>> search,
    RetrievalChatOptions? options = null) : DelegatingChatClient(innerClient)
{
    const int ShortestSourceChars = 40;
    readonly RetrievalChatOptions options = options ?? new RetrievalChatOptions();

    /// <summary>Grounds with a retriever's search.</summary>
    public RetrievalChatClient(IChatClient innerClient, Retriever retriever, RetrievalChatOptions? options = null)
        : this(innerClient, (query, ct) => retriever.SearchAsync(query, options?.Search, ct), options)
    {
    }

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (grounded, sources) = await GroundAsync(messages.ToList(), options, cancellationToken).ConfigureAwait(false);
        var response = await base.GetResponseAsync(grounded, options, cancellationToken).ConfigureAwait(false);
        (response.AdditionalProperties ??= [])[GroundingSources.Key] = new GroundingSources(sources, RagPrompt.Cited(response.Text, sources));
        return response;
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (grounded, sources) = await GroundAsync(messages.ToList(), options, cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder();
        ChatResponseUpdate? finish = null;
        await foreach (var update in base.GetStreamingResponseAsync(grounded, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            // The update that finishes the answer is held back to carry the sources.
            if (update.FinishReason is null)
            {
                yield return update;
                continue;
            }
            if (finish is not null) yield return finish;
            finish = update;
        }
        finish ??= new ChatResponseUpdate { Role = ChatRole.Assistant };
        (finish.AdditionalProperties ??= [])[GroundingSources.Key] = new GroundingSources(sources, RagPrompt.Cited(text.ToString(), sources));
        yield return finish;
    }

    /// <summary>The conversation rewritten around the sources found for its last user message, and those sources.</summary>
    async Task<(List<ChatMessage> Messages, IReadOnlyList<NumberedSource> Sources)> GroundAsync(List<ChatMessage> messages, ChatOptions? chatOptions,
        CancellationToken cancellationToken)
    {
        int last = messages.FindLastIndex(m => m.Role == ChatRole.User);
        if (last < 0) throw new ChatRequestException("messages", "retrieval needs a user message to search for");
        string question = messages[last].Text;
        var generator = GetService(typeof(ITextGenerator)) as ITextGenerator;
        int context = generator?.ContextLength ?? 0;
        // The answer's room: the smaller of the request's MaxOutputTokens and AnswerTokens, else a quarter of the context.
        int? asked = (chatOptions?.MaxOutputTokens, options.AnswerTokens) switch
        {
            (int request, int limit) => Math.Min(request, limit),
            (int request, null) => request,
            (null, int limit) => limit,
            _ => null,
        };
        int answer = Math.Min(asked ?? context / 4, context / 2);
        int room = context - answer - 1; // the 1: a beginning-of-sequence token the generator may add
        int promptTokens = 0;
        // The conversation without any source must fit before the search runs: retrieval for a question that cannot be
        // answered would be work proportional to the question, thrown away.
        if (generator is not null)
        {
            promptTokens = generator.EncodeChat(LoomChatClient.Turns(Rewrite([]))).Length;
            if (promptTokens > room)
                throw new ChatRequestException("messages",
                    $"the messages take {promptTokens} tokens before any source; the context of {context} leaves {room} after {answer} for the answer",
                    ChatRequestException.ContextLengthExceeded);
        }
        var hits = await search(question, cancellationToken).ConfigureAwait(false);
        if (options.MaxSourceChars is int cap) hits = hits.Select(h => Shorten(h, cap)).ToList();

        List<ChatMessage> Rewrite(IReadOnlyList<NumberedSource> sources) =>
        [
            new ChatMessage(ChatRole.System, RagPrompt.SystemInstruction),
            .. messages.Take(last).Where(m => m.Role != ChatRole.System),
            new ChatMessage(ChatRole.User, RagPrompt.UserTurn(question, sources)),
            .. messages.Skip(last + 1),
        ];

        if (generator is null)
        {
            var all = RagPrompt.Number(hits);
            return (Rewrite(all), all);
        }
        int fewest = Math.Min(options.MinimumSources ?? 1, hits.Count);
        int longest = hits.Count == 0 ? 0 : hits.Max(h => h.Text.Length);
        for (int count = hits.Count; count >= fewest; count--)
            for (int chars = longest; ; chars /= 2)
            {
                var sources = RagPrompt.Number(hits.Take(count).Select(h => Shorten(h, chars)).ToList());
                var grounded = Rewrite(sources);
                promptTokens = generator.EncodeChat(LoomChatClient.Turns(grounded)).Length;
                if (promptTokens <= room) return (grounded, sources);
                if (chars <= ShortestSourceChars) break;
            }
        throw new ChatRequestException("messages",
            $"the grounded prompt takes {promptTokens} tokens even with {fewest} shortened source(s); the context of {context} leaves {room} after {answer} for the answer",
            ChatRequestException.ContextLengthExceeded);
    }

    /// <summary>The hit with its text on one line, cut to <paramref name="chars"/> characters (an ellipsis marks the cut).</summary>
    static SearchHit Shorten(SearchHit hit, int chars)
    {
        if (hit.Text.Length <= chars) return hit;
        string flat = hit.Text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= chars ? hit with { Text = flat } : hit with { Text = flat[..chars].TrimEnd() + "…" };
    }
}
