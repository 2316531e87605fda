using System.CommandLine;
using System.Text;
using System.Text.Json;
using Loom.IO;
using Loom.Serving;

namespace Loom.Cli.Commands;

/// <summary><c>loom extract</c>: one JSON object per input document, generated under a JSON Schema, written as JSONL with source spans.</summary>
internal static class ExtractCommand
{
    internal static Command Create()
    {
        var schema = new Option<string>("--schema") { Description = "JSON Schema file the objects must validate against", Required = true };
        var model = new Option<string?>("--model") { Description = "Checkpoint folder" };
        var gguf = new Option<string?>("--gguf") { Description = "A GGUF file, run by llama.cpp" };
        var output = new Option<string?>("--out") { Description = "JSONL file to write (default: stdout)" };
        var lines = new Option<bool>("--lines") { Description = "Each non-empty line of each input is one document (default: each file is one)" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens each answer may take at most", DefaultValueFactory = _ => 256 };
        var threads = SharedOptions.Threads();
        var inputs = new Argument<string[]>("inputs") { Description = "Input text files", Arity = ArgumentArity.OneOrMore };
        var command = new Command("extract", "Extract one JSON object per document under a JSON Schema (JSONL out, with source spans of string fields).")
            { schema, model, gguf, output, lines, maxTokens, threads, inputs };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            string schemaPath = parseResult.GetValue(schema)!;
            if (!File.Exists(schemaPath)) throw new FileNotFoundException($"{schemaPath}: no such schema file", schemaPath);
            JsonElement schemaElement;
            try { schemaElement = JsonDocument.Parse(File.ReadAllText(schemaPath)).RootElement; }
            catch (JsonException e) { throw new InvalidDataException($"{schemaPath}: not JSON ({e.Message})"); }
            var documents = new List<string>();
            foreach (var input in parseResult.GetValue(inputs)!)
            {
                if (!File.Exists(input)) throw new FileNotFoundException($"{input}: no such input file", input);
                if (parseResult.GetValue(lines)) documents.AddRange(File.ReadLines(input).Where(l => l.Trim().Length > 0));
                else documents.Add(File.ReadAllText(input));
            }
            var options = new ExtractionOptions { MaxTokens = parseResult.GetValue(maxTokens) };
            var handle = GeneratorHandle.Open(parseResult.GetValue(model), parseResult.GetValue(gguf), SharedOptions.ThreadCount(parseResult, threads));
            try
            {
                var jsonl = new StringBuilder();
                int incomplete = 0;
                foreach (var document in documents)
                {
                    var extraction = StructuredExtractor.ExtractAsync(handle.Generator, schemaElement, document, options).GetAwaiter().GetResult();
                    if (extraction.Value is null) incomplete++;
                    jsonl.Append(StructuredExtractor.ToJsonLine(extraction)).Append('\n');
                }
                if (parseResult.GetValue(output) is string path)
                    AtomicFile.Write(path, stream => stream.Write(Encoding.UTF8.GetBytes(jsonl.ToString())));
                else Console.Out.Write(jsonl.ToString());
                Console.Error.WriteLine($"[{documents.Count} documents, {documents.Count - incomplete} objects, {incomplete} cut short by --max-tokens]");
                return 0;
            }
            finally
            {
                handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }));
        return command;
    }
}
