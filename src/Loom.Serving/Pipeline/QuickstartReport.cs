using System.Globalization;
using Loom.Evaluation;

namespace Loom.Serving.Pipeline;

/// <summary>The evaluation report of a quickstart run: one HTML file with the numbers, timings, loss curves, samples and cited answers.</summary>
public static class QuickstartReport
{
    /// <summary>Writes <see cref="QuickstartResult.ReportPath"/> (atomically) and returns its path.</summary>
    public static string Write(QuickstartResult result)
    {
        var plan = result.Plan;
        var shards = result.Tokens.Shards;
        var pretrained = result.Pretrained.Training;
        var report = new HtmlReport("Loom quickstart")
            .Paragraph($"Corpus {shards.Corpus}: {shards.Documents:N0} documents, {shards.TokenCount:N0} tokens (byte-level BPE, vocabulary {shards.VocabSize:N0}). " +
                $"Model: {plan.Model.Layers} layers, dim {plan.Model.Dim}, context {plan.Model.MaxSeq}; pretrained {pretrained.StepsDone} steps, tuned {result.Tuned.Tuning.Steps} steps.")
            .Paragraph($"Instructions: \"What does {{member}} do?\" answered by the first sentence of the member's summary; {result.HeldOut.Count} members are held out of tuning " +
                "(they are in the pretraining corpus, so the tuned model can recall them) and scored with ROUGE-L and token F1 against that sentence.")
            .Heading("Evaluation")
            .MetricTable(["metric", "value"],
            [
                (["pretraining: final train loss", F(pretrained.LastLoss)], "mean cross-entropy of the last training batch, in nats per token"),
                (["pretraining: validation loss (nats/token)", F(result.Perplexity.Loss)], "mean cross-entropy on held-out tokens; lower is better"),
                (["pretraining: validation perplexity", result.Perplexity.Perplexity.ToString("F2", CultureInfo.InvariantCulture)], "exp(validation loss): the effective number of equally likely next tokens"),
                (["pretraining: validation bits/byte", F(result.Perplexity.BitsPerByte)], MetricCatalog.Get("bits_per_byte").Explanation),
                (["held-out answers: ROUGE-L before tuning", F(result.Before.RougeL)], MetricCatalog.Get("rouge_l").Explanation),
                (["held-out answers: ROUGE-L after tuning", F(result.After.RougeL)], MetricCatalog.Get("rouge_l").Explanation),
                (["held-out answers: token F1 before tuning", F(result.Before.TokenF1)], MetricCatalog.Get("squad_f1").Explanation),
                (["held-out answers: token F1 after tuning", F(result.After.TokenF1)], MetricCatalog.Get("squad_f1").Explanation),
                (["held-out answers: count", result.HeldOut.Count.ToString(CultureInfo.InvariantCulture)], "members held out of tuning whose answers are scored above"),
                (["retrieval hit rate (top 5, demo questions)", $"{result.Answers.Count(a => a.Found)}/{result.Answers.Count}"], "demo questions whose member's document is among the top 5 retrieved"),
            ])
            .Heading("Timings")
            .Table(["stage", "seconds"], result.Timings.Select(t => (IReadOnlyList<string>)[t.Stage, t.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)]))
            .Heading("Loss curves");
        if (result.Pretrained.PlotPath is { } lossPlot)
            report.Image(File.ReadAllBytes(lossPlot), "pretraining loss (train per step, validation per evaluation)");
        if (result.Tuned.PlotPath is { } tunePlot)
            report.Image(File.ReadAllBytes(tunePlot), "supervised tuning loss");
        report.Heading("Samples before and after tuning (held-out prompts)")
            .Table(["prompt", "reference", "before tuning", "after tuning"],
                result.HeldOut.Take(plan.SampleCount).Select((item, i) =>
                    (IReadOnlyList<string>)[item.Question, item.Reference, Visible(result.Before.Answers[i]), Visible(result.After.Answers[i])]))
            .Heading("Answers with citations");
        foreach (var answer in result.Answers)
        {
            var sources = answer.Answer.CitedSources.Count > 0 ? answer.Answer.CitedSources : answer.Answer.AllSources;
            report.Paragraph($"Q: {answer.Question}")
                .Preformatted(answer.Answer.Text)
                .Paragraph((answer.Answer.CitedSources.Count > 0 ? "Sources: " : "Sources given (none cited): ") +
                    string.Join("; ", sources.Select(s => $"[{s.Number}] {s.Hit.SourceId}")));
        }
        report.Save(result.ReportPath);
        return result.ReportPath;
    }

    static string F(double value) => value.ToString("F3", CultureInfo.InvariantCulture);

    /// <summary>A generated answer as the report shows it: line breaks as ⏎, so an answer of blank lines is visible.</summary>
    static string Visible(string text) => text.Length == 0 ? "(nothing)" : text.ReplaceLineEndings("⏎");
}
