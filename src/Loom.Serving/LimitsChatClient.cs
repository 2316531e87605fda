using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>What a chat request may ask for; null means no limit.</summary>
public sealed record ChatLimits
{
    /// <summary>Largest <see cref="ChatOptions.MaxOutputTokens"/> a request may ask for; a request that sets none gets this many.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>
    /// The options checked and capped: a copy with <see cref="ChatOptions.MaxOutputTokens"/> filled in from the cap.
    /// Throws <see cref="ChatRequestException"/> naming the first field out of range.
    /// </summary>
    public ChatOptions Apply(ChatOptions? options)
    {
        var checkedOptions = options?.Clone() ?? new ChatOptions();
        if (checkedOptions.MaxOutputTokens is int max && (max < 1 || max > (MaxOutputTokens ?? int.MaxValue)))
            throw new ChatRequestException("ChatOptions.MaxOutputTokens",
                $"ChatOptions.MaxOutputTokens must be between 1 and {MaxOutputTokens ?? int.MaxValue}, got {max}");
        checkedOptions.MaxOutputTokens ??= MaxOutputTokens;
        if (checkedOptions.Temperature is float temperature && !(temperature >= 0 && temperature <= 2))
            throw new ChatRequestException("ChatOptions.Temperature", $"ChatOptions.Temperature must be in [0, 2], got {temperature}");
        if (checkedOptions.TopP is float topP && !(topP > 0 && topP <= 1))
            throw new ChatRequestException("ChatOptions.TopP", $"ChatOptions.TopP must be in (0, 1], got {topP}");
        if (checkedOptions.TopK is < 0)
            throw new ChatRequestException("ChatOptions.TopK", $"ChatOptions.TopK must be >= 0, got {checkedOptions.TopK}");
        if (checkedOptions.FrequencyPenalty is float frequency && !(frequency >= -2 && frequency <= 2))
            throw new ChatRequestException("ChatOptions.FrequencyPenalty", $"ChatOptions.FrequencyPenalty must be in [-2, 2], got {frequency}");
        if (checkedOptions.PresencePenalty is float presence && !(presence >= -2 && presence <= 2))
            throw new ChatRequestException("ChatOptions.PresencePenalty", $"ChatOptions.PresencePenalty must be in [-2, 2], got {presence}");
        return checkedOptions;
    }

    /// <summary>Checks a conversation: at least one message.</summary>
    public static void CheckMessages(IEnumerable<ChatMessage> messages)
    {
        if (!messages.Any()) throw new ChatRequestException("messages", "messages must hold at least one message");
    }
}

/// <summary>
/// Validates every request against <see cref="ChatLimits"/> and caps its output before the inner client
/// sees it; bad requests fail with a one-line <see cref="ChatRequestException"/> naming the field.
/// </summary>
public sealed class LimitsChatClient(IChatClient innerClient, ChatLimits limits) : DelegatingChatClient(innerClient)
{
    public ChatLimits Limits => limits;

    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ChatLimits.CheckMessages(messages);
        return base.GetResponseAsync(messages, limits.Apply(options), cancellationToken);
    }

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ChatLimits.CheckMessages(messages);
        return base.GetStreamingResponseAsync(messages, limits.Apply(options), cancellationToken);
    }

    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(ChatLimits) ? limits : base.GetService(serviceType, serviceKey);
}
