namespace Loom.Cli;

/// <summary>
/// The library names option properties in its messages (<c>PretrainOptions.Batch must be positive</c>); the CLI shows the
/// flag that sets the property (<c>--batch must be positive</c>). One map for every command, since a property has one flag.
/// </summary>
internal static class FlagNames
{
    static readonly Dictionary<string, string> Flags = new(StringComparer.Ordinal)
    {
        ["LoraOptions.Rank"] = "--lora-rank",
        ["LoraOptions.Alpha"] = "--lora-alpha",
        ["LoraOptions.Targets"] = "--lora-targets",
        ["PrepareOptions.ValidationFraction"] = "--val-fraction",
        ["PrepareOptions.Tokenizer"] = "--tokenizer",
        ["PrepareOptions.OutputDirectory"] = "--out",
        ["PretrainOptions.Batch"] = "--batch",
        ["PretrainOptions.GradientAccumulation"] = "--grad-accum",
        ["PretrainOptions.Steps"] = "--steps",
        ["PretrainOptions.WeightDecay"] = "--weight-decay",
        ["PretrainOptions.Clip"] = "--clip",
        ["PretrainOptions.EvalEvery"] = "--eval-every",
        ["PretrainOptions.EvalBatches"] = "--eval-batches",
        ["PretrainOptions.SaveEvery"] = "--save-every",
        ["TuneOptions.Steps"] = "--steps",
        ["TuneOptions.Epochs"] = "--epochs",
        ["TuneOptions.Batch"] = "--batch",
        ["TuneOptions.WeightDecay"] = "--weight-decay",
        ["TuneOptions.Clip"] = "--clip",
        ["TuneOptions.EvalEvery"] = "--eval-every",
        ["TuneOptions.EvalFraction"] = "--eval-fraction",
        ["GrpoOptions.GroupSize"] = "--group-size",
        ["GrpoOptions.MaxNewTokens"] = "--max-new-tokens",
        ["GrpoOptions.Temperature"] = "--temperature",
        ["GrpoOptions.KlCoefficient"] = "--kl",
        ["GrpoOptions.ClipEpsilon"] = "--clip-epsilon",
        ["BestOfN.Generate: n"] = "--best-of",
        ["DpoTuner.Run: beta"] = "--beta",
        ["postgresConnection"] = "--postgres",
        ["QuickstartOptions.OutputFolder"] = "--out",
        ["QuickstartOptions.Corpus"] = "--corpus",
        ["QuickstartOptions.Threads"] = "--threads",
        ["QuickstartOptions.Minutes"] = "--minutes",
        ["ExportOptions.MinAgree"] = "--min-agree",
        ["QueueOptions.Responses"] = "--responses",
        ["QueueOptions.MaxTokens"] = "--max-tokens",
        ["BradleyTerryOptions.Resamples"] = "--resamples",
        ["ImproveOptions.Margin"] = "--margin",
        ["ImproveOptions.MinAgree"] = "--min-agree",
        ["ImproveOptions.MinPairs"] = "--min-pairs",
        ["ImproveOptions.AfterId"] = "--after",
        ["ImproveOptions.SftSteps"] = "--sft-steps",
        ["ImproveOptions.DpoSteps"] = "--dpo-steps",
        ["ImproveOptions.RewardSteps"] = "--reward-steps",
        ["ImproveOptions.GrpoSteps"] = "--grpo-steps",
        ["ImproveOptions.Beta"] = "--beta",
        ["ImproveOptions.LearningRate"] = "--lr",
        ["ImproveOptions.Batch"] = "--batch",
        ["ImproveOptions.SamplesPerPrompt"] = "--samples",
        ["ImproveOptions.Temperature"] = "--temperature",
        ["ImproveOptions.MaxNewTokens"] = "--max-new-tokens",
    };

    /// <summary>The message with every known option property replaced by its flag; anything else is left as it is.</summary>
    public static string Rephrase(string message)
    {
        foreach (var (property, flag) in Flags.OrderByDescending(pair => pair.Key.Length))
            message = message.Replace(property, flag, StringComparison.Ordinal);
        return message;
    }
}
