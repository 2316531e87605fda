using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Loom.Serving.Feedback;

/// <summary>
/// Records every response that passes through as a traffic item of <see cref="TrafficFeedback"/> (after the response
/// completed, streamed or not; a failed or cancelled request is not recorded), so that the person who got it can give
/// feedback on its <see cref="ChatResponse.ResponseId"/> with <see cref="SubmitAsync"/>. A store that fails does not fail
/// the request: the failure is logged and counted in <see cref="TrafficFeedback.RecordFailures"/>.
/// The response id is <see cref="ChatOptions.AdditionalProperties"/>[<see cref="ResponseIdKey"/>] when the caller gives
/// one (the server does, so the id it returns is the id recorded), else the inner client's; the response and every
/// update carry it. An M.E.AI app finds this layer with <c>chatClient.GetService&lt;FeedbackCaptureChatClient&gt;()</c>.
/// </summary>
public sealed class FeedbackCaptureChatClient(IChatClient innerClient, TrafficFeedback feedback, string? modelVersion = null)
    : DelegatingChatClient(innerClient)
{
    /// <summary>Options: the id to give (and record) the response under, a string.</summary>
    public const string ResponseIdKey = "loom.response_id";

    public TrafficFeedback Feedback => feedback;

    /// <summary>The model version recorded with each response; null records the response's model id.</summary>
    public string? ModelVersion => modelVersion;

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var given = messages as IReadOnlyList<ChatMessage> ?? [.. messages];
        var response = await base.GetResponseAsync(given, options, cancellationToken).ConfigureAwait(false);
        response.ResponseId = RequestedId(options) ?? response.ResponseId ?? NewId();
        await RecordAsync(response.ResponseId, given, response, cancellationToken).ConfigureAwait(false);
        return response;
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var given = messages as IReadOnlyList<ChatMessage> ?? [.. messages];
        string? id = RequestedId(options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in base.GetStreamingResponseAsync(given, options, cancellationToken).ConfigureAwait(false))
        {
            id ??= update.ResponseId ?? NewId();
            update.ResponseId = id;
            updates.Add(update);
            yield return update;
        }
        // The stream ended normally: the answer is complete, so it is recorded before the caller sees the end.
        id ??= NewId();
        await RecordAsync(id, given, updates.ToChatResponse(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Feedback on a response this layer recorded; see <see cref="TrafficFeedback.SubmitAsync"/>.</summary>
    public Task<long> SubmitAsync(string responseId, FeedbackSubmission submission, CancellationToken cancellationToken = default) =>
        feedback.SubmitAsync(responseId, submission, cancellationToken);

    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(TrafficFeedback) ? feedback : base.GetService(serviceType, serviceKey);

    async Task RecordAsync(string id, IReadOnlyList<ChatMessage> given, ChatResponse response, CancellationToken cancellationToken)
    {
        try
        {
            string version = modelVersion ?? response.ModelId ?? (GetService(typeof(ChatClientMetadata)) as ChatClientMetadata)?.DefaultModelId ?? "unknown";
            await feedback.RecordAsync(id, LoomChatClient.Turns(given).Select(t => new FeedbackMessage(t.Role, t.Content)), Text(response.Messages), version, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            feedback.RecordFailed(id, e);
        }
    }

    /// <summary>The answer's text, function calls as the JSON the model wrote (as <see cref="LoomChatClient.Turns"/> renders them).</summary>
    static string Text(IEnumerable<ChatMessage> messages) =>
        string.Join("\n", LoomChatClient.Turns(messages.Where(m => m.Role == ChatRole.Assistant)).Select(t => t.Content));

    static string? RequestedId(ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(ResponseIdKey, out var value) == true && value is string { Length: > 0 } id ? id : null;

    static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
}
