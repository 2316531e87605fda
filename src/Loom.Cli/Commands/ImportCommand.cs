using System.CommandLine;
using Loom.Models;
using Loom.Models.Gguf;

namespace Loom.Cli.Commands;

/// <summary>
/// <c>loom import --gguf FILE</c> or <c>loom import --hf FOLDER</c>: a GGUF file (llama or qwen2 architecture) or a Hugging Face
/// model folder (Llama, SmolLM2, Qwen2, Mistral) as a Loom checkpoint folder in the Hugging Face layout.
/// </summary>
internal static class ImportCommand
{
    internal static Command Create()
    {
        var gguf = new Option<string?>("--gguf") { Description = "GGUF file to read (llama or qwen2 architecture; f32, f16 or q8_0 weights)" };
        var hf = new Option<string?>("--hf") { Description = "Hugging Face model folder to read (config.json, safetensors single or sharded in F32/F16/BF16, tokenizer.json)" };
        var output = new Option<string>("--out") { Description = "Checkpoint folder to write (config.json, model.safetensors, tokenizer.json)", Required = true };
        var command = new Command("import", "Read a GGUF file or a Hugging Face model folder into a checkpoint folder.") { gguf, hf, output };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            string? ggufPath = parseResult.GetValue(gguf), hfFolder = parseResult.GetValue(hf);
            if ((ggufPath is null) == (hfFolder is null))
                throw new ArgumentException("give one of --gguf FILE or --hf FOLDER");
            string folder = parseResult.GetValue(output)!;
            if (hfFolder is not null)
            {
                var imported = HuggingFaceFolder.Import(hfFolder, folder);
                var c = imported.Config;
                Console.WriteLine($"wrote {folder}: {c.Architecture}, {c.Layers} layers, dim {c.Dim}, vocab {c.VocabSize}, {c.ParameterCount:N0} parameters");
                return 0;
            }
            if (!File.Exists(ggufPath))
                throw new FileNotFoundException($"{ggufPath}: no such file");
            var (model, tokenizer) = LlamaGguf.Import(ggufPath!);
            if (tokenizer is null)
                throw new InvalidDataException($"{ggufPath}: no tokenizer (tokenizer.ggml.* metadata); a checkpoint needs one");
            Checkpoint.Save(folder, model, tokenizer.Save);
            var config = model.Config;
            Console.WriteLine($"wrote {folder}: {config.Layers} layers, dim {config.Dim}, vocab {config.VocabSize} ({tokenizer.GetType().Name}), {config.ParameterCount:N0} parameters");
            return 0;
        }));
        return command;
    }
}
