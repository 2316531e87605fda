using System.Text.Json;
using Loom.Models;

namespace Loom.Serving;

/// <summary>Why a sequence stopped (the OpenAI finish_reason values).</summary>
public enum FinishReason
{
    /// <summary>End-of-sequence token or a stop string.</summary>
    Stop,
    /// <summary>max_tokens reached, or the context is full.</summary>
    Length,
}

/// <summary>One completion request, already parsed: a prompt, how to sample, and when to stop.</summary>
public sealed record GenerationRequest
{
    /// <summary>The prompt as plain text (special-token spellings in it stay text).</summary>
    public string Prompt { get; init; } = "";
    /// <summary>The prompt as token ids (chat requests arrive here encoded by the chat template); used instead of <see cref="Prompt"/> when set.</summary>
    public int[]? PromptTokens { get; init; }
    /// <summary>Tokens to generate at most; null means up to the end of the context.</summary>
    public int? MaxTokens { get; init; }
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end the completion; they are not part of the output.</summary>
    public IReadOnlyList<string>? Stop { get; init; }
    /// <summary>Whether to prepend the tokenizer's beginning-of-sequence token (when it has one).</summary>
    public bool AddBos { get; init; } = true;
    /// <summary>What the completion must match (structured output); null leaves it free.</summary>
    public OutputFormat? Format { get; init; }
    /// <summary>
    /// Report each generated token's log-probability and this many most likely alternatives (0..20); null reports none.
    /// The log-probabilities are the log-softmax of the logits the sampler draws from: after penalties, logit bias and
    /// the format mask, before temperature, top-k and top-p.
    /// </summary>
    public int? TopLogprobs { get; init; }
}

/// <summary>A token with its log-probability: its text, its bytes (a character split over tokens has part of its bytes each).</summary>
public sealed record TokenAlternative(int Id, string Token, byte[] Bytes, float Logprob);

/// <summary>One generated token's log-probability and the most likely alternatives at its position, most likely first.</summary>
public sealed record TokenLogprob(TokenAlternative Chosen, IReadOnlyList<TokenAlternative> Top);

/// <summary>
/// A shape the generated text must have. Exactly one of the fields is set; the generator masks every
/// token that would leave the shape, so the output always parses.
/// </summary>
public sealed record OutputFormat
{
    /// <summary>A JSON Schema the output validates against (<c>{"type":"object"}</c> is OpenAI's json_object mode).</summary>
    public JsonElement? JsonSchema { get; init; }
    /// <summary>A regular expression the whole output matches (anchored at both ends).</summary>
    public string? Pattern { get; init; }

    /// <summary>
    /// A matcher at the start of this format over the tokenizer's vocabulary (compiled grammars are
    /// cached per format and tokenizer). Throws <see cref="Loom.Text.Structured.SchemaNotSupportedException"/>
    /// for a schema or pattern outside the supported subset, and an <see cref="ArgumentException"/> when
    /// the vocabulary cannot begin the output.
    /// </summary>
    public Loom.Text.Structured.TokenMatcher Start(Loom.Text.ITokenizer tokenizer)
    {
        if ((JsonSchema is null) == (Pattern is null)) throw new ArgumentException("OutputFormat needs exactly one of JsonSchema and Pattern");
        var grammar = JsonSchema is JsonElement schema
            ? Loom.Text.Structured.TokenGrammar.ForJsonSchema(schema, tokenizer)
            : Loom.Text.Structured.TokenGrammar.ForRegex(Pattern!, tokenizer);
        var matcher = grammar.Start();
        Span<float> probe = new float[tokenizer.VocabSize];
        if (!matcher.ApplyMask(probe))
            throw new ArgumentException("OutputFormat: no token of the model's vocabulary can begin output of this format");
        return matcher;
    }
}

/// <summary>
/// A piece of streamed output; the last update carries <see cref="FinishReason"/>. With <see cref="GenerationRequest.TopLogprobs"/>
/// set, <see cref="Logprobs"/> holds the tokens generated since the previous update (their text may still be held back).
/// </summary>
public sealed record GenerationUpdate(string Text, int PromptTokens, int CompletionTokens, FinishReason? FinishReason = null,
    IReadOnlyList<TokenLogprob>? Logprobs = null);

/// <summary>Anything that turns prompts into streamed text: Loom's own engine, llama.cpp.</summary>
public interface ITextGenerator
{
    /// <summary>The model's name as clients see it (OpenAI "model").</summary>
    string ModelName { get; }

    int ContextLength { get; }

    /// <summary>Sequences being generated right now (for metrics).</summary>
    int ActiveSequences { get; }

    int CountTokens(string text);

    /// <summary>A conversation as prompt tokens, in the model's chat format, ending with an open assistant turn.</summary>
    int[] EncodeChat(IReadOnlyList<Loom.Text.ChatTurn> turns);

    /// <summary>The model's chat format: chat requests stop at its <see cref="Loom.Text.IChatFormat.StopSequences"/>. Loom's own unless the model carries a template.</summary>
    Loom.Text.IChatFormat ChatFormat => Loom.Text.LoomChatFormat.Instance;

    /// <summary>Streams the completion of one request. Throws <see cref="ArgumentException"/> with a one-line message for a bad request (a prompt longer than the context).</summary>
    IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default);
}
