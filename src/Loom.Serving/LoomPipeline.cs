using Loom.Retrieval;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>What the chat pipeline is composed of; null means the layer is left out.</summary>
public sealed record LoomPipelineOptions
{
    /// <summary>Counts requests, tokens and time (outermost layer, so it sees refused requests too).</summary>
    public ChatMetrics? Metrics { get; init; }
    /// <summary>Validates requests and caps their output.</summary>
    public ChatLimits? Limits { get; init; }
    /// <summary>Grounds every answer in this retriever's sources.</summary>
    public Retriever? Retriever { get; init; }
    /// <summary>How the retrieval layer searches and budgets the prompt (used with <see cref="Retriever"/>).</summary>
    public RetrievalChatOptions? Retrieval { get; init; }
    /// <summary>Records every answered request as a traffic item that people can give feedback on.</summary>
    public Feedback.TrafficFeedback? Feedback { get; init; }
    /// <summary>The model version recorded with each response (used with <see cref="Feedback"/>); null records the model's name.</summary>
    public string? ModelVersion { get; init; }
}

/// <summary>
/// Loom's chat pipeline, composed the Microsoft.Extensions.AI way: <c>generator.AsIChatClient().AsBuilder()
/// .UseMetrics(m).UseLimits(l).UseRetrieval(r).Build()</c>. The server, <c>loom ask</c> and any M.E.AI app build it alike.
/// </summary>
public static class LoomPipeline
{
    /// <summary>The pipeline over a generator: metrics, then limits, then feedback capture, then retrieval, then the model.</summary>
    public static IChatClient Build(ITextGenerator generator, LoomPipelineOptions? options = null)
    {
        options ??= new LoomPipelineOptions();
        var builder = generator.AsIChatClient().AsBuilder();
        if (options.Metrics is not null) builder.UseMetrics(options.Metrics);
        if (options.Limits is not null) builder.UseLimits(options.Limits);
        // Outside retrieval, so the prompt recorded is the messages as given and the text is the grounded answer.
        if (options.Feedback is not null) builder.UseFeedbackCapture(options.Feedback, options.ModelVersion);
        if (options.Retriever is not null) builder.UseRetrieval(options.Retriever, options.Retrieval);
        return builder.Build();
    }

    /// <summary>The generator as an <see cref="IChatClient"/> (Loom's chat template, streaming, usage).</summary>
    public static IChatClient AsIChatClient(this ITextGenerator generator) => new LoomChatClient(generator);

    /// <summary>The model's batching engine as an <see cref="IChatClient"/>.</summary>
    public static IChatClient AsIChatClient(this LoomModel model) => new LoomChatClient(model.Engine);

    /// <summary>The model's own hidden states as an embedding generator (mean-pooled, L2-normalised).</summary>
    public static IEmbeddingGenerator<string, Embedding<float>> AsIEmbeddingGenerator(this LoomModel model) =>
        new LoomEmbeddingGenerator(model.Transformer, model.Tokenizer, model.Name);

    /// <summary>Adds <see cref="RetrievalChatClient"/>: answers grounded in the retriever's sources.</summary>
    public static ChatClientBuilder UseRetrieval(this ChatClientBuilder builder, Retriever retriever, RetrievalChatOptions? options = null) =>
        builder.Use(inner => new RetrievalChatClient(inner, retriever, options));

    /// <summary>Adds <see cref="LimitsChatClient"/>: request validation and the output cap.</summary>
    public static ChatClientBuilder UseLimits(this ChatClientBuilder builder, ChatLimits limits) =>
        builder.Use(inner => new LimitsChatClient(inner, limits));

    /// <summary>Adds <see cref="Feedback.FeedbackCaptureChatClient"/>: every answered request recorded for feedback.</summary>
    public static ChatClientBuilder UseFeedbackCapture(this ChatClientBuilder builder, Feedback.TrafficFeedback feedback, string? modelVersion = null) =>
        builder.Use(inner => new Feedback.FeedbackCaptureChatClient(inner, feedback, modelVersion));

    /// <summary>Adds <see cref="MetricsChatClient"/>: requests, tokens and latency counted into <paramref name="metrics"/>.</summary>
    public static ChatClientBuilder UseMetrics(this ChatClientBuilder builder, ChatMetrics metrics) =>
        builder.Use(inner => new MetricsChatClient(inner, metrics));

    /// <summary>The sources a grounded response was given and cites; null when no retrieval layer answered.</summary>
    public static GroundingSources? GetSources(this ChatResponse response) =>
        response.AdditionalProperties?.TryGetValue(GroundingSources.Key, out var value) == true ? value as GroundingSources : null;

    /// <summary>The sources on a streamed update (the last one of a grounded answer carries them); null on the others.</summary>
    public static GroundingSources? GetSources(this ChatResponseUpdate update) =>
        update.AdditionalProperties?.TryGetValue(GroundingSources.Key, out var value) == true ? value as GroundingSources : null;
}
