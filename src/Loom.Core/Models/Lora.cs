using Loom.IO;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models.Gguf;
using Loom.Tensors;

namespace Loom.Models;

/// <summary>Which projections get LoRA adapters, of what rank and scale (PEFT's LoraConfig: r, lora_alpha, target_modules).</summary>
public sealed record LoraOptions
{
    /// <summary>The projection names Loom can adapt, as Hugging Face and PEFT call them.</summary>
    public static IReadOnlyList<string> AllTargets { get; } = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>Rank r of each adapter.</summary>
    public int Rank { get; init; } = 8;
    /// <summary>lora_alpha: the update is scaled by Alpha / Rank.</summary>
    public float Alpha { get; init; } = 16f;
    /// <summary>Target module names (a subset of <see cref="AllTargets"/>).</summary>
    public IReadOnlyList<string> Targets { get; init; } = ["q_proj", "v_proj"];

    /// <summary>Alpha / Rank.</summary>
    public float Scale => Alpha / Rank;

    /// <summary>Throws a one-line error naming the first bad setting.</summary>
    public LoraOptions Validate()
    {
        if (Rank <= 0) throw new ArgumentException($"LoraOptions.Rank must be positive, got {Rank}");
        if (!float.IsFinite(Alpha) || Alpha <= 0) throw new ArgumentException($"LoraOptions.Alpha must be positive, got {Alpha}");
        if (Targets.Count == 0) throw new ArgumentException("LoraOptions.Targets is empty");
        foreach (var target in Targets)
            if (!AllTargets.Contains(target))
                throw new ArgumentException($"LoraOptions.Targets: unknown module '{target}' (known: {string.Join(", ", AllTargets)})");
        return this;
    }
}

/// <summary>
/// One low-rank adapter on a frozen linear weight W [out, in]: y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ (applied by <see cref="Linear"/>), with
/// A [rank, in] initialised like PEFT (Kaiming-uniform, a = √5: uniform ±1/√in) and B [out, rank] zero,
/// so a fresh adapter leaves the model unchanged. Names follow PEFT:
/// <c>base_model.model.{weight name without .weight}.lora_A.weight</c>.
/// </summary>
public sealed class LoraAdapter
{
    public LoraAdapter(Tensor weight, int rank, float scale, DeterministicRandom random)
    {
        if (weight.Rank != 2 || weight.Name is null) throw new ArgumentException($"LoRA needs a named 2-D weight, got {weight}");
        Weight = weight;
        Scale = scale;
        string module = weight.Name.EndsWith(".weight", StringComparison.Ordinal) ? weight.Name[..^".weight".Length] : weight.Name;
        Module = module;
        A = Tensor.Parameter($"base_model.model.{module}.lora_A.weight", rank, weight.Dim(1));
        B = Tensor.Parameter($"base_model.model.{module}.lora_B.weight", weight.Dim(0), rank);
        float bound = 1f / MathF.Sqrt(weight.Dim(1));
        var a = A.Span;
        for (int i = 0; i < a.Length; i++) a[i] = (float)(random.NextDouble() * 2 - 1) * bound;
    }

    /// <summary>The frozen base weight W [out, in].</summary>
    public Tensor Weight { get; }
    /// <summary>The module name, e.g. model.layers.0.self_attn.q_proj.</summary>
    public string Module { get; }
    /// <summary>lora_A [rank, in].</summary>
    public Tensor A { get; } // [rank, in]
    /// <summary>lora_B [out, rank].</summary>
    public Tensor B { get; } // [out, rank]
    /// <summary>alpha / rank.</summary>
    public float Scale { get; }

    /// <summary>W += scale·B·A, in place (W must hold float32 values: see <see cref="Lora.MergedFloat"/> for a quantised base).</summary>
    public void MergeInto() => MergeInto(Weight);

    /// <summary>target += scale·B·A for a float32 <paramref name="target"/> [out, in] (this adapter's weight or a float32 copy of it).</summary>
    public void MergeInto(Tensor target)
    {
        if (!target.SameShape(Weight)) throw new ArgumentException($"adapter {Module} merges into {Weight.ShapeText}, got {target.ShapeText}", nameof(target));
        int outDim = Weight.Dim(0), inDim = Weight.Dim(1), rank = A.Dim(0);
        var w = target.Span;
        var a = A.Span;
        var b = B.Span;
        for (int o = 0; o < outDim; o++)
            for (int r = 0; r < rank; r++)
            {
                float coefficient = Scale * b[o * rank + r];
                if (coefficient == 0f) continue;
                for (int i = 0; i < inDim; i++) w[o * inDim + i] += coefficient * a[r * inDim + i];
            }
    }
}

