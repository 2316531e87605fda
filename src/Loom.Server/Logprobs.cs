using System.Text.Json.Nodes;
using Loom.Serving;
using Microsoft.Extensions.AI;

namespace Loom.Server;

/// <summary>Token log-probabilities in OpenAI's two shapes: chat (<c>logprobs.content[]</c>) and legacy completions.</summary>
static class Logprobs
{
    /// <summary>What OpenAI reports for a token that cannot be drawn (JSON has no -infinity).</summary>
    const float Impossible = -9999f;

    /// <summary>The tokens' log-probabilities a response or update carries, or null.</summary>
    public static IReadOnlyList<TokenLogprob>? Of(AdditionalPropertiesDictionary? properties) =>
        properties?.TryGetValue(LoomChatClient.LogprobsKey, out var value) == true ? value as IReadOnlyList<TokenLogprob> : null;

    /// <summary>
    /// Chat: <c>{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}</c>; completions: <c>{tokens, token_logprobs,
    /// top_logprobs, text_offset}</c>, offsets counted from <paramref name="textOffset"/>. Null when none were asked for.
    /// </summary>
    public static JsonNode? Json(IReadOnlyList<TokenLogprob>? tokens, bool chat, int textOffset)
    {
        if (tokens is null) return null;
        if (chat)
            return new JsonObject
            {
                ["content"] = new JsonArray(tokens.Select(t =>
                {
                    var entry = Entry(t.Chosen);
                    entry["top_logprobs"] = new JsonArray(t.Top.Select(a => (JsonNode)Entry(a)).ToArray());
                    return (JsonNode)entry;
                }).ToArray()),
                ["refusal"] = null,
            };
        var offsets = new JsonArray();
        foreach (var t in tokens)
        {
            offsets.Add(textOffset);
            textOffset += t.Chosen.Token.Length;
        }
        return new JsonObject
        {
            ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t.Chosen.Token).ToArray()),
            ["token_logprobs"] = new JsonArray(tokens.Select(t => (JsonNode)Finite(t.Chosen.Logprob)).ToArray()),
            ["top_logprobs"] = new JsonArray(tokens.Select(t =>
            {
                var top = new JsonObject();
                // alternatives that share a spelling (parts of one character) keep the likeliest: keys are unique
                foreach (var a in t.Top) if (!top.ContainsKey(a.Token)) top[a.Token] = Finite(a.Logprob);
                return (JsonNode)top;
            }).ToArray()),
            ["text_offset"] = offsets,
        };
    }

    static JsonObject Entry(TokenAlternative token) => new()
    {
        ["token"] = token.Token,
        ["logprob"] = Finite(token.Logprob),
        ["bytes"] = new JsonArray(token.Bytes.Select(b => (JsonNode)(int)b).ToArray()),
    };

    static float Finite(float logprob) => float.IsFinite(logprob) ? logprob : Impossible;
}
