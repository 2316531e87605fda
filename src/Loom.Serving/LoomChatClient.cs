using System.Runtime.CompilerServices;
using Loom.Models;
using System.Text.Json;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>
/// Loom's models as a Microsoft.Extensions.AI <see cref="IChatClient"/>: messages go through
/// Loom's chat template into any <see cref="ITextGenerator"/> (Loom's batching engine or llama.cpp).
/// <see cref="ChatOptions.ResponseFormat"/>, <see cref="ChatOptions.Tools"/> and <see cref="ChatOptions.ToolMode"/> constrain
/// the answer (<see cref="ChatTools"/>); a function call comes back as <see cref="FunctionCallContent"/>, and
/// <see cref="FunctionResultContent"/> messages become tool turns. <see cref="ChatOptions.AdditionalProperties"/> may hold
/// <see cref="LogprobsKey"/> (bool), <see cref="TopLogprobsKey"/> (int, 0..20) and <see cref="LogitBiasKey"/> (token id to
/// bias, -100..100); with logprobs on, each update and the response carry <see cref="LogprobsKey"/>: a list of <see cref="TokenLogprob"/>.
/// </summary>
public sealed class LoomChatClient(ITextGenerator generator) : IChatClient
{
    /// <summary>Options: whether to report log-probabilities (bool). Responses and updates: the tokens' <see cref="TokenLogprob"/> list.</summary>
    public const string LogprobsKey = "logprobs";
    /// <summary>Options: how many alternatives each token's log-probability entry lists (int, 0..20; implies logprobs).</summary>
    public const string TopLogprobsKey = "top_logprobs";
    /// <summary>Options: added to the logits of token ids (an IReadOnlyDictionary&lt;int, float&gt;, or a dictionary of id strings to numbers).</summary>
    public const string LogitBiasKey = "logit_bias";

    readonly ChatClientMetadata metadata = new("loom", defaultModelId: generator.ModelName);

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        CollectAsync(GetStreamingResponseAsync(messages, options, cancellationToken), cancellationToken);

    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var tools = ChatTools.From(options);
        return StreamAsync(generator, Request(generator, messages, options, tools), tools,
            tools is not null ? "ChatOptions.Tools" : "ChatOptions.ResponseFormat", cancellationToken);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null :
        serviceType == typeof(ChatClientMetadata) ? metadata :
        serviceType.IsInstanceOfType(this) ? this :
        serviceType.IsInstanceOfType(generator) ? generator : null;

    public void Dispose() { }

    /// <summary>
    /// Chat messages as Loom's chat turns ("developer" is the system role): function calls as their JSON, function results as
    /// tool turns, and the offered functions (when <paramref name="tools"/> is set) in the system turn.
    /// </summary>
    public static List<ChatTurn> Turns(IEnumerable<ChatMessage> messages, ChatTools? tools = null)
    {
        var turns = new List<ChatTurn>();
        foreach (var message in messages)
        {
            string role = message.Role.Value == "developer" ? "system" : message.Role.Value;
            var parts = new List<string>();
            if (message.Text.Length > 0) parts.Add(message.Text);
            foreach (var content in message.Contents)
                if (content is FunctionCallContent call) parts.Add(ChatTools.CallJson(call));
                else if (content is FunctionResultContent result) parts.Add(ChatTools.ResultText(result));
            turns.Add(new ChatTurn(role, string.Join("\n", parts)));
        }
        if (tools is not null)
        {
            int system = turns.FindIndex(t => t.Role == "system");
            if (system < 0) turns.Insert(0, new ChatTurn("system", tools.Block()));
            else turns[system] = turns[system] with { Content = turns[system].Content + "\n\n" + tools.Block() };
        }
        return turns;
    }

    /// <summary>
    /// The generation request for a conversation: the generator's chat format, ending with an open assistant turn.
    /// Throws <see cref="ChatRequestException"/> when the prompt leaves no room in the context.
    /// </summary>
    public static GenerationRequest Request(ITextGenerator generator, IEnumerable<ChatMessage> messages, ChatOptions? options) =>
        Request(generator, messages, options, ChatTools.From(options));

    static GenerationRequest Request(ITextGenerator generator, IEnumerable<ChatMessage> messages, ChatOptions? options, ChatTools? tools)
    {
        var tokens = generator.EncodeChat(Turns(messages, tools));
        CheckFits(generator, tokens.Length, "messages");
        return new GenerationRequest
        {
            PromptTokens = tokens,
            AddBos = generator.ChatFormat is LoomChatFormat, // a checkpoint's chat template writes its own bos_token
            MaxTokens = options?.MaxOutputTokens,
            Stop = [.. options?.StopSequences ?? [], .. generator.ChatFormat.StopSequences],
            Sampling = Sampling(options),
            Format = tools?.Format ?? ChatTools.ResponseFormat(options),
            TopLogprobs = TopLogprobs(options),
        };
    }

    /// <summary>The generation request for a raw prompt (no chat template): what /v1/completions asks.</summary>
    public static GenerationRequest Request(ITextGenerator generator, string prompt, ChatOptions? options)
    {
        if (generator is GenerationEngine engine) ChatLimits.CheckLength(prompt, "prompt", engine.Tokenizer, engine.ContextLength);
        CheckFits(generator, generator.CountTokens(prompt), "prompt");
        return new GenerationRequest
        {
            Prompt = prompt,
            MaxTokens = options?.MaxOutputTokens,
            Stop = options?.StopSequences is { } stop ? [.. stop] : null,
            Sampling = Sampling(options),
            Format = ChatTools.ResponseFormat(options),
            TopLogprobs = TopLogprobs(options),
        };
    }