/// <summary>
/// LoRA (Hu et al. 2021) on a <see cref="Transformer"/>: attaching adapters freezes every base weight
/// (RequiresGrad false) and returns the adapters' A and B as the only trainable tensors. Adapters are saved
/// on their own in PEFT's layout (adapter_config.json + adapter_model.safetensors) and can be merged into
/// the base weights for export.
/// </summary>
public static class Lora
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>Adds fresh adapters on every layer's target projections; returns their trainable tensors (A and B of each).</summary>
    public static IReadOnlyList<Tensor> Attach(Transformer model, LoraOptions options, ulong seed = 1)
    {
        options.Validate();
        if (Adapters(model).Any()) throw new InvalidOperationException("the model already has LoRA adapters");
        foreach (var p in model.Parameters) p.RequiresGrad = false;
        var random = new DeterministicRandom(seed);
        var trainable = new List<Tensor>();
        foreach (var block in model.Blocks)
        {
            foreach (var target in options.Targets)
            {
                var (weight, list) = Target(block, target);
                var adapter = new LoraAdapter(weight, options.Rank, options.Scale, random);
                list.Add(adapter);
                trainable.Add(adapter.A);
                trainable.Add(adapter.B);
            }
        }
        return trainable;
    }

    /// <summary>Every adapter on the model, layer by layer.</summary>
    public static IEnumerable<LoraAdapter> Adapters(Transformer model) =>
        model.Blocks.SelectMany(b => b.Attention.Adapters.Concat(b.Mlp.Adapters));

    /// <summary>Adds every adapter's update into its base weight and removes the adapters; base weights become trainable again.</summary>
    public static void Merge(Transformer model)
    {
        foreach (var adapter in Adapters(model)) adapter.MergeInto();
        foreach (var block in model.Blocks)
        {
            block.Attention.Adapters.Clear();
            block.Mlp.Adapters.Clear();
        }
        foreach (var p in model.Parameters) p.RequiresGrad = true;
    }

    /// <summary>
    /// Holds every weight matrix of <paramref name="model"/> (projections, embedding table, LM head) in <paramref name="type"/>
    /// (BF16, Q8_0, Q4_0 or Q4_K; F32 leaves the model as it is), frozen, dropping its float32 values: the base of a LoRA run
    /// at a fraction of the memory (QLoRA). Matrices whose rows are not whole blocks of the type fall back as llama.cpp's
    /// quantizer does to the nearest type that fits: Q4_K to Q4_0, Q4_0 and Q8_0 to BF16. Norms and biases stay float32.
    /// Returns how many matrices are held in each type.
    /// </summary>
    public static IReadOnlyDictionary<GgmlType, int> FreezeBase(Transformer model, GgmlType type)
    {
        if (type != GgmlType.F32 && type != GgmlType.BF16 && !GgmlTypes.IsQuantized(type))
            throw new ArgumentException($"a frozen base is F32, BF16, Q8_0, Q4_0 or Q4_K, got {type}", nameof(type));
        var counts = new Dictionary<GgmlType, int>();
        foreach (var p in model.Parameters)
        {
            if (p.Rank != 2) continue;
            if (p.Quantized is not null) throw new InvalidOperationException($"tensor '{p.Name}' is held as {p.Quantized.Type} already");
            var held = type;
            if (held == GgmlType.Q4_K && p.Dim(1) % GgmlTypes.BlockSize(held) != 0) held = GgmlType.Q4_0;
            if (held is GgmlType.Q4_0 or GgmlType.Q8_0 && p.Dim(1) % GgmlTypes.BlockSize(held) != 0) held = GgmlType.BF16;
            if (held != GgmlType.F32) p.HoldQuantized(QuantizedMatrix.Quantize(p.Span, p.Dim(0), p.Dim(1), held));
            p.RequiresGrad = false;
            counts[held] = counts.GetValueOrDefault(held) + 1;
        }
        return counts;
    }

    /// <summary>
    /// The model with its adapters merged, in float32: <paramref name="model"/> itself, merged in place (<see cref="Merge"/>),
    /// when every weight holds float32 values; otherwise a new float32 model over the dequantised base with each adapter
    /// merged into its weight (<paramref name="model"/> keeps its frozen base and adapters). A model without adapters comes
    /// back dequantised.
    /// </summary>
    public static Transformer MergedFloat(Transformer model)
    {
        if (model.QuantizedType is null)
        {
            Merge(model);
            return model;
        }
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var p in model.Parameters)
        {
            if (p.Quantized is not { } matrix)
            {
                tensors[p.Name!] = p;
                continue;
            }
            var values = new Tensor(p.Shape) { Name = p.Name }; // [rows, columns]
            matrix.Dequantize(values.Span);
            tensors[p.Name!] = values;
        }
        var merged = Transformer.FromTensors(model.Config, tensors, "dequantised base");
        var byName = merged.Parameters.ToDictionary(p => p.Name!, StringComparer.Ordinal);
        foreach (var adapter in Adapters(model)) adapter.MergeInto(byName[adapter.Weight.Name!]);
        return merged;
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (PEFT's names) into <paramref name="folder"/>, atomically.</summary>
    public static void Save(string folder, Transformer model, LoraOptions options, string? baseModel = null)
    {
        var adapters = Adapters(model).ToList();
        if (adapters.Count == 0) throw new InvalidOperationException("the model has no LoRA adapters to save");
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["r"] = options.Rank,
            ["lora_alpha"] = (double)options.Alpha,
            ["lora_dropout"] = 0.0,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["target_modules"] = new JsonArray([.. options.Targets.Select(t => (JsonNode)JsonValue.Create(t)!)]),
            ["base_model_name_or_path"] = baseModel,
        };
        Checkpoint.WriteFolder(folder, temp =>
        {
            AtomicFile.WriteAllText(Path.Combine(temp, ConfigFileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            SafeTensors.Write(Path.Combine(temp, WeightsFileName), [.. adapters.SelectMany(a => new[] { a.A, a.B })], new Dictionary<string, string> { ["format"] = "pt" });
        });
    }

    /// <summary>Reads the options of an adapter folder; errors name the file and field.</summary>
    public static LoraOptions LoadOptions(string folder)
    {
        string path = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no adapter config (not a LoRA adapter folder)", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        try
        {
            int rank = root?["r"]?.GetValue<int>() ?? throw new InvalidDataException($"{path}: missing field r");
            double alpha = root["lora_alpha"]?.GetValue<double>() ?? rank;
            var targets = root["target_modules"] as JsonArray ?? throw new InvalidDataException($"{path}: missing field target_modules");
            var options = new LoraOptions { Rank = rank, Alpha = (float)alpha, Targets = [.. targets.Select(t => t!.GetValue<string>())] };
            try { return options.Validate(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: a field has the wrong type ({e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>Attaches the adapters saved in <paramref name="folder"/> to <paramref name="model"/> (their weights, checked by name and shape); returns the trainable tensors.</summary>
    public static IReadOnlyList<Tensor> Load(string folder, Transformer model)
    {
        var options = LoadOptions(folder);
        var trainable = Attach(model, options);
        string path = Path.Combine(folder, WeightsFileName);
        var content = SafeTensors.Read(path);
        foreach (var t in trainable)
        {
            if (!content.Tensors.TryGetValue(t.Name!, out var saved))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is missing");
            if (!saved.SameShape(t))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' has shape {saved.ShapeText}, expected {t.ShapeText}");
            saved.Span.CopyTo(t.Span);
        }
        if (content.Tensors.Count != trainable.Count)
            throw new InvalidDataException($"{path}: {content.Tensors.Count} tensors, the config implies {trainable.Count.ToString(CultureInfo.InvariantCulture)}");
        return trainable;
    }

    static (Tensor Weight, List<LoraAdapter> List) Target(Transformer.Block block, string target) => target switch
    {
        "q_proj" => (block.Attention.Query, block.Attention.Adapters),
        "k_proj" => (block.Attention.Key, block.Attention.Adapters),
        "v_proj" => (block.Attention.Value, block.Attention.Adapters),
        "o_proj" => (block.Attention.Output, block.Attention.Adapters),
        "gate_proj" => (block.Mlp.Gate, block.Mlp.Adapters),
        "up_proj" => (block.Mlp.Up, block.Mlp.Adapters),
        "down_proj" => (block.Mlp.Down, block.Mlp.Adapters),
        _ => throw new ArgumentException($"unknown LoRA target '{target}' (known: {string.Join(", ", LoraOptions.AllTargets)})"),
    };
}
