using System.Runtime.CompilerServices;
using System.Text;
using Loom.Text;
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

    /// <summary>
    /// Refuses, before any tokenizing, a conversation too long by its characters alone for a context of
    /// <paramref name="contextLength"/> tokens: no token stands for more UTF-16 characters than the UTF-8 bytes of the
    /// tokenizer's longest token (+1 for a space a tokenizer drops when it decodes a token alone), and twice that bound
    /// leaves room for normalizers that compose characters. So a 50 MB message costs a character count, not a tokenization.
    /// </summary>
    public static void CheckLength(IEnumerable<ChatMessage> messages, ITokenizer tokenizer, int contextLength)
    {
        long chars = 0;
        foreach (var message in messages) chars += message.Text.Length;
        CheckLength(chars, "messages", "the messages hold", tokenizer, contextLength);
    }

    /// <summary>The same bound for a raw prompt (/v1/completions), named by <paramref name="field"/>.</summary>
    public static void CheckLength(string prompt, string field, ITokenizer tokenizer, int contextLength) =>
        CheckLength(prompt.Length, field, $"the {field} holds", tokenizer, contextLength);

    static void CheckLength(long chars, string field, string subject, ITokenizer tokenizer, int contextLength)
    {
        long bound = 2L * contextLength * (LongestTokenBytes(tokenizer) + 1);
        if (chars > bound)
            throw new ChatRequestException(field,
                $"{subject} {chars:N0} characters; a context of {contextLength} tokens holds at most {bound:N0}", ChatRequestException.ContextLengthExceeded);
    }

    static readonly ConditionalWeakTable<ITokenizer, StrongBox<int>> Longest = new();

    /// <summary>UTF-8 bytes of the tokenizer's longest token as decoded alone (measured once per tokenizer).</summary>
    static int LongestTokenBytes(ITokenizer tokenizer) => Longest.GetValue(tokenizer, t =>
    {
        int longest = 1;
        for (int id = 0; id < t.VocabSize; id++)
            longest = Math.Max(longest, Encoding.UTF8.GetByteCount(t.Decode([id])));
        return new StrongBox<int>(longest);
    }).Value;
}

/// <summary>
/// Validates every request against <see cref="ChatLimits"/> and caps its output before the inner client
/// sees it; bad requests fail with a one-line <see cref="ChatRequestException"/> naming the field. Over Loom's engine,
/// messages too long by their characters for its context are refused before anything tokenizes them
/// (<see cref="ChatLimits.CheckLength"/>).
/// </summary>
public sealed class LimitsChatClient(IChatClient innerClient, ChatLimits limits) : DelegatingChatClient(innerClient)
{
    public ChatLimits Limits => limits;

    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Check(messages);
        return base.GetResponseAsync(messages, limits.Apply(options), cancellationToken);
    }

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Check(messages);
        return base.GetStreamingResponseAsync(messages, limits.Apply(options), cancellationToken);
    }

    void Check(IEnumerable<ChatMessage> messages)
    {
        ChatLimits.CheckMessages(messages);
        if (GetService(typeof(GenerationEngine)) is GenerationEngine engine) ChatLimits.CheckLength(messages, engine.Tokenizer, engine.ContextLength);
    }

    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(ChatLimits) ? limits : base.GetService(serviceType, serviceKey);
}
