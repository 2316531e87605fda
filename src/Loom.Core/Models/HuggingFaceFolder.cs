using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Models;

/// <summary>
/// A Hugging Face model folder as published on the Hub (config.json, model.safetensors or shards listed by
/// model.safetensors.index.json, tokenizer.json, tokenizer_config.json, generation_config.json) read into Loom: the
/// families <c>LlamaForCausalLM</c> (Llama 2/3/3.1/3.2, SmolLM2), <c>Qwen2ForCausalLM</c> and <c>MistralForCausalLM</c>,
/// weights in F32, F16 or BF16 (converted to float32), tied or untied LM head.
/// </summary>
public static class HuggingFaceFolder
{
    /// <summary>The classes (config.json's architectures) Loom imports.</summary>
    public static IReadOnlyList<string> Architectures { get; } = ["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"];

    /// <summary>Files copied unchanged into the checkpoint when the folder has them (tokenizers and chat templates read them).</summary>
    public static IReadOnlyList<string> CopiedFiles { get; } = [Checkpoint.TokenizerFileName, "tokenizer_config.json", Checkpoint.GenerationConfigFileName];

    /// <summary>The config of the folder, checked to be of a class Loom runs; one-line errors name the file and field.</summary>
    public static LlamaConfig ReadConfig(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: folder not found");
        string path = Path.Combine(folder, Checkpoint.ConfigFileName);
        var config = LlamaConfig.Load(path);
        JsonNode? architectures;
        try { architectures = JsonNode.Parse(File.ReadAllText(path))?["architectures"]; }
        catch (JsonException e) { throw new FormatException($"{path}: invalid JSON ({e.Message.ReplaceLineEndings(" ")})"); }
        if (architectures is JsonArray { Count: > 0 } list && list[0] is JsonNode first && first.GetValueKind() == JsonValueKind.String)
        {
            string architecture = first.GetValue<string>();
            if (architecture != config.Architecture)
                throw new FormatException($"{path}: architectures[0] is '{architecture.ReplaceLineEndings(" ")}', model_type '{config.ModelType}' runs as '{config.Architecture}' (Loom imports {string.Join(", ", Architectures)})");
        }
        return config;
    }

    /// <summary>The model of the folder: its config and its weights (single or sharded safetensors), checked tensor by tensor.</summary>
    public static Transformer Read(string folder)
    {
        var config = ReadConfig(folder);
        var content = SafeTensors.ReadModel(folder);
        string source = File.Exists(Path.Combine(folder, SafeTensors.ModelFileName))
            ? Path.Combine(folder, SafeTensors.ModelFileName)
            : Path.Combine(folder, SafeTensors.IndexFileName);
        return Transformer.FromTensors(config, content.Tensors, source);
    }

    /// <summary>
    /// Imports <paramref name="folder"/> as the Loom checkpoint <paramref name="checkpoint"/> (written atomically): config.json,
    /// model.safetensors in float32, and tokenizer.json, tokenizer_config.json and generation_config.json copied unchanged.
    /// Returns the model.
    /// </summary>
    public static Transformer Import(string folder, string checkpoint)
    {
        var model = Read(folder);
        string tokenizer = Path.Combine(folder, Checkpoint.TokenizerFileName);
        if (!File.Exists(tokenizer)) throw new FileNotFoundException($"{tokenizer}: file not found (a checkpoint needs the tokenizer)", tokenizer);
        int tokens = Checkpoint.TokenizerVocabSize(tokenizer);
        if (tokens > model.Config.VocabSize)
            throw new InvalidDataException($"{tokenizer}: the tokenizer has {tokens} tokens, {Checkpoint.ConfigFileName} says vocab_size {model.Config.VocabSize}");
        // Checkpoint.Save writes its own generation_config.json first; the folder's, copied after it, replaces it.
        Checkpoint.Save(checkpoint, model, target =>
        {
            foreach (string file in CopiedFiles)
            {
                string from = Path.Combine(folder, file);
                if (File.Exists(from)) File.Copy(from, Path.Combine(target, file), overwrite: true);
            }
        });
        return model;
    }

    /// <summary>
    /// Writes <paramref name="model"/> (float32 weights) as a Hugging Face folder <paramref name="folder"/> (replaced whole,
    /// atomically): config.json of its family (LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM; torch_dtype as
    /// written), model.safetensors in F32 or, with <paramref name="bfloat16"/>, BF16, and the tokenizer files
    /// (<see cref="CopiedFiles"/>) copied from <paramref name="checkpoint"/> when it has them.
    /// </summary>
    public static void Export(string folder, Transformer model, string? checkpoint, bool bfloat16 = false)
    {
        if (model.QuantizedType is { } type)
            throw new ArgumentException($"the model's weights are held as {type}; a Hugging Face folder is written from float32 weights (see Lora.MergedFloat)", nameof(model));
        var config = JsonNode.Parse(model.Config.ToHuggingFaceJson())!;
        config["torch_dtype"] = bfloat16 ? "bfloat16" : "float32";
        Checkpoint.WriteFolder(folder, temp =>
        {
            Loom.IO.AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.ConfigFileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            SafeTensors.Write(Path.Combine(temp, SafeTensors.ModelFileName), model.Parameters, new Dictionary<string, string> { ["format"] = "pt" }, bfloat16);
            if (checkpoint is null) return;
            foreach (string file in CopiedFiles)
            {
                string from = Path.Combine(checkpoint, file);
                if (File.Exists(from)) File.Copy(from, Path.Combine(temp, file), overwrite: true);
            }
        });
    }
}
