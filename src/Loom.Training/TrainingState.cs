using Loom.IO;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// What a checkpoint needs beyond the weights to resume exactly: the optimizer's moments
/// (training_state/optimizer.safetensors, tensors "{parameter}.exp_avg" and "{parameter}.exp_avg_sq",
/// PyTorch's names) and the loop's position (training_state/state.json: step, optimizer step,
/// the batch sampler's random state).
/// </summary>
public sealed record TrainingState(
    int Step,            // optimizer steps completed
    int OptimizerStep,   // AdamW's bias-correction count (equals Step unless a run changed optimizers)
    ulong[] RandomState, // the batch sampler's xoshiro256** words after the last step
    ulong Seed,          // the run's seed (eval batches and initialisation derive from it)
    float LearningRate)  // the rate used by the last step (informational; the schedule is a function of Step)
{
    public const string OptimizerFileName = "optimizer.safetensors";
    public const string StateFileName = "state.json";

    /// <summary>Writes both files into <paramref name="folder"/> (training_state/).</summary>
    public void Save(string folder, AdamW optimizer)
    {
        var moments = new List<Tensor>();
        for (int i = 0; i < optimizer.Parameters.Count; i++)
        {
            string name = optimizer.Parameters[i].Name ?? $"parameter{i}";
            moments.Add(Named(optimizer.FirstMoments[i], name + ".exp_avg"));
            moments.Add(Named(optimizer.SecondMoments[i], name + ".exp_avg_sq"));
        }
        SafeTensors.Write(Path.Combine(folder, OptimizerFileName), moments, new Dictionary<string, string> { ["optimizer"] = "AdamW" });
        var json = new JsonObject
        {
            ["step"] = Step,
            ["optimizer_step"] = OptimizerStep,
            ["rng_state"] = new JsonArray([.. RandomState.Select(w => (JsonNode)w.ToString("x16", CultureInfo.InvariantCulture))]),
            ["seed"] = Seed.ToString(CultureInfo.InvariantCulture),
            ["learning_rate"] = LearningRate,
        };
        AtomicFile.WriteAllText(Path.Combine(folder, StateFileName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>A copy of a moment under its checkpoint name (renaming the optimizer's own tensor would change its errors).</summary>
    static Tensor Named(Tensor moment, string name)
    {
        var copy = Tensor.From(moment.Span, moment.Shape);
        copy.Name = name;
        return copy;
    }

    /// <summary>Reads training_state/ and writes the moments into <paramref name="optimizer"/>; one-line errors name the file and tensor.</summary>
    public static TrainingState Load(string folder, AdamW optimizer)
    {
        string statePath = Path.Combine(folder, StateFileName);
        if (!File.Exists(statePath)) throw new FileNotFoundException($"{statePath}: file not found (checkpoint has no training state to resume from)", statePath);
        JsonNode root;
        try { root = JsonNode.Parse(File.ReadAllText(statePath)) ?? throw new InvalidDataException($"{statePath}: empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{statePath}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        TrainingState state;
        try
        {
            var words = root["rng_state"]!.AsArray().Select(w => ulong.Parse((string)w!, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
            state = new TrainingState(
                (int)root["step"]!, (int)root["optimizer_step"]!, words,
                ulong.Parse((string)root["seed"]!, CultureInfo.InvariantCulture), (float)root["learning_rate"]!);
        }
        catch (Exception e) when (e is NullReferenceException or FormatException or InvalidOperationException or OverflowException)
        {
            throw new InvalidDataException($"{statePath}: missing or malformed field (needs step, optimizer_step, rng_state, seed, learning_rate)");
        }

        string momentsPath = Path.Combine(folder, OptimizerFileName);
        var moments = SafeTensors.Read(momentsPath).Tensors;
        for (int i = 0; i < optimizer.Parameters.Count; i++)
        {
            string name = optimizer.Parameters[i].Name ?? $"parameter{i}";
            CopyMoment(moments, name + ".exp_avg", optimizer.FirstMoments[i], momentsPath);
            CopyMoment(moments, name + ".exp_avg_sq", optimizer.SecondMoments[i], momentsPath);
        }
        optimizer.StepCount = state.OptimizerStep;
        return state;
    }

    static void CopyMoment(IReadOnlyDictionary<string, Tensor> moments, string name, Tensor target, string source)
    {
        if (!moments.TryGetValue(name, out var t)) throw new InvalidDataException($"{source}: tensor '{name}' is missing");
        if (!t.SameShape(target)) throw new InvalidDataException($"{source}: tensor '{name}' has shape {t.ShapeText}, the model needs {target.ShapeText}");
        t.Span.CopyTo(target.Span);
    }
}
