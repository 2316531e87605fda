using System.CommandLine;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom export</c>: a checkpoint (trained, imported, tuned or merged) as a llama-architecture GGUF for llama.cpp, Ollama and
/// LM Studio (<c>--gguf</c>), and/or as a Hugging Face folder of its family (<c>--hf</c>). A BF16 or quantised checkpoint is
/// dequantised to float32 first.
/// </summary>
internal static class ExportCommand
{
    internal static Command Create()
    {
        var gguf = new Option<string?>("--gguf") { Description = "GGUF file to write" };
        var hf = new Option<string?>("--hf") { Description = "Hugging Face folder to write (config.json, model.safetensors, tokenizer files)" };
        var model = new Option<string>("--model") { Description = "Checkpoint folder (or a `loom pretrain` / `loom finetune --merge` output folder)", Required = true };
        var type = new Option<string>("--type") { Description = "GGUF weight type: f32, f16 or q8_0 (norms stay f32)", DefaultValueFactory = _ => "f32" };
        var dtype = new Option<string>("--dtype") { Description = "Hugging Face weight type: f32 or bf16", DefaultValueFactory = _ => "f32" };
        var name = new Option<string?>("--name") { Description = "general.name in the GGUF file (default: the checkpoint folder's name)" };
        var command = new Command("export", "Write a checkpoint as GGUF (llama architecture, with its tokenizer) and/or as a Hugging Face folder.") { gguf, hf, model, type, dtype, name };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            string? ggufPath = parseResult.GetValue(gguf), hfFolder = parseResult.GetValue(hf);
            if (ggufPath is null && hfFolder is null) throw new ArgumentException("export needs --gguf FILE or --hf FOLDER (or both)");
            var weightType = ParseType(parseResult.GetValue(type)!);
            bool bfloat16 = parseResult.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "f32" or "float32" => false,
                "bf16" or "bfloat16" => true,
                var other => throw new ArgumentException($"--dtype must be f32 or bf16, got '{other}'"),
            };
            string folder = Checkpoint.Resolve(parseResult.GetValue(model)!);
            var transformer = Checkpoint.Load(folder);
            if (transformer.QuantizedType is { } quantized)
            {
                transformer = Lora.MergedFloat(transformer);
                Console.WriteLine($"{folder}: weights held as {GgmlTypes.Name((uint)quantized)}, dequantised to float32 for export");
            }
            var config = transformer.Config;
            if (ggufPath is not null)
            {
                var tokenizer = File.Exists(Path.Combine(folder, Checkpoint.TokenizerFileName)) ? Tokenizer.Load(folder) : null;
                string modelName = parseResult.GetValue(name) ?? new DirectoryInfo(Path.GetFullPath(parseResult.GetValue(model)!)).Name;
                LlamaGguf.Export(ggufPath, transformer, tokenizer, weightType, modelName);
                Console.WriteLine($"wrote {ggufPath}: {LlamaGguf.ArchitectureOf(config)}, {config.Layers} layers, dim {config.Dim}, vocab {config.VocabSize}, " +
                    $"{transformer.Parameters.Count} tensors as {parseResult.GetValue(type)}, {new FileInfo(ggufPath).Length / 1e6:F1} MB" +
                    (tokenizer is null ? ", no tokenizer" : ""));
            }
            if (hfFolder is not null)
            {
                HuggingFaceFolder.Export(hfFolder, transformer, folder, bfloat16);
                Console.WriteLine($"wrote {hfFolder}: {config.Architecture}, {config.Layers} layers, dim {config.Dim}, vocab {config.VocabSize}, " +
                    $"{SafeTensors.ModelFileName} in {(bfloat16 ? "bf16" : "f32")} {new FileInfo(Path.Combine(hfFolder, SafeTensors.ModelFileName)).Length / 1e6:F1} MB, " +
                    $"{string.Join(", ", HuggingFaceFolder.CopiedFiles.Where(f => File.Exists(Path.Combine(hfFolder, f))))}");
            }
            return 0;
        }));
        return command;
    }

    static GgmlType ParseType(string text) => text.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "q8_0" or "q8" => GgmlType.Q8_0,
        _ => throw new ArgumentException($"--type must be f32, f16 or q8_0, got '{text}'"),
    };
}
