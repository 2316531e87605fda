using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;

namespace Loom.Server;

/// <summary>
/// What keeps a web page from driving a local server through its visitor's browser. The page cannot choose the
/// <c>Host</c> header (it names the page's own site, even when DNS rebinding points that name at this server), and
/// cannot send a body declared <c>application/json</c> to another origin without a CORS preflight. So the server answers
/// only the names it is bound to, reads only JSON bodies, and grants no origin unless one is configured. A server on a
/// non-loopback address without keys must be asked for explicitly.
/// </summary>
public static class RequestGuards
{
    static readonly string[] LoopbackNames = ["localhost", "127.0.0.1", "::1"];

    /// <summary>Whether <paramref name="host"/> (a name or an address, IPv6 with or without brackets) is a loopback one.</summary>
    public static bool IsLoopback(string host)
    {
        string name = host.Trim('[', ']');
        return name.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(name, out var address) && IPAddress.IsLoopback(address));
    }

    /// <summary>
    /// Why the options may not be served, or null: a non-loopback <see cref="ServerOptions.Host"/> with no
    /// <see cref="ServerOptions.ApiKeys"/> lets anyone on the network use the model, so it needs
    /// <see cref="ServerOptions.AllowUnauthenticated"/>.
    /// </summary>
    public static string? BindingProblem(ServerOptions options) =>
        IsLoopback(options.Host) || options.ApiKeys.Count > 0 || options.AllowUnauthenticated ? null
            : $"ServerOptions.Host '{options.Host}' is not a loopback address and ServerOptions.ApiKeys is empty: anyone who can reach it could use the model; give a key, or set ServerOptions.AllowUnauthenticated";

    /// <summary>
    /// Checks a request before anything else runs: its Host, a CORS preflight (answered here, so true is returned and
    /// nothing else runs), its body's media type; and grants <see cref="ServerOptions.CorsOrigin"/> on the response when the
    /// request comes from it. A refusal is an <see cref="ApiException"/> (421 for a foreign host, 415 for a non-JSON body).
    /// </summary>
    public static bool Answered(HttpContext context, ServerOptions options)
    {
        var request = context.Request;
        if (!HostAllowed(context, options))
            throw new ApiException(421, $"this server does not answer for host '{request.Host.Value}' (allowed: the address it is bound to, and ServerOptions.AllowedHosts)",
                code: "invalid_host");
        string origin = request.Headers.Origin.ToString();
        bool granted = options.CorsOrigin is { } allowed && origin.Length > 0 && string.Equals(origin, allowed.TrimEnd('/'), StringComparison.OrdinalIgnoreCase);
        if (granted)
        {
            context.Response.Headers.AccessControlAllowOrigin = origin;
            context.Response.Headers.Vary = "Origin";
        }
        if (HttpMethods.IsOptions(request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            context.Response.Headers.Allow = "GET, POST, OPTIONS";
            if (granted)
            {
                context.Response.Headers.AccessControlAllowMethods = "GET, POST, OPTIONS";
                context.Response.Headers.AccessControlAllowHeaders = "Authorization, Content-Type";
                context.Response.Headers.AccessControlMaxAge = "600";
            }
            return true;
        }
        if ((HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method))
            && request.ContentLength != 0 && !IsJson(request.ContentType))
            throw new ApiException(415, $"the body must be sent as 'Content-Type: application/json', not '{request.ContentType ?? "(none)"}'", code: "unsupported_media_type");
        return false;
    }

    static readonly HashSet<string> JsonTypes = new(StringComparer.OrdinalIgnoreCase) { "application/json", "application/x-ndjson", "application/ndjson" };

    /// <summary>JSON, or NDJSON (for posted log lines): media types a cross-site form or a simple request cannot send.</summary>
    static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) && parsed.MediaType is { } type && JsonTypes.Contains(type);

    /// <summary>
    /// The Host header names this server: a loopback name when the connection came in on loopback, the bound host, or
    /// the literal address the connection came in on, each with the port the connection came in on (or none on port 80);
    /// or a name in <see cref="ServerOptions.AllowedHosts"/> (with its port, if it gives one).
    /// </summary>
    static bool HostAllowed(HttpContext context, ServerOptions options)
    {
        var host = context.Request.Host;
        if (!host.HasValue) return false;
        string name = host.Host.Trim('[', ']').TrimEnd('.');
        int? port = host.Port;
        foreach (string allowed in options.AllowedHosts)
        {
            var entry = HostString.FromUriComponent(allowed);
            if (string.Equals(entry.Host.Trim('[', ']'), name, StringComparison.OrdinalIgnoreCase) && (entry.Port is null || entry.Port == port))
                return true;
        }
        int localPort = context.Connection.LocalPort;
        if (port is int p ? p != localPort : localPort != 80) return false;
        var local = context.Connection.LocalIpAddress;
        if (local is not null && IPAddress.IsLoopback(local) && LoopbackNames.Contains(name, StringComparer.OrdinalIgnoreCase)) return true;
        if (string.Equals(name, options.Host.Trim('[', ']'), StringComparison.OrdinalIgnoreCase) && !IsWildcard(options.Host)) return true;
        return local is not null && IPAddress.TryParse(name, out var address) && Same(address, local);
    }

    static bool IsWildcard(string host) => host.Trim('[', ']') is "0.0.0.0" or "::" or "*" or "+";

    static bool Same(IPAddress a, IPAddress b) =>
        (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Equals(b.IsIPv4MappedToIPv6 ? b.MapToIPv4() : b);
}
