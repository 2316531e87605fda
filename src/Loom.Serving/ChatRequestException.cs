namespace Loom.Serving;

/// <summary>
/// A chat or completion request that cannot be served as asked: a one-line message, the field it is
/// about (<c>ChatOptions.MaxOutputTokens</c>, <c>messages</c>, <c>prompt</c>) and an optional machine-readable code.
/// </summary>
public sealed class ChatRequestException(string field, string message, string? code = null) : ArgumentException(message)
{
    /// <summary>The request field at fault.</summary>
    public string Field { get; } = field;
    /// <summary>A stable code for clients (<c>context_length_exceeded</c>), or null.</summary>
    public string? Code { get; } = code;

    public const string ContextLengthExceeded = "context_length_exceeded";
}
