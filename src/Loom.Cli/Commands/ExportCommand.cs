using System.CommandLine;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary><c>loom export --gguf</c>: a checkpoint as a llama-architecture GGUF for llama.cpp, Ollama and LM Studio.</summary>
internal static class ExportCommand
{
    internal static Command Create()
    {
        var gguf = new Option<string>("--gguf") { Description = "GGUF file to write", Required = true };
        var model = new Option<string>("--model") { Description = "Checkpoint folder (or a `loom pretrain` output folder)", Required = true };
        var type = new Option<string>("--type") { Description = "Weight type: f32, f16 or q8_0 (norms stay f32)", DefaultValueFactory = _ => "f32" };
        var name = new Option<string?>("--name") { Description = "general.name in the file (default: the checkpoint folder's name)" };
        var command = new Command("export", "Write a checkpoint as GGUF (llama architecture, with its tokenizer).") { gguf, model, type, name };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            var weightType = ParseType(parseResult.GetValue(type)!);
            string folder = Checkpoint.Resolve(parseResult.GetValue(model)!);
            var transformer = Checkpoint.Load(folder);
            if (transformer.QuantizedType is { } quantized)
                throw new ArgumentException($"{folder}: the weights are held quantised ({quantized}); export reads float32 weights: export the checkpoint it was quantised from, or run its model.gguf with --gguf");
            var tokenizer = File.Exists(Path.Combine(folder, Checkpoint.TokenizerFileName)) ? Tokenizer.Load(folder) : null;
            string output = parseResult.GetValue(gguf)!;
            string modelName = parseResult.GetValue(name) ?? new DirectoryInfo(Path.GetFullPath(parseResult.GetValue(model)!)).Name;
            LlamaGguf.Export(output, transformer, tokenizer, weightType, modelName);
            var config = transformer.Config;
            Console.WriteLine($"wrote {output}: {LlamaGguf.ArchitectureOf(config)}, {config.Layers} layers, dim {config.Dim}, vocab {config.VocabSize}, " +
                $"{transformer.Parameters.Count} tensors as {parseResult.GetValue(type)}, {new FileInfo(output).Length / 1e6:F1} MB" +
                (tokenizer is null ? ", no tokenizer" : ""));
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
