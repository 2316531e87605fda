using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Logs;
using Microsoft.Extensions.AI;

namespace Loom.Serving;

/// <summary>How a flagged session is explained; null means the default.</summary>
public sealed record LogExplainOptions
{
    /// <summary>Nearest normal sessions listed; default 3.</summary>
    public int? SimilarCount { get; init; }
    /// <summary>Events the model expected at the first unexpected step, listed with probabilities; default 3.</summary>
    public int? ExpectedCount { get; init; }
    /// <summary>Events of the session shown in the account before it is cut; default 40.</summary>
    public int? ShownEvents { get; init; }
    /// <summary>Tokens the model may write at most; default 256.</summary>
    public int? MaxOutputTokens { get; init; }

    public LogExplainOptions Validate()
    {
        if (SimilarCount is < 0) throw new ArgumentException($"LogExplainOptions.SimilarCount must be >= 0, got {SimilarCount}");
        if (ExpectedCount is < 1) throw new ArgumentException($"LogExplainOptions.ExpectedCount must be positive, got {ExpectedCount}");
        if (ShownEvents is < 1) throw new ArgumentException($"LogExplainOptions.ShownEvents must be positive, got {ShownEvents}");
        if (MaxOutputTokens is < 1) throw new ArgumentException($"LogExplainOptions.MaxOutputTokens must be positive, got {MaxOutputTokens}");
        return this;
    }
}

/// <summary>
/// The account of one session: the detector's verdict and the nearest normal sessions (always present), the facts as
/// a deterministic text, and, when a chat client wrote it, the prompt it got, its text and the runbooks it was given and cited.
/// </summary>
public sealed record LogExplanation(SessionVerdict Verdict, IReadOnlyList<SimilarSession> Similar, string Facts, string? Prompt, string Account,
    bool Generated, GroundingSources? Sources)
{
    /// <summary>One JSON object (a JSONL line): the verdict's fields, then similar, account, generated and sources.</summary>
    public string ToJson()
    {
        var json = (JsonObject)JsonNode.Parse(Verdict.ToJson())!;
        json["similar"] = new JsonArray([.. Similar.Select(s => (JsonNode)new JsonObject
        {
            ["events"] = new JsonArray([.. s.Events.Select(e => JsonValue.Create(e))]),
            ["count"] = s.Count,
            ["distance"] = s.Distance,
        })]);
        json["account"] = Account;
        json["generated"] = Generated;
        if (Sources is not null)
        {
            json["sources"] = new JsonArray([.. Sources.Given.Select(s => (JsonNode)new JsonObject
            {
                ["number"] = s.Number, ["source"] = s.Hit.SourceId, ["title"] = s.Hit.Title,
            })]);
            json["cited"] = new JsonArray([.. Sources.Cited.Select(s => JsonValue.Create(s.Number))]);
        }
        return json.ToJsonString();
    }
}

/// <summary>
/// Explains sessions of a <see cref="LogModel"/>: where the session went wrong and what was expected there (from the
/// model), the nearest normal sessions (edit distance over events among the model's kept training sessions), and an
/// account written through an <see cref="IChatClient"/> (the Loom pipeline, with retrieval over runbooks when it has
/// that layer). Without a chat client the account is the facts themselves, so every field is there either way.
/// </summary>
public sealed class LogExplainer(LogModel model, IChatClient? chat = null, LogExplainOptions? options = null)
{
    /// <summary>What the model is asked, before the facts.</summary>
    public const string Instruction =
        "A log anomaly detector flagged the session below. In a few sentences, say what went wrong, how it differs from the normal sessions, " +
        "and what to check first. Use only the facts given.";

    readonly LogExplainOptions options = (options ?? new LogExplainOptions()).Validate();

    /// <summary>Scores <paramref name="session"/> and explains the verdict.</summary>
    public async Task<LogExplanation> ExplainAsync(LogSession session, CancellationToken cancellationToken = default)
    {
        var verdict = AnomalyDetector.Detect(model, [session], options.ExpectedCount ?? 3)[0];
        var similar = NormalPatterns.Nearest(model.Normal, session.Events, options.SimilarCount ?? 3);
        string facts = Facts(verdict, session, similar);
        if (chat is null) return new LogExplanation(verdict, similar, facts, null, facts, false, null);
        string prompt = Instruction + "\n\n" + facts;
        var response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = options.MaxOutputTokens ?? 256 }, cancellationToken).ConfigureAwait(false);
        return new LogExplanation(verdict, similar, facts, prompt, response.Text.Trim(), true, response.GetSources());
    }

    /// <summary>The facts as plain sentences, the unexpected event's template first (it is also what retrieval searches for).</summary>
    string Facts(SessionVerdict verdict, LogSession session, IReadOnlyList<SimilarSession> similar)
    {
        var text = new StringBuilder();
        string Event(string key) => key == EventVocabulary.EndToken ? "the end of the session"
            : model.Vocabulary.Template(key) is { } template ? $"event {key} \"{template}\"" : $"event {key}";
        string Number(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);

        if (verdict.FirstUnexpectedIndex is { } index)
        {
            text.Append($"Unexpected: {Event(verdict.UnexpectedEvent!)} at step {index + 1} of {verdict.EventCount + 1}");
            if (verdict.FirstUnexpectedLine is { } line and > 0) text.Append($" (log line {line})");
            text.Append($", probability {Number(verdict.UnexpectedProbability ?? 0)}.\n");
            text.Append("Expected instead: ").AppendJoin("; ", verdict.Expected.Select(e => $"{Event(e.Event)} ({Number(e.Probability)})")).Append(".\n");
        }
        text.Append($"Session {verdict.SessionId} is {(verdict.Anomalous ? "anomalous" : "normal")}: score {Number(verdict.Score)} ")
            .Append($"{(verdict.Anomalous ? "above" : "not above")} the threshold {Number(verdict.Threshold)} (score: the largest -ln p of a step).\n");
        int shown = options.ShownEvents ?? 40;
        text.Append($"Events ({session.Events.Count}): ").AppendJoin(' ', session.Events.Take(shown));
        text.Append(session.Events.Count > shown ? " …\n" : "\n");
        if (similar.Count == 0) text.Append("Nearest normal sessions: none kept by the model.\n");
        else
        {
            text.Append("Nearest normal sessions (edit distance over events):\n");
            foreach (var s in similar)
            {
                text.Append($"- distance {s.Distance}, seen {s.Count} time{(s.Count == 1 ? "" : "s")} in training: ").AppendJoin(' ', s.Events.Take(shown));
                text.Append(s.Events.Count > shown ? " …\n" : "\n");
            }
        }
        return text.ToString();
    }
}
