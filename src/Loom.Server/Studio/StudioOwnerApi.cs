using Loom.Serving.Feedback;
using Microsoft.AspNetCore.Http;

namespace Loom.Server.Studio;

/// <summary>What only owners see: agreement per task, the arena leaderboard, and exports.</summary>
internal sealed partial class StudioApi
{
    /// <summary>The task's agreement (<see cref="Serving.Feedback.Agreement.ForTask"/>), recomputed from the store on every call.</summary>
    public async Task<IResult> Agreement(HttpContext context, string taskId)
    {
        var ct = context.RequestAborted;
        var task = await store.GetTaskAsync(taskId, ct);
        if (task is null) return StudioApp.Error(404, $"no task '{taskId}'");
        var items = await store.ListItemsAsync(task.Id, ct);
        var judgements = await store.ListJudgementsAsync(new JudgementQuery { TaskId = task.Id }, ct);
        return Results.Json(Serving.Feedback.Agreement.ForTask(task, items, judgements), StudioApp.Json);
    }

    /// <summary>The arena: Bradley–Terry ratings of the model versions from every pairwise judgement, best first, with 95% bootstrap intervals.</summary>
    public async Task<IResult> Leaderboard(HttpContext context)
    {
        var judgements = await store.ListJudgementsAsync(new JudgementQuery(), context.RequestAborted);
        return Results.Json(BradleyTerry.Leaderboard(judgements), StudioApp.Json);
    }

    /// <summary>
    /// The task's training data as the JSONL file <c>loom finetune</c> reads for its kind (comparisons, rankings, ratings
    /// or corrections; see <see cref="FeedbackExport"/>), keeping only items where at least <c>minAgree</c> annotators agree.
    /// </summary>
    public async Task<IResult> Export(HttpContext context, string taskId, int? minAgree)
    {
        var ct = context.RequestAborted;
        var task = await store.GetTaskAsync(taskId, ct);
        if (task is null) return StudioApp.Error(404, $"no task '{taskId}'");
        if (minAgree is < 1) return StudioApp.Error(400, $"minAgree must be at least 1, got {minAgree}");
        var items = await store.ListItemsAsync(task.Id, ct);
        var judgements = await store.ListJudgementsAsync(new JudgementQuery { TaskId = task.Id }, ct);
        string file = task.Kind switch
        {
            JudgementKind.Pairwise => "comparisons.jsonl",
            JudgementKind.Rank => "rankings.jsonl",
            JudgementKind.Correction => "corrections.jsonl",
            _ => "ratings.jsonl",
        };
        string folder = Path.Combine(Path.GetTempPath(), "loom-studio-export-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var result = FeedbackExport.WriteJsonl(items, judgements, folder, new ExportOptions { MinAgree = minAgree });
            byte[] content = await File.ReadAllBytesAsync(Path.Combine(folder, file), ct);
            context.Response.Headers["X-Loom-Judgements"] = result.JudgementIds.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.File(content, "application/x-ndjson", $"{task.Id}-{file}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
