using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Logs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Loom.Server;

/// <summary>A detection request: raw log lines in the order they were written, and whether every open session ends with them.</summary>
public sealed record LogDetectRequest(IReadOnlyList<string> Lines, bool Complete);

/// <summary>
/// <c>POST /v1/logs/detect</c>: a log shipper posts lines (JSON <c>{"lines": [...], "complete": false}</c>, or NDJSON: one
/// JSON string or <c>{"line": "..."}</c> per line, <c>?complete=true</c> to end every open session) and gets back the verdicts they decided: sessions flagged by these
/// lines, and sessions completed (idle past the timeout, or all open ones when <c>complete</c> is true), normal ones
/// included. Sessions span requests: one <see cref="LiveDetector"/> owns them, fed by one request at a time.
/// </summary>
public static class LogEndpoint
{
    public const string Path = "/v1/logs/detect";

    /// <summary>Adds the endpoint to <paramref name="app"/>; the body limit and API keys are the server's.</summary>
    public static void Map(WebApplication app, LiveDetector detector, ServerOptions options)
    {
        var gate = new SemaphoreSlim(1);
        app.MapPost(Path, async context =>
        {
            var request = Parse(await LoomServer.ReadBytes(context, options), context.Request.ContentType);
            if (context.Request.Query["complete"] == "true") request = request with { Complete = true };
            var results = new List<WatchEvent>();
            long linesBefore;
            int openAfter;
            await gate.WaitAsync(context.RequestAborted);
            try
            {
                linesBefore = detector.LinesRead;
                foreach (string line in request.Lines)
                    detector.Add(new LogLine(detector.LinesRead + 1, line, null), results);
                detector.Complete(results, all: request.Complete);
                openAfter = detector.OpenSessions;
            }
            finally
            {
                gate.Release();
            }
            var verdicts = new JsonArray();
            var notes = new JsonArray();
            foreach (var result in results)
            {
                if (result.Verdict is not { } verdict)
                {
                    notes.Add(result.Note);
                    continue;
                }
                var json = JsonNode.Parse(verdict.ToJson())!.AsObject();
                json["completed"] = result.Completed;
                json["latency_ms"] = Math.Round(result.Latency.TotalMilliseconds, 3);
                verdicts.Add(json);
            }
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["object"] = "logs.detection",
                ["first_line"] = linesBefore + 1,
                ["lines"] = request.Lines.Count,
                ["open_sessions"] = openAfter,
                ["verdicts"] = verdicts,
                ["notes"] = notes,
            }, context.RequestAborted);
        });
    }

    /// <summary>The typed request from a JSON or NDJSON body; bad input is a 400 naming the field.</summary>
    public static LogDetectRequest Parse(ReadOnlySpan<byte> body, string? contentType)
    {
        if (contentType?.Contains("ndjson", StringComparison.OrdinalIgnoreCase) == true) return ParseNdjson(body);
        var root = OpenAiProtocol.ParseObject(body);
        if (root["lines"] is not JsonArray array) throw new ApiException(400, "'lines' must be an array of strings", param: "lines");
        var lines = new List<string>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonValue value || value.GetValueKind() != JsonValueKind.String)
                throw new ApiException(400, $"'lines[{i}]' must be a string", param: "lines");
            AddSplit(lines, value.GetValue<string>());
        }
        bool complete = false;
        if (root["complete"] is { } flag)
        {
            if (flag.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False)) throw new ApiException(400, "'complete' must be a boolean", param: "complete");
            complete = flag.GetValue<bool>();
        }
        return new LogDetectRequest(lines, complete);
    }

    static LogDetectRequest ParseNdjson(ReadOnlySpan<byte> body)
    {
        var lines = new List<string>();
        int number = 0;
        foreach (string record in Encoding.UTF8.GetString(body).Split('\n'))
        {
            number++;
            if (record.Trim().Length == 0) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(record); }
            catch (JsonException e) { throw new ApiException(400, $"NDJSON record {number} is not JSON: {e.Message}", param: "lines"); }
            string? text = node switch
            {
                JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
                JsonObject item when item["line"] is JsonValue line && line.GetValueKind() == JsonValueKind.String => line.GetValue<string>(),
                _ => null,
            };
            if (text is null) throw new ApiException(400, $"NDJSON record {number} must be a string or {{\"line\": \"...\"}}", param: "line");
            AddSplit(lines, text);
        }
        return new LogDetectRequest(lines, false);
    }

    /// <summary>A posted string holding line breaks is several log lines.</summary>
    static void AddSplit(List<string> lines, string text)
    {
        foreach (string line in text.TrimEnd('\r', '\n').Split('\n')) lines.Add(line.TrimEnd('\r'));
    }
}
