using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Loom.IO;
using Microsoft.Extensions.AI;

namespace Loom.Evaluation;

/// <summary>
/// A chat client that answers a request it has seen before from a folder of saved responses, so re-running an
/// evaluation (or re-rendering its report) costs no generation. The key is a SHA-256 of the model version, the
/// messages (role and text) and the options that change an answer (temperature, top-p, top-k, max tokens, seed,
/// stop sequences, response format); each response is one JSON file named by its key, written atomically.
/// Streaming is passed through uncached.
/// </summary>
public sealed class ResponseCacheChatClient(IChatClient inner, string folder, ModelVersion version) : DelegatingChatClient(inner)
{
    /// <summary>Requests answered from the folder since this client was made.</summary>
    public int Hits { get; private set; }

    /// <summary>Requests passed to the model (and then saved).</summary>
    public int Misses { get; private set; }

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages as IReadOnlyList<ChatMessage> ?? [.. messages];
        string path = Path.Combine(folder, Key(version, list, options) + ".json");
        if (File.Exists(path))
        {
            var saved = JsonSerializer.Deserialize<SavedResponse>(await File.ReadAllTextAsync(path, cancellationToken));
            if (saved?.Text is string text)
            {
                Hits++;
                return new ChatResponse(new ChatMessage(ChatRole.Assistant, text)) { FinishReason = saved.FinishReason is string reason ? new ChatFinishReason(reason) : null };
            }
        }
        var response = await base.GetResponseAsync(list, options, cancellationToken);
        Misses++;
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(new SavedResponse(response.Text, response.FinishReason?.Value)));
        return response;
    }

    /// <summary>The cache key of a request: hex SHA-256 of the version, options and messages, each field length-prefixed.</summary>
    public static string Key(ModelVersion version, IReadOnlyList<ChatMessage> messages, ChatOptions? options)
    {
        var text = new StringBuilder();
        void Field(object? value)
        {
            string s = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "\u0000";
            text.Append(s.Length).Append(':').Append(s);
        }
        Field(version.Hash);
        Field(options?.Temperature);
        Field(options?.TopP);
        Field(options?.TopK);
        Field(options?.MaxOutputTokens);
        Field(options?.Seed);
        Field(options?.StopSequences is null ? null : string.Join('\u0001', options.StopSequences));
        Field(options?.ResponseFormat switch { null => null, ChatResponseFormatJson json => $"json {json.Schema}", var format => format.GetType().Name });
        foreach (var message in messages)
        {
            Field(message.Role.Value);
            Field(message.Text);
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    sealed record SavedResponse(string Text, string? FinishReason);
}