    /// <summary>Streams a request's generation as chat updates; the last one carries the finish reason and the usage.</summary>
    public static IAsyncEnumerable<ChatResponseUpdate> StreamAsync(ITextGenerator generator, GenerationRequest request,
        CancellationToken cancellationToken = default) =>
        StreamAsync(generator, request, null, "ChatOptions.ResponseFormat", cancellationToken);

    /// <summary>
    /// Collects a stream into one response, as <see cref="ChatResponseExtensions.ToChatResponseAsync"/> does, with the
    /// updates' log-probabilities joined into one list under <see cref="LogprobsKey"/>.
    /// </summary>
    public static async Task<ChatResponse> CollectAsync(IAsyncEnumerable<ChatResponseUpdate> updates, CancellationToken cancellationToken = default)
    {
        var all = new List<ChatResponseUpdate>();
        List<TokenLogprob>? logprobs = null;
        await foreach (var update in updates.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (update.AdditionalProperties?.TryGetValue(LogprobsKey, out var value) == true && value is IEnumerable<TokenLogprob> tokens)
            {
                (logprobs ??= []).AddRange(tokens);
                update.AdditionalProperties.Remove(LogprobsKey);
            }
            all.Add(update);
        }
        var response = all.ToChatResponse();
        if (logprobs is not null) (response.AdditionalProperties ??= [])[LogprobsKey] = logprobs;
        return response;
    }

    /// <summary>
    /// The stream; with tools the answer is held back and read at the end into a function call or text. A generator's
    /// refusal of the format becomes a <see cref="ChatRequestException"/> naming <paramref name="formatField"/>.
    /// </summary>
    static async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(ITextGenerator generator, GenerationRequest request, ChatTools? tools,
        string formatField, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string responseId = Guid.NewGuid().ToString("N");
        var held = new System.Text.StringBuilder();
        List<TokenLogprob>? heldLogprobs = null;
        await using var stream = generator.GenerateAsync(request, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await stream.MoveNextAsync().ConfigureAwait(false)) break;
            }
            catch (ArgumentException e) when (e is not ChatRequestException && request.Format is not null)
            {
                throw new ChatRequestException(formatField, e.Message);
            }
            var update = stream.Current;
            if (tools is not null)
            {
                held.Append(update.Text);
                if (update.Logprobs is { } pending) (heldLogprobs ??= []).AddRange(pending);
                if (update.FinishReason is null) continue;
                update = update with { Text = "", Logprobs = heldLogprobs };
            }
            var chunk = new ChatResponseUpdate(ChatRole.Assistant, update.Text)
            {
                ModelId = generator.ModelName,
                ResponseId = responseId,
                FinishReason = Finish(update.FinishReason),
            };
            if (tools is not null)
            {
                var answer = tools.Parse(held.ToString());
                chunk.Contents.Add(answer);
                if (answer is FunctionCallContent) chunk.FinishReason = ChatFinishReason.ToolCalls;
            }
            if (update.Logprobs is { } logprobs) (chunk.AdditionalProperties ??= [])[LogprobsKey] = logprobs;
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
        LogitBias = LogitBias(options),
    };

    /// <summary>How many alternatives to report per token, or null for no log-probabilities.</summary>
    static int? TopLogprobs(ChatOptions? options)
    {
        var properties = options?.AdditionalProperties;
        if (properties is null) return null;
        int? top = properties.TryGetValue(TopLogprobsKey, out var topValue) && topValue is not null
            ? Number(topValue, TopLogprobsKey) is var n && n == Math.Floor(n) ? (int)n
                : throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{TopLogprobsKey}\"] must be an integer")
            : null;
        bool on = properties.TryGetValue(LogprobsKey, out var flag) && flag switch
        {
            bool b => b,
            JsonElement { ValueKind: JsonValueKind.True } => true,
            JsonElement { ValueKind: JsonValueKind.False } => false,
            null => false,
            _ => throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{LogprobsKey}\"] must be true or false"),
        };
        if (top is < 0 or > TokenLogprobs.MaxTop)
            throw new ChatRequestException("ChatOptions.AdditionalProperties",
                $"ChatOptions.AdditionalProperties[\"{TopLogprobsKey}\"] must be in [0, {TokenLogprobs.MaxTop}], got {top}");
        return on || top is not null ? top ?? 0 : null;
    }

    static IReadOnlyDictionary<int, float>? LogitBias(ChatOptions? options)
    {
        if (options?.AdditionalProperties is null || !options.AdditionalProperties.TryGetValue(LogitBiasKey, out var value) || value is null) return null;
        var biases = new Dictionary<int, float>();
        void Add(string key, object? bias)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{LogitBiasKey}\"]: '{key}' is not a token id");
            float number = (float)Number(bias, LogitBiasKey);
            if (!(number >= -100 && number <= 100))
                throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{LogitBiasKey}\"][\"{key}\"] must be in [-100, 100], got {number}");
            biases[id] = number;
        }
        switch (value)
        {
            case IReadOnlyDictionary<int, float> typed: foreach (var (id, bias) in typed) Add(id.ToString(System.Globalization.CultureInfo.InvariantCulture), bias); break;
            case IDictionary<string, object?> named: foreach (var (key, bias) in named) Add(key, bias); break;
            case JsonElement { ValueKind: JsonValueKind.Object } element: foreach (var property in element.EnumerateObject()) Add(property.Name, property.Value); break;
            default: throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{LogitBiasKey}\"] must map token ids to numbers");
        }
        return biases.Count == 0 ? null : biases;
    }

    static double Number(object? value, string key) => value switch
    {
        int i => i,
        long l => l,
        float f => f,
        double d => d,
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
        _ => throw new ChatRequestException("ChatOptions.AdditionalProperties", $"ChatOptions.AdditionalProperties[\"{key}\"] must be a number"),
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
