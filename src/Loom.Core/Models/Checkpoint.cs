using Loom.Text;
using Loom.IO;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Models;

/// <summary>
/// A checkpoint folder in the Hugging Face layout: config.json, model.safetensors, tokenizer.json,
/// generation_config.json, and optionally Loom's training_state/ for resuming. The folder is built
/// under a temporary name beside its destination and renamed into place, so a crash or a full disk
/// leaves the previous checkpoint (or nothing), never half of one.
/// </summary>
public static class Checkpoint
{
    public const string ConfigFileName = "config.json";
    public const string TokenizerFileName = "tokenizer.json";
    public const string GenerationConfigFileName = "generation_config.json";
    public const string TrainingStateFolderName = "training_state";

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="folder"/>, replacing any folder there.
    /// <paramref name="saveTokenizer"/> writes tokenizer.json into the folder it is given;
    /// <paramref name="saveTrainingState"/>, when set, fills the training_state folder it is given.
    /// </summary>
    public static void Save(string folder, Transformer model, Action<string> saveTokenizer, Action<string>? saveTrainingState = null)
    {
        WriteFolder(folder, temp =>
        {
            model.Config.Save(Path.Combine(temp, ConfigFileName));
            AtomicFile.WriteAllText(Path.Combine(temp, GenerationConfigFileName), GenerationConfigJson(model.Config));
            SafeTensors.Write(Path.Combine(temp, SafeTensors.ModelFileName), model.Parameters, new Dictionary<string, string> { ["format"] = "pt" });
            saveTokenizer(temp);
            if (!File.Exists(Path.Combine(temp, TokenizerFileName)))
                throw new InvalidOperationException($"the tokenizer did not write {TokenizerFileName}");
            if (saveTrainingState is not null)
            {
                string state = Path.Combine(temp, TrainingStateFolderName);
                Directory.CreateDirectory(state);
                saveTrainingState(state);
            }
        });
    }

    /// <summary>
    /// Loads the config and weights of a checkpoint folder (or of DIR/checkpoint when DIR is a training
    /// output folder), checking every tensor's name and shape against the config and the tokenizer's
    /// vocabulary against vocab_size; errors are one line naming the file and the tensor or field.
    /// </summary>
    public static Transformer Load(string folder)
    {
        folder = Resolve(folder);
        var config = LlamaConfig.Load(Path.Combine(folder, ConfigFileName));
        string tokenizer = Path.Combine(folder, TokenizerFileName);
        if (File.Exists(tokenizer))
        {
            // Fewer tokens than embedding rows is allowed: Qwen2.5 pads its 151,665 tokens to 151,936 rows.
            int tokens = TokenizerVocabSize(tokenizer);
            if (tokens > config.VocabSize)
                throw new InvalidDataException($"{tokenizer}: the tokenizer has {tokens} tokens, {ConfigFileName} says vocab_size {config.VocabSize}");
        }
        string quantized = Path.Combine(folder, Gguf.QuantizedLlamaGguf.FileName);
        if (!File.Exists(Path.Combine(folder, SafeTensors.ModelFileName)) && File.Exists(quantized))
            return Gguf.QuantizedLlamaGguf.Load(quantized, config); // `loom quantize` output: weights stay quantised
        var content = SafeTensors.ReadModel(folder);
        string source = File.Exists(Path.Combine(folder, SafeTensors.ModelFileName))
            ? Path.Combine(folder, SafeTensors.ModelFileName)
            : Path.Combine(folder, SafeTensors.IndexFileName);
        return Transformer.FromTensors(config, content.Tensors, source);
    }

    /// <summary>The checkpoint folder meant by <paramref name="folder"/>: itself, or its checkpoint/ subfolder.</summary>
    public static string Resolve(string folder)
    {
        if (File.Exists(Path.Combine(folder, ConfigFileName))) return folder;
        string nested = Path.Combine(folder, "checkpoint");
        if (File.Exists(Path.Combine(nested, ConfigFileName))) return nested;
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: checkpoint folder not found");
        throw new FileNotFoundException($"{folder}: no {ConfigFileName} (not a checkpoint folder)");
    }

