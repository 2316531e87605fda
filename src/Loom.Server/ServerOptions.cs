namespace Loom.Server;

/// <summary>How `loom serve` listens and what it accepts; null means the default.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind; loopback unless the user asks for more.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port; 0 picks a free one.</summary>
    public int Port { get; init; } = 8080;
    /// <summary>Bearer keys accepted; empty means no authentication.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];
    /// <summary>Largest request body accepted, in bytes (larger gets 413).</summary>
    public long MaxRequestBytes { get; init; } = 1 << 20;
    /// <summary>Largest max_tokens a request may ask for, and what a request that sets none gets.</summary>
    public int MaxTokensLimit { get; init; } = 4096;
    /// <summary>Most completions one request may ask for (n).</summary>
    public int MaxChoices { get; init; } = 8;
    /// <summary>Host header names answered besides the bound address ("name" for any port, "name:port" for one); see <see cref="RequestGuards"/>.</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>The one browser origin granted CORS access; none by default.</summary>
    public string? CorsOrigin { get; init; }
    /// <summary>Serve a non-loopback <see cref="Host"/> with no <see cref="ApiKeys"/> (refused otherwise).</summary>
    public bool AllowUnauthenticated { get; init; }
}
