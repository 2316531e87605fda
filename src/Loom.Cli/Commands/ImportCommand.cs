using System.CommandLine;
using Loom.Models;
using Loom.Models.Gguf;

namespace Loom.Cli.Commands;

/// <summary><c>loom import --gguf</c>: a llama-architecture GGUF as a Loom checkpoint folder in the Hugging Face layout.</summary>
internal static class ImportCommand
{
    internal static Command Create()
    {
        var gguf = new Option<string>("--gguf") { Description = "GGUF file to read (llama architecture; f32, f16 or q8_0 weights)", Required = true };
        var output = new Option<string>("--out") { Description = "Checkpoint folder to write (config.json, model.safetensors, tokenizer.json)", Required = true };
        var command = new Command("import", "Read a GGUF file into a checkpoint folder.") { gguf, output };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            string path = parseResult.GetValue(gguf)!;
            if (!File.Exists(path))
                throw new FileNotFoundException($"{path}: no such file");
            var (model, tokenizer) = LlamaGguf.Import(path);
            if (tokenizer is null)
                throw new InvalidDataException($"{path}: no tokenizer (tokenizer.ggml.* metadata); a checkpoint needs one");
            string folder = parseResult.GetValue(output)!;
            Checkpoint.Save(folder, model, tokenizer.Save);
            var config = model.Config;
            Console.WriteLine($"wrote {folder}: {config.Layers} layers, dim {config.Dim}, vocab {config.VocabSize} ({tokenizer.GetType().Name}), {config.ParameterCount:N0} parameters");
            return 0;
        }));
        return command;
    }
}
