using System.Runtime.CompilerServices;
using Loom.Models;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>
/// Loom's models as a Microsoft.Extensions.AI <see cref="IChatClient"/>: messages go through
/// Loom's chat template into any <see cref="ITextGenerator"/> (Loom's batching engine or llama.cpp).
/// </summary>
public sealed class LoomChatClient(ITextGenerator generator) : IChatClient
{
    readonly ChatClientMetadata metadata = new("loom", defaultModelId: generator.ModelName);

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        StreamAsync(generator, Request(generator, messages, options), cancellationToken).ToChatResponseAsync(cancellationToken);

    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        StreamAsync(generator, Request(generator, messages, options), cancellationToken);

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(ChatClientMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this :
        serviceType.IsInstanceOfType(generator) ? generator : null;

    public void Dispose() { }

    /// <summary>Chat messages as Loom's chat turns ("developer" is the system role).</summary>
    public static List<ChatTurn> Turns(IEnumerable<ChatMessage> messages) =>
        messages.Select(m => new ChatTurn(m.Role.Value == "developer" ? "system" : m.Role.Value, m.Text)).ToList();

    /// <summary>
    /// The generation request for a conversation: Loom's chat template, ending with an open assistant turn.
    /// Throws <see cref="ChatRequestException"/> when the prompt leaves no room in the context.
    /// </summary>
    public static GenerationRequest Request(ITextGenerator generator, IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var tokens = generator.EncodeChat(Turns(messages));
        CheckFits(generator, tokens.Length, "messages");
        return new GenerationRequest
        {
            PromptTokens = tokens,
            MaxTokens = options?.MaxOutputTokens,
            Stop = [.. options?.StopSequences ?? [], ChatTemplate.End],
            Sampling = Sampling(options),
        };
    }

    /// <summary>The generation request for a raw prompt (no chat template): what /v1/completions asks.</summary>
    public static GenerationRequest Request(ITextGenerator generator, string prompt, ChatOptions? options)
    {
        CheckFits(generator, generator.CountTokens(prompt), "prompt");
        return new GenerationRequest
        {
            Prompt = prompt,
            MaxTokens = options?.MaxOutputTokens,
            Stop = options?.StopSequences is { } stop ? [.. stop] : null,
            Sampling = Sampling(options),
        };
    }

    /// <summary>Streams a request's generation as chat updates; the last one carries the finish reason and the usage.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(ITextGenerator generator, GenerationRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = Guid.NewGuid().ToString("N");
        await foreach (var update in generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            var chunk = new ChatResponseUpdate(ChatRole.Assistant, update.Text)
            {
                ModelId = generator.ModelName,
                ResponseId = responseId,
                FinishReason = Finish(update.FinishReason),
            };
            if (update.FinishReason is not null)
                chunk.Contents.Add(new UsageContent(new UsageDetails
                {
                    InputTokenCount = update.PromptTokens,
                    OutputTokenCount = update.CompletionTokens,
                    TotalTokenCount = update.PromptTokens + update.CompletionTokens,
                }));
            yield return chunk;
        }
    }

    static SamplingOptions Sampling(ChatOptions? options) => new()
    {
        Temperature = options?.Temperature ?? 1f,
        TopP = options?.TopP ?? 1f,
        TopK = options?.TopK ?? 0,
        FrequencyPenalty = options?.FrequencyPenalty ?? 0f,
        PresencePenalty = options?.PresencePenalty ?? 0f,
        Seed = options?.Seed is long seed ? unchecked((int)seed) : null,
    };

    static void CheckFits(ITextGenerator generator, int promptTokens, string field)
    {
        if (promptTokens + 1 >= generator.ContextLength)
            throw new ChatRequestException(field, $"the prompt has about {promptTokens} tokens; the context holds {generator.ContextLength}",
                ChatRequestException.ContextLengthExceeded);
    }

    static ChatFinishReason? Finish(FinishReason? reason) => reason switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length => ChatFinishReason.Length,
        _ => null,
    };
}
