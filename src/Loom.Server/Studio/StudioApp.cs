using System.Security.Claims;
using System.Text.Json;
using Loom.Serving.Feedback;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Loom.Server.Studio;

/// <summary>
/// The feedback studio: one page at /studio (HTML, one script, one stylesheet, all embedded) over a JSON API at
/// /studio/api. People log in with a name and password (cookie session, HttpOnly and SameSite=Strict); every POST also
/// carries an anti-forgery token in the <see cref="CsrfHeader"/> header. A POST without a session gets 401, one with a
/// missing or forged token 400, and an annotator asking for an owner's view (agreement, leaderboard, export, everyone's
/// judgements) 403. Runs alone (<see cref="Build"/>, <c>loom studio</c>) or inside <c>loom serve</c> (<see cref="AddStudio"/>
/// and <see cref="MapStudio"/>).
/// </summary>
public static class StudioApp
{
    public const string Path = "/studio";
    public const string CsrfHeader = "X-CSRF-TOKEN";
    public const string SessionCookie = "loom_studio";
    internal const string Scheme = "LoomStudio";

    /// <summary>The studio alone, on its own port: no model needed.</summary>
    public static WebApplication Build(IFeedbackStore store, StudioOptions? options = null, Action<ILoggingBuilder>? logging = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        options ??= new StudioOptions();
        var guards = new ServerOptions { Host = options.Host, Port = options.Port, AllowedHosts = options.AllowedHosts };
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"StudioOptions.Port must be 0..65535, got {options.Port}", nameof(options));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        logging?.Invoke(builder.Logging);
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.Services.AddStudio(options);
        var app = builder.Build();
        // The same Host and media-type checks as the model server: a page elsewhere cannot reach the studio through DNS rebinding.
        app.Use(async (context, next) =>
        {
            try
            {
                if (RequestGuards.Answered(context, guards)) return;
                await next(context);
            }
            catch (ApiException e) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = e.Status;
                await context.Response.WriteAsJsonAsync(new { error = e.Message }, context.RequestAborted);
            }
        });
        app.MapStudio(store);
        app.MapFallback(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return context.Response.WriteAsJsonAsync(new { error = $"no route for {context.Request.Method} {context.Request.Path} (the studio is at {Path})" });
        });
        return app;
    }

    /// <summary>The studio's services: cookie authentication and anti-forgery.</summary>
    public static IServiceCollection AddStudio(this IServiceCollection services, StudioOptions? options = null)
    {
        options ??= new StudioOptions();
        if (options.SessionLifetime <= TimeSpan.Zero)
            throw new ArgumentException($"StudioOptions.SessionLifetime must be positive, got {options.SessionLifetime}", nameof(options));
        services.AddAuthentication(Scheme).AddCookie(Scheme, cookie =>
        {
            cookie.Cookie.Name = SessionCookie;
            cookie.Cookie.HttpOnly = true;
            cookie.Cookie.SameSite = SameSiteMode.Strict;
            cookie.Cookie.Path = Path;
            cookie.ExpireTimeSpan = options.SessionLifetime;
            cookie.SlidingExpiration = true;
            // An API answers with a status, never a redirect to a login page.
            cookie.Events.OnRedirectToLogin = context => { context.Response.StatusCode = StatusCodes.Status401Unauthorized; return Task.CompletedTask; };
            cookie.Events.OnRedirectToAccessDenied = context => { context.Response.StatusCode = StatusCodes.Status403Forbidden; return Task.CompletedTask; };
        });
        services.AddAntiforgery(antiforgery =>
        {
            antiforgery.HeaderName = CsrfHeader;
            antiforgery.Cookie.Name = "loom_studio_csrf";
            antiforgery.Cookie.HttpOnly = true;
            antiforgery.Cookie.SameSite = SameSiteMode.Strict;
            antiforgery.Cookie.Path = Path;
            antiforgery.SuppressXFrameOptionsHeader = true;
        });
        return services;
    }

    /// <summary>Maps the page, its assets and its API under <see cref="Path"/> (the services of <see cref="AddStudio"/> must be registered).</summary>
    public static WebApplication MapStudio(this WebApplication app, IFeedbackStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        app.Use(async (context, next) =>
        {
            if (context.Request.Path.StartsWithSegments(Path))
            {
                var headers = context.Response.Headers;
                headers.ContentSecurityPolicy = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
                headers.XContentTypeOptions = "nosniff";
                headers.XFrameOptions = "DENY";
                headers["Referrer-Policy"] = "no-referrer";
                headers.CacheControl = "no-store";
            }
            await next(context);
        });
        StudioAssets.Map(app);
        var api = new StudioApi(store);
        var open = app.MapGroup(Path + "/api").AddEndpointFilter(Refusals);
        open.MapGet("/session", (Delegate)api.Session);
        open.MapPost("/login", (Delegate)api.Login).AddEndpointFilter(RequireToken);
        var signedIn = app.MapGroup(Path + "/api").AddEndpointFilter(Refusals).AddEndpointFilter((invocation, next) => RequireSession(store, invocation, next)).AddEndpointFilter(RequireToken);
        signedIn.MapPost("/logout", (Delegate)api.Logout);
        signedIn.MapGet("/tasks", (Delegate)api.Tasks);
        signedIn.MapGet("/tasks/{taskId}/next", api.Next);
        signedIn.MapPost("/tasks/{taskId}/items/{itemId}", api.Submit);
        signedIn.MapGet("/tasks/{taskId}/mine", api.Mine);
        var owner = signedIn.MapGroup("").AddEndpointFilter(RequireOwner);
        owner.MapGet("/tasks/{taskId}/judgements", api.AllJudgements);
        owner.MapGet("/tasks/{taskId}/agreement", api.Agreement);
        owner.MapGet("/tasks/{taskId}/export", api.Export);
        owner.MapGet("/leaderboard", (Delegate)api.Leaderboard);
        return app;
    }

    /// <summary>A body the API cannot read is the caller's mistake: 400 with its one-line message.</summary>
    static async ValueTask<object?> Refusals(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        try { return await next(invocation); }
        catch (StudioRequestException e) { return Error(StatusCodes.Status400BadRequest, e.Message); }
    }

    /// <summary>
    /// A valid session cookie, whose person is still in the store: the role comes from the store on every request, so
    /// a change of role (or a new password) takes effect at once rather than when the cookie expires.
    /// </summary>
    static async ValueTask<object?> RequireSession(IFeedbackStore store, EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var result = await context.AuthenticateAsync(Scheme);
        if (!result.Succeeded) return Error(StatusCodes.Status401Unauthorized, "log in first (no studio session)");
        var session = StudioApi.Caller(result.Principal);
        var known = await store.GetAnnotatorAsync(session.Name, context.RequestAborted);
        if (known is not { } found || result.Principal.FindFirstValue(StudioApi.PasswordClaim) != StudioApi.PasswordStamp(found.PasswordHash))
            return Error(StatusCodes.Status401Unauthorized, "log in again (the studio session is no longer valid)");
        context.User = StudioApi.Principal(found.Annotator, found.PasswordHash);
        return await next(invocation);
    }

    /// <summary>Every POST carries the anti-forgery token of its session in <see cref="CsrfHeader"/>.</summary>
    static async ValueTask<object?> RequireToken(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        if (HttpMethods.IsPost(context.Request.Method))
        {
            var antiforgery = context.RequestServices.GetRequiredService<IAntiforgery>();
            if (!await antiforgery.IsRequestValidAsync(context))
                return Error(StatusCodes.Status400BadRequest, $"missing or invalid anti-forgery token (send the session's token in the {CsrfHeader} header)");
        }
        return await next(invocation);
    }

    static async ValueTask<object?> RequireOwner(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next) =>
        StudioApi.Caller(invocation.HttpContext.User).Role == AnnotatorRole.Owner ? await next(invocation)
            : Error(StatusCodes.Status403Forbidden, "only owners see agreement, the leaderboard, exports and everyone's judgements");

    internal static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };
}
