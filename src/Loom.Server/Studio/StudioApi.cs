using System.Security.Claims;
using System.Text.Json;
using Loom.Serving.Feedback;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Loom.Server.Studio;

/// <summary>
/// The studio's JSON API. An annotator gets items in a blind order (<see cref="BlindOrder"/>: responses without their model
/// versions) and sees only their own judgements; the versions are revealed in the answer to a submission.
/// </summary>
internal sealed partial class StudioApi(IFeedbackStore store)
{
    public sealed record LoginRequest(string? Name, string? Password);

    /// <summary>A verdict on the responses as shown: exactly the field the task's kind needs.</summary>
    public sealed record SubmitRequest
    {
        public PairwiseChoice? Choice { get; init; }
        public int[]? Ranking { get; init; }
        public int? Rating { get; init; }
        public string? Correction { get; init; }
        public bool? ThumbsUp { get; init; }
        public string? Comment { get; init; }
    }

    /// <summary>Hashed once, so an unknown name costs as much time as a wrong password.</summary>
    static readonly Lazy<string> Decoy = new(() => PasswordHasher.Hash(Guid.NewGuid().ToString()));

    public static Annotator Caller(ClaimsPrincipal user) =>
        new(user.Identity?.Name ?? "", Enum.Parse<AnnotatorRole>(user.FindFirstValue(ClaimTypes.Role) ?? nameof(AnnotatorRole.Annotator)));

    /// <summary>The claim that ties a session to the password it was opened with: a new password ends older sessions.</summary>
    public const string PasswordClaim = "loom_password_stamp";

