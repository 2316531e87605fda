namespace Loom.Server.Studio;

/// <summary>How the studio listens when it runs alone (<see cref="StudioApp.Build"/>); null means the default.</summary>
public sealed record StudioOptions
{
    /// <summary>Address to bind; loopback unless the user asks for more.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port; 0 picks a free one.</summary>
    public int Port { get; init; } = 8090;
    /// <summary>Host header names answered besides the bound address ("name" or "name:port"), as <see cref="ServerOptions.AllowedHosts"/>.</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>How long a login lasts without use.</summary>
    public TimeSpan SessionLifetime { get; init; } = TimeSpan.FromHours(8);
}
