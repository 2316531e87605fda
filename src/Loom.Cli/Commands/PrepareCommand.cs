using System.CommandLine;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary><c>loom prepare --corpus PATH|dotnet-docs --tokenizer DIR|char|bpe:N --out DIR [--val-fraction 0.1]</c></summary>
internal static class PrepareCommand
{
    internal static Command Create()
    {
        var corpus = new Option<string>("--corpus") { Description = "A text file, a folder (recursive), a glob, or dotnet-docs.", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "A folder with tokenizer.json, char, or bpe:N to train one on the corpus.", Required = true };
        var output = new Option<string>("--out") { Description = "Token folder to write (tokens.bin, tokens.json, tokenizer.json).", Required = true };
        var validation = new Option<double>("--val-fraction") { Description = "Fraction of tokens at the end held out for validation.", DefaultValueFactory = _ => 0.1 };
        var sample = new Option<long>("--sample-mb") { Description = "BPE training reads at most this many MB of the corpus.", DefaultValueFactory = _ => 64 };
        var command = new Command("prepare", "Tokenize a corpus into a memory-mapped token file with a train/validation split.")
        {
            corpus, tokenizer, output, validation, sample,
        };
        command.SetAction(parseResult => TokenizerCommand.RunReportingErrors(() =>
        {
            var options = new PrepareOptions(parseResult.GetValue(corpus)!, parseResult.GetValue(tokenizer)!, parseResult.GetValue(output)!)
            {
                ValidationFraction = parseResult.GetValue(validation),
                TokenizerSampleBytes = parseResult.GetValue(sample) << 20,
            };
            CorpusPreparer.Prepare(options, Console.WriteLine);
            return 0;
        }));
        return command;
    }
}
