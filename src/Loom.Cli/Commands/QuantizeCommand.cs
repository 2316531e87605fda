using System.CommandLine;
using Loom.Models;
using Loom.Models.Gguf;

namespace Loom.Cli.Commands;

/// <summary><c>loom quantize</c>: a checkpoint folder with its weight matrices in Q8_0, Q4_0 or Q4_K, which <c>generate</c>, <c>chat</c> and <c>serve</c> run without expanding them.</summary>
internal static class QuantizeCommand
{
    internal static Command Create()
    {
        var model = new Option<string>("--model", "--in") { Description = "Checkpoint folder to quantise (or a `loom pretrain` output folder)", Required = true };
        var output = new Option<string>("--out") { Description = "Folder to write: config.json, tokenizer.json and model.gguf (replaced if present)", Required = true };
        var type = new Option<string>("--type") { Description = "Weight type: q8_0, q4_0 or q4_k (norms stay f32)", DefaultValueFactory = _ => "q8_0" };
        var command = new Command("quantize", "Write a checkpoint with quantised weights (GGUF blocks, kept quantised when loaded).") { model, output, type };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            string text = parseResult.GetValue(type)!;
            var weightType = GgmlTypes.Parse(text) is { } parsed && GgmlTypes.IsQuantized(parsed) ? parsed
                : throw new ArgumentException($"--type must be q8_0, q4_0 or q4_k, got '{text}'");
            string folder = parseResult.GetValue(output)!;
            QuantizedLlamaGguf.QuantizeCheckpoint(parseResult.GetValue(model)!, folder, weightType);
            var transformer = Checkpoint.Load(folder);
            long bytes = new FileInfo(Path.Combine(folder, QuantizedLlamaGguf.FileName)).Length;
            long quantized = transformer.Parameters.Count(p => p.Quantized is not null);
            Console.WriteLine($"wrote {folder}: {transformer.Config.Layers} layers, dim {transformer.Config.Dim}, {quantized} of {transformer.Parameters.Count} tensors as {text.ToLowerInvariant()}, " +
                $"{QuantizedLlamaGguf.FileName} {bytes / 1e6:F1} MB ({8.0 * bytes / transformer.Config.ParameterCount:F2} bits a weight)");
            return 0;
        }));
        return command;
    }
}
