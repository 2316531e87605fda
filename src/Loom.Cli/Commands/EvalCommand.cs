using System.CommandLine;
using Loom.Evaluation;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Cli.Commands;

/// <summary><c>loom eval</c>: measurements of a trained model.</summary>
internal static class EvalCommand
{
    internal static Command Create()
    {
        var command = new Command("eval", "Evaluate a model.");
        command.Subcommands.Add(CreatePerplexity());
        return command;
    }

    static Command CreatePerplexity()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder (or a `loom pretrain` output folder)", Required = true };
        var data = new Option<string>("--data") { Description = "A text file, or a token shards folder from `loom prepare` (its validation split is used)", Required = true };
        var maxTokens = new Option<long>("--max-tokens") { Description = "Evaluate at most this many tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "Windows per forward pass", DefaultValueFactory = _ => 8 };
        var threads = SharedOptions.Threads();
        var command = new Command("perplexity", "Loss, perplexity and bits per byte of a model on held-out text.") { model, data, maxTokens, batch, threads };
        command.SetAction(parseResult => UserErrors.Run(() =>
        {
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            int batchSize = parseResult.GetValue(batch);
            if (batchSize < 1) throw new ArgumentException($"--batch must be positive, got {batchSize}");
            long limit = parseResult.GetValue(maxTokens);
            if (limit < 0) throw new ArgumentException($"--max-tokens must be ≥ 0, got {limit}");
            using var compute = new ComputeContext(threadCount);

            string folder = Checkpoint.Resolve(parseResult.GetValue(model)!);
            var transformer = Checkpoint.Load(folder);
            var tokenizer = Tokenizer.Load(folder);
            string path = parseResult.GetValue(data)!;
            int[] tokens;
            if (Directory.Exists(path))
            {
                using var shards = TokenShards.Open(path);
                if (shards.Tokenizer.VocabSize != tokenizer.VocabSize)
                    throw new InvalidDataException($"{path}: the data's tokenizer has {shards.Tokenizer.VocabSize} tokens, the model's {tokenizer.VocabSize}");
                long count = limit > 0 ? Math.Min(limit, shards.Validation.Length) : shards.Validation.Length;
                if (count > Array.MaxLength) throw new ArgumentException($"{path}: {count} validation tokens; pass --max-tokens");
                tokens = new int[count];
                shards.Validation.Read(0, tokens);
            }
            else if (File.Exists(path))
            {
                tokens = tokenizer.Encode(File.ReadAllText(path));
                if (limit > 0 && tokens.Length > limit) tokens = tokens[..(int)limit];
            }
            else
            {
                throw new FileNotFoundException($"{path}: no such file or folder");
            }
            if (tokens.Length < 2) throw new InvalidDataException($"{path}: {tokens.Length} tokens, at least 2 are needed");
            var result = Perplexity.Evaluate(transformer, tokenizer, tokens, batchSize, compute);
            Console.WriteLine($"tokens {result.Tokens:N0}, bytes {result.Bytes:N0}");
            Console.WriteLine($"loss {result.Loss:F4} nats/token, perplexity {result.Perplexity:F3}, {result.BitsPerByte:F4} bits/byte");
            return 0;
        }));
        return command;
    }
}