    /// <summary>
    /// Tokens in a Hugging Face tokenizer.json: one more than the largest id in model.vocab
    /// (an object of token → id, or a Unigram list) and added_tokens.
    /// </summary>
    public static int TokenizerVocabSize(string path)
    {
        JsonNode? root;
        long length = new FileInfo(path).Length;
        if (length > TokenizerJson.MaxFileBytes) throw new InvalidDataException($"{path}: {length:N0} bytes; a tokenizer.json is at most {TokenizerJson.MaxFileBytes >> 20} MiB");
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        int maxId = -1;
        switch (root?["model"]?["vocab"])
        {
            case JsonObject vocab:
                foreach (var (_, id) in vocab)
                    maxId = Math.Max(maxId, id?.GetValueKind() == JsonValueKind.Number ? id.GetValue<int>() : throw new InvalidDataException($"{path}: model.vocab holds a non-integer id"));
                break;
            case JsonArray list:
                maxId = list.Count - 1;
                break;
            default:
                throw new InvalidDataException($"{path}: missing model.vocab");
        }
        if (root["added_tokens"] is JsonArray added)
            foreach (var token in added)
                if (token?["id"] is JsonNode id && id.GetValueKind() == JsonValueKind.Number) maxId = Math.Max(maxId, id.GetValue<int>());
        return maxId + 1;
    }

    /// <summary>
    /// Builds a folder under a temporary name in the destination's parent, then renames it into place
    /// (moving an existing folder aside first and deleting it after). On any failure the temporary
    /// folder is removed and the destination is left as it was.
    /// </summary>
    public static void WriteFolder(string folder, Action<string> fill)
    {
        string full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        string parent = Path.GetDirectoryName(full)!;
        string name = Path.GetFileName(full);
        Directory.CreateDirectory(parent);
        RemoveLeftovers(parent, name);
        string temp = Path.Combine(parent, $".{name}.partial-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            fill(temp);
        }
        catch
        {
            TryDeleteFolder(temp);
            throw;
        }
        if (Directory.Exists(full))
        {
            string old = Path.Combine(parent, $".{name}.old-{Environment.ProcessId}-{Guid.NewGuid():N}");
            Directory.Move(full, old);
            Directory.Move(temp, full);
            TryDeleteFolder(old);
        }
        else
        {
            Directory.Move(temp, full);
        }
    }

    static string GenerationConfigJson(LlamaConfig config)
    {
        var json = new JsonObject
        {
            ["_from_model_config"] = true,
            ["bos_token_id"] = config.BosId >= 0 ? JsonValue.Create(config.BosId) : null,
            ["eos_token_id"] = config.EosId >= 0 ? JsonValue.Create(config.EosId) : null,
            ["max_length"] = config.MaxSeq,
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Deletes the temporary folders of saves of <paramref name="name"/> that were killed before they finished
    /// (<c>.NAME.partial-PID-…</c>, <c>.NAME.old-PID-…</c> whose process is gone): a killed save leaves one, and nothing
    /// else would ever remove it. A save still running in another process keeps its folder.
    /// </summary>
    static void RemoveLeftovers(string parent, string name)
    {
        foreach (string leftover in Directory.EnumerateDirectories(parent, $".{name}.*"))
        {
            string suffix = Path.GetFileName(leftover)[(name.Length + 2)..]; // "partial-PID-GUID" or "old-PID-GUID"
            string[] parts = suffix.Split('-');
            if (parts.Length != 3 || parts[0] is not ("partial" or "old") || !int.TryParse(parts[1], out int pid)) continue;
            if (IsRunning(pid)) continue;
            TryDeleteFolder(leftover);
        }
    }

    static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    static void TryDeleteFolder(string path)
    {
        try { Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
