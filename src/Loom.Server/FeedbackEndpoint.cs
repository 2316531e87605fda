using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Serving.Feedback;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Loom.Server;

/// <summary>
/// <c>POST /v1/feedback</c>: feedback on a response the server gave, by its id (the chat completion's <c>id</c>; choice i
/// of a request with n &gt; 1 is <c>ID-i</c>). Body: <c>{"response_id": "chatcmpl-…", "thumbs": "up"|"down"}</c>, or
/// <c>"rating": 1..5</c>, or <c>"correction": "text"</c> (exactly one), an optional <c>"comment"</c> and <c>"user"</c> (the
/// annotator; default the API key's short hash <c>key:abcd1234</c>, or <c>api</c> on a server without keys). Answers 200
/// <c>{"id": JUDGEMENT_ID, "object": "feedback"}</c> once the judgement is stored durably; 404 for an unknown response id,
/// 409 when the user already judged that response, 400 naming the field of a bad body.
/// </summary>
public static class FeedbackEndpoint
{
    public const string Path = "/v1/feedback";

    /// <summary>Characters of a user name at most.</summary>
    public const int MaxUserChars = 128;

    static readonly HashSet<string> Fields = ["response_id", "thumbs", "rating", "correction", "comment", "user"];

    /// <summary>Adds the endpoint to <paramref name="app"/>; without <paramref name="feedback"/> it answers 404.</summary>
    public static void Map(WebApplication app, TrafficFeedback? feedback, ServerOptions options)
    {
        app.MapPost(Path, async context =>
        {
            if (feedback is null) throw new ApiException(404, "this server keeps no feedback (start it with --feedback)", code: "not_found");
            var body = OpenAiProtocol.ParseObject(await LoomServer.ReadBytes(context, options));
            var (responseId, submission) = Parse(body, DefaultUser(context.Request, options));
            long id;
            try
            {
                id = await feedback.SubmitAsync(responseId, submission, context.RequestAborted);
            }
            catch (UnknownResponseException e)
            {
                throw new ApiException(404, e.Message, param: "response_id", code: "not_found");
            }
            catch (DuplicateJudgementException e)
            {
                throw new ApiException(409, e.Message, param: "user", code: "conflict");
            }
            await context.Response.WriteAsJsonAsync(new JsonObject { ["id"] = id, ["object"] = "feedback" }, CancellationToken.None);
        });
    }

    /// <summary>The body as a response id and a submission; a bad field is a 400 naming it.</summary>
    public static (string ResponseId, FeedbackSubmission Submission) Parse(JsonObject body, string defaultUser)
    {
        foreach (var (name, _) in body)
            if (!Fields.Contains(name))
                throw new ApiException(400, $"unknown field '{name}' (expected response_id, thumbs, rating, correction, comment, user)", param: name);
        string responseId = Text(body, "response_id") ?? throw new ApiException(400, "missing field 'response_id'", param: "response_id");
        if (responseId.Length == 0) throw new ApiException(400, "'response_id' must not be empty", param: "response_id");
        bool? thumbs = Text(body, "thumbs") switch
        {
            null => null,
            "up" => true,
            "down" => false,
            var other => throw new ApiException(400, $"'thumbs' must be \"up\" or \"down\", got \"{other}\"", param: "thumbs"),
        };
        int? rating = body["rating"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<int>(out int r) && r is >= 1 and <= 5 => r,
            JsonValue v when v.TryGetValue<double>(out double d) && d == Math.Floor(d) && d is >= 1 and <= 5 => (int)d,
            var other => throw new ApiException(400, $"'rating' must be an integer from 1 to 5, got {other.ToJsonString()}", param: "rating"),
        };
        string? correction = Text(body, "correction");
        if (correction is not null && string.IsNullOrWhiteSpace(correction))
            throw new ApiException(400, "'correction' must not be empty", param: "correction");
        int given = (thumbs is null ? 0 : 1) + (rating is null ? 0 : 1) + (correction is null ? 0 : 1);
        if (given != 1)
            throw new ApiException(400, $"give exactly one of 'thumbs', 'rating' and 'correction', got {given}",
                param: given == 0 ? "thumbs" : new[] { "thumbs", "rating", "correction" }.Where(f => body[f] is not null).Skip(1).First());
        string user = Text(body, "user") ?? defaultUser;
        if (string.IsNullOrWhiteSpace(user) || user.Length > MaxUserChars || user.Any(char.IsControl))
            throw new ApiException(400, $"'user' must be 1–{MaxUserChars} characters with no control characters", param: "user");
        return (responseId, new FeedbackSubmission
        {
            Annotator = user,
            ThumbsUp = thumbs,
            Rating = rating,
            Correction = correction,
            Comment = Text(body, "comment"),
        });
    }

    /// <summary>The annotator of a request that names none: the short hash of its API key (<c>key:abcd1234</c>), or <c>api</c>.</summary>
    public static string DefaultUser(HttpRequest request, ServerOptions options)
    {
        const string prefix = "Bearer ";
        string header = request.Headers.Authorization.ToString();
        if (options.ApiKeys.Count == 0 || !header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return "api";
        return "key:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim())))[..8];
    }

    static string? Text(JsonObject body, string field) => body[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new ApiException(400, $"'{field}' must be a string", param: field),
    };
}
