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

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        GenerationUpdate? last = null;
        await foreach (var update in generator.GenerateAsync(Request(generator, messages, options), cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            last = update;
        }
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = generator.ModelName,
            FinishReason = Finish(last?.FinishReason),
            Usage = last is null ? null : new UsageDetails
            {
                InputTokenCount = last.PromptTokens,
                OutputTokenCount = last.CompletionTokens,
                TotalTokenCount = last.PromptTokens + last.CompletionTokens,
            },
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = Guid.NewGuid().ToString("N");
        await foreach (var update in generator.GenerateAsync(Request(generator, messages, options), cancellationToken).ConfigureAwait(false))
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

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(ChatClientMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this :
        serviceType.IsInstanceOfType(generator) ? generator : null;

    public void Dispose() { }

    /// <summary>The generation request for a conversation: Loom's chat template, ending with an open assistant turn.</summary>
    public static GenerationRequest Request(ITextGenerator generator, IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var turns = messages.Select(m => new ChatTurn(m.Role.Value == "developer" ? "system" : m.Role.Value, m.Text)).ToList();
        return new GenerationRequest
        {
            PromptTokens = generator.EncodeChat(turns),
            MaxTokens = options?.MaxOutputTokens,
            Stop = [.. options?.StopSequences ?? [], ChatTemplate.End],
            Sampling = new SamplingOptions
            {
                Temperature = options?.Temperature ?? 1f,
                TopP = options?.TopP ?? 1f,
                TopK = options?.TopK ?? 0,
                FrequencyPenalty = options?.FrequencyPenalty ?? 0f,
                PresencePenalty = options?.PresencePenalty ?? 0f,
                Seed = options?.Seed is long seed ? unchecked((int)seed) : null,
            },
        };
    }

    static ChatFinishReason? Finish(FinishReason? reason) => reason switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length => ChatFinishReason.Length,
        _ => null,
    };
}
