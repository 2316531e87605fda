using System.CommandLine;
using System.Diagnostics;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary><c>loom tokenizer train --corpus PATH --vocab N --out DIR [--kind bpe|char]</c></summary>
internal static class TokenizerCommand
{
    internal static Command Create()
    {
        var command = new Command("tokenizer", "Train and inspect tokenizers.");
        command.Subcommands.Add(CreateTrain());
        return command;
    }

    private static Command CreateTrain()
    {
        var corpus = new Option<string>("--corpus") { Description = "A text file, a folder (recursive), a glob, or dotnet-docs.", Required = true };
        var vocab = new Option<int>("--vocab") { Description = "Vocabulary size for bpe, special tokens included (char takes every character of the corpus).", DefaultValueFactory = _ => 4096 };
        var output = new Option<string>("--out") { Description = "Folder to write tokenizer.json into.", Required = true };
        var kind = new Option<string>("--kind") { Description = "bpe (byte-level BPE) or char (one token per character).", DefaultValueFactory = _ => "bpe" };
        kind.AcceptOnlyFromAmong("bpe", "char");
        var sample = new Option<long>("--sample-mb") { Description = "BPE reads at most this many MB of the corpus.", DefaultValueFactory = _ => 64 };
        var command = new Command("train", "Train a tokenizer on a corpus and write tokenizer.json (Hugging Face format).")
        {
            corpus, vocab, output, kind, sample,
        };
        command.SetAction(parseResult => RunReportingErrors(() =>
        {
            var stopwatch = Stopwatch.StartNew();
            var textCorpus = TextCorpus.Open(parseResult.GetValue(corpus)!);
            foreach (var skipped in textCorpus.Skipped)
            {
                Console.Error.WriteLine($"skipped {skipped.Path}: {skipped.Reason}");
            }
            var specification = parseResult.GetValue(kind) == "char" ? "char" : $"bpe:{parseResult.GetValue(vocab)}";
            var tokenizer = CorpusPreparer.CreateTokenizer(textCorpus, specification, parseResult.GetValue(sample) << 20, Console.WriteLine);
            var directory = parseResult.GetValue(output)!;
            tokenizer.Save(directory);
            Console.WriteLine($"wrote {Path.Combine(directory, Tokenizer.FileName)}: {tokenizer.VocabSize} ids in {stopwatch.Elapsed.TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }

    /// <summary>Runs a command body; a user mistake (bad path, bad file, bad value) prints one line and returns 1.</summary>
    internal static int RunReportingErrors(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            var message = error is ArgumentException { ParamName: { } name } ? error.Message.Replace($" (Parameter '{name}')", "") : error.Message;
            Console.Error.WriteLine($"error: {FlagNames.Rephrase(message.ReplaceLineEndings(" "))}");
            return 1;
        }
    }
}