    /// <summary>A short digest of the stored hash (never the hash itself, which stays out of the cookie).</summary>
    public static string PasswordStamp(string passwordHash) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(passwordHash)))[..16];

    public static ClaimsPrincipal Principal(Annotator annotator, string passwordHash) => new(new ClaimsIdentity(
        [new Claim(ClaimTypes.NameIdentifier, annotator.Name), new Claim(ClaimTypes.Name, annotator.Name), new Claim(ClaimTypes.Role, annotator.Role.ToString()), new Claim(PasswordClaim, PasswordStamp(passwordHash))],
        StudioApp.Scheme));

    static object User(Annotator annotator) => new { name = annotator.Name, role = annotator.Role.ToString() };

    static string Token(HttpContext context) => context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context).RequestToken!;

    public async Task<IResult> Session(HttpContext context)
    {
        var result = await context.AuthenticateAsync(StudioApp.Scheme);
        if (result.Succeeded) context.User = result.Principal;
        return Results.Json(new { user = result.Succeeded ? User(Caller(result.Principal)) : null, csrf = Token(context) });
    }

    public async Task<IResult> Login(HttpContext context)
    {
        var request = await Read<LoginRequest>(context);
        if (string.IsNullOrEmpty(request.Name)) return StudioApp.Error(400, "name is required");
        if (string.IsNullOrEmpty(request.Password)) return StudioApp.Error(400, "password is required");
        var found = await store.GetAnnotatorAsync(request.Name, context.RequestAborted);
        bool valid = PasswordHasher.Verify(request.Password, found?.PasswordHash ?? Decoy.Value);
        if (found is not { } known || !valid) return StudioApp.Error(401, "unknown name or wrong password");
        var principal = Principal(known.Annotator, known.PasswordHash);
        await context.SignInAsync(StudioApp.Scheme, principal);
        // The anti-forgery token is bound to the user: the signed-in page needs a new one.
        context.User = principal;
        return Results.Json(new { user = User(known.Annotator), csrf = Token(context) });
    }

    public async Task<IResult> Logout(HttpContext context)
    {
        await context.SignOutAsync(StudioApp.Scheme);
        return Results.Json(new { user = (object?)null });
    }

    /// <summary>Every task with the caller's progress; owners also see each annotator's.</summary>
    public async Task<IResult> Tasks(HttpContext context)
    {
        var caller = Caller(context.User);
        var ct = context.RequestAborted;
        var annotators = caller.Role == AnnotatorRole.Owner ? await store.ListAnnotatorsAsync(ct) : [caller];
        var rows = new List<object>();
        foreach (var task in await store.ListTasksAsync(ct))
        {
            var items = await store.ListItemsAsync(task.Id, ct);
            var judgements = await store.ListJudgementsAsync(new JudgementQuery { TaskId = task.Id }, ct);
            var perItem = judgements.GroupBy(j => j.ItemId).ToDictionary(g => g.Key, g => g.Select(j => j.Annotator).ToHashSet());
            object Progress(string name) => new
            {
                annotator = name,
                done = judgements.Count(j => j.Annotator == name),
                queue = items.Count(i => perItem.GetValueOrDefault(i.Id) is not { } by || (!by.Contains(name) && by.Count < task.Overlap)),
            };
            rows.Add(new
            {
                id = task.Id, name = task.Name, kind = task.Kind.ToString(), guidelines = task.Guidelines, rubric = task.Rubric,
                overlap = task.Overlap, items = items.Count, mine = Progress(caller.Name),
                annotators = annotators.Select(a => Progress(a.Name)).ToList(),
            });
        }
        return Results.Json(rows);
    }

    /// <summary>The caller's next item, its responses in the caller's blind order and without model versions; null when the queue is empty.</summary>
    public async Task<IResult> Next(HttpContext context, string taskId)
    {
        var caller = Caller(context.User);
        var task = await store.GetTaskAsync(taskId, context.RequestAborted);
        if (task is null) return StudioApp.Error(404, $"no task '{taskId}'");
        var item = await store.NextItemAsync(task.Id, caller.Name, context.RequestAborted);
        if (item is null) return Results.Json(new { item = (object?)null });
        var shown = BlindOrder.ShownResponses(item, task.Kind, caller.Name);
        return Results.Json(new
        {
            item = new
            {
                id = item.Id,
                source = item.Source,
                prompt = item.Prompt.Select(m => new { role = m.Role, content = m.Content }),
                responses = shown.Select(r => new { text = r.Text }),
            },
        });
    }

    /// <summary>Stores the caller's judgement of what they were shown, and reveals the model versions.</summary>
    public async Task<IResult> Submit(HttpContext context, string taskId, string itemId)
    {
        var caller = Caller(context.User);
        var ct = context.RequestAborted;
        var task = await store.GetTaskAsync(taskId, ct);
        if (task is null) return StudioApp.Error(404, $"no task '{taskId}'");
        var item = await store.GetItemAsync(itemId, ct);
        if (item is null || item.TaskId != task.Id) return StudioApp.Error(404, $"no item '{itemId}' in task '{taskId}'");
        var request = await Read<SubmitRequest>(context);
        var earlier = await store.ListJudgementsAsync(new JudgementQuery { ItemId = item.Id }, ct);
        if (earlier.Any(j => j.Annotator == caller.Name)) return StudioApp.Error(409, $"you have already judged item '{item.Id}'");
        if (earlier.Count >= task.Overlap) return StudioApp.Error(409, $"item '{item.Id}' already has the {task.Overlap} judgements its task asks for");
        var shown = BlindOrder.ShownResponses(item, task.Kind, caller.Name);
        var judgement = new Judgement
        {
            ItemId = item.Id, TaskId = task.Id, Annotator = caller.Name, Kind = task.Kind, At = DateTimeOffset.UtcNow,
            Prompt = item.Prompt, Shown = shown,
            Choice = request.Choice, Ranking = request.Ranking, Rating = request.Rating, Correction = request.Correction,
            ThumbsUp = request.ThumbsUp, Comment = string.IsNullOrWhiteSpace(request.Comment) ? null : request.Comment,
        };
        long id;
        try { id = await store.SubmitAsync(judgement, ct); }
        catch (ArgumentException e) { return StudioApp.Error(400, e.Message); }
        return Results.Json(new { id, shown = shown.Select(r => new { text = r.Text, modelVersion = r.ModelVersion }) });
    }

    /// <summary>The caller's own judgements of the task (never anyone else's).</summary>
    public async Task<IResult> Mine(HttpContext context, string taskId) =>
        Results.Json(await store.ListJudgementsAsync(new JudgementQuery { TaskId = taskId, Annotator = Caller(context.User).Name }, context.RequestAborted), StudioApp.Json);

    public async Task<IResult> AllJudgements(HttpContext context, string taskId) =>
        Results.Json(await store.ListJudgementsAsync(new JudgementQuery { TaskId = taskId }, context.RequestAborted), StudioApp.Json);

    static async Task<T> Read<T>(HttpContext context)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, StudioApp.Json, context.RequestAborted)
                ?? throw new StudioRequestException("the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new StudioRequestException($"the body is not valid JSON for this request{(e.Path is { Length: > 1 } path ? $" at {path}" : "")}: {e.Message}");
        }
    }
}

/// <summary>A request the studio refuses with 400 and its one-line message.</summary>
internal sealed class StudioRequestException(string message) : Exception(message.ReplaceLineEndings(" "));
