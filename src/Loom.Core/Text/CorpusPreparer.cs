using Loom.IO;
using System.Diagnostics;
using System.Text.Json;

namespace Loom.Text;

/// <summary>Options of <see cref="CorpusPreparer.Prepare"/>; null or default means the default.</summary>
/// <param name="Corpus">A file, folder, glob, or <c>dotnet-docs</c>.</param>
/// <param name="Tokenizer">A folder holding tokenizer.json, <c>char</c>, or <c>bpe:N</c> (train one of vocabulary N on the corpus).</param>
/// <param name="OutputDirectory">The token folder to write (replaced if it already holds a token folder).</param>
public sealed record PrepareOptions(string Corpus, string Tokenizer, string OutputDirectory)
{
    /// <summary>Fraction of tokens, at the end of the stream, held out for validation.</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>BPE training reads at most about this many bytes of the corpus (evenly spaced blocks).</summary>
    public long TokenizerSampleBytes { get; init; } = 64L << 20;
}

/// <summary>
/// Turns a corpus into a token folder (<see cref="TokenShards"/>): trains or loads the tokenizer, then
/// streams every document through it into <c>tokens.bin</c>, appending the end-of-text id after each
/// document when the tokenizer has one. Everything is written into a temporary sibling folder that is
/// renamed into place at the end, so a failed run leaves nothing behind.
/// </summary>
public static class CorpusPreparer
{
    private const int WriteBatchTokens = 1 << 16;

    /// <summary>Prepares the corpus and returns the metadata written.</summary>
    public static TokenShardsInfo Prepare(PrepareOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        if (options.ValidationFraction is < 0 or >= 1 || double.IsNaN(options.ValidationFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"PrepareOptions.ValidationFraction {options.ValidationFraction} is outside [0, 1)");
        }
        var output = Path.GetFullPath(options.OutputDirectory);
        CheckReplaceable(output);
        var corpus = TextCorpus.Open(options.Corpus);
        foreach (var skipped in corpus.Skipped)
        {
            log?.Invoke($"skipped {skipped.Path}: {skipped.Reason}");
        }
        var tokenizer = CreateTokenizer(corpus, options.Tokenizer, options.TokenizerSampleBytes, log, cancellationToken);
        var dataType = tokenizer.VocabSize <= 65536 ? "uint16" : "int32";

        var parent = Path.GetDirectoryName(output.TrimEnd(Path.DirectorySeparatorChar)) ?? ".";
        Directory.CreateDirectory(parent);
        var temporary = Path.Combine(parent, "." + Path.GetFileName(output.TrimEnd(Path.DirectorySeparatorChar)) + ".tmp-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temporary);
        try
        {
            var stopwatch = Stopwatch.StartNew();
            var perFile = new Dictionary<string, long>(StringComparer.Ordinal);
            var fileOrder = new List<string>();
            long tokenCount = 0;
            long documents = 0;
            using (var stream = new FileStream(Path.Combine(temporary, TokenShards.TokenFileName), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var ids = new List<int>(WriteBatchTokens * 2);
                var bytes = new byte[(WriteBatchTokens * 2 + 1024) * 4];
                foreach (var document in corpus.Documents(cancellationToken))
                {
                    long documentTokens = 0;
                    foreach (var chunk in document.Chunks)
                    {
                        tokenizer.Encode(chunk, ids);
                        if (ids.Count >= WriteBatchTokens)
                        {
                            documentTokens += Flush(stream, ids, dataType, ref bytes);
                        }
                    }
                    if (tokenizer.EosId is { } eos && (documentTokens > 0 || ids.Count > 0))
                    {
                        ids.Add(eos);
                    }
                    documentTokens += Flush(stream, ids, dataType, ref bytes);
                    if (documentTokens > 0)
                    {
                        documents++;
                    }
                    if (!perFile.ContainsKey(document.SourceFile))
                    {
                        fileOrder.Add(document.SourceFile);
                    }
                    perFile[document.SourceFile] = perFile.GetValueOrDefault(document.SourceFile) + documentTokens;
                    tokenCount += documentTokens;
                }
                stream.Flush(flushToDisk: true);
            }
            if (tokenCount == 0)
            {
                throw new InvalidDataException($"{options.Corpus}: corpus is empty (no tokens)");
            }
            var trainTokens = (long)(tokenCount * (1 - options.ValidationFraction));
            var info = new TokenShardsInfo
            {
                DataType = dataType,
                Tokenizer = options.Tokenizer,
                VocabSize = tokenizer.VocabSize,
                TokenCount = tokenCount,
                TrainTokens = trainTokens,
                ValidationFraction = options.ValidationFraction,
                DocumentSeparator = tokenizer.EosId,
                Documents = documents,
                Corpus = options.Corpus,
                Files = [.. fileOrder.Select(file => new TokenShardFile(file, perFile[file]))],
                Skipped = corpus.Skipped,
            };
            tokenizer.Save(temporary);
            AtomicFile.Write(Path.Combine(temporary, TokenShards.InfoFileName), stream => JsonSerializer.Serialize(stream, info, TokenShards.JsonOptions));
            MoveIntoPlace(temporary, output);
            log?.Invoke($"wrote {tokenCount:N0} tokens ({trainTokens:N0} train, {tokenCount - trainTokens:N0} validation) from {documents:N0} documents to {output} in {stopwatch.Elapsed.TotalSeconds:F1} s");
            return info;
        }
        catch
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
            throw;
        }
    }

    /// <summary>
    /// Makes the tokenizer a spec names: <c>char</c> (all characters of the corpus), <c>bpe:N</c>
    /// (byte-level BPE of vocabulary N trained on a sample of at most <paramref name="sampleBytes"/>),
    /// or a folder holding tokenizer.json.
    /// </summary>
    public static ITokenizer CreateTokenizer(TextCorpus corpus, string specification, long sampleBytes, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        var stopwatch = Stopwatch.StartNew();
        if (specification == "char")
        {
            var characters = new HashSet<System.Text.Rune>();
            foreach (var document in corpus.Documents(cancellationToken))
            {
                foreach (var chunk in document.Chunks)
                {
                    CharTokenizer.AddCharacters(chunk, characters);
                }
            }
            var tokenizer = new CharTokenizer(characters);
            if (tokenizer.VocabSize == 0)
            {
                throw new InvalidDataException($"{corpus.Specification}: corpus is empty (no characters)");
            }
            log?.Invoke($"tokenizer: {tokenizer.VocabSize} characters in {stopwatch.Elapsed.TotalSeconds:F1} s");
            return tokenizer;
        }
        if (specification.StartsWith("bpe:", StringComparison.Ordinal))
        {
            if (!int.TryParse(specification.AsSpan(4), out var vocabSize))
            {
                throw new ArgumentException($"PrepareOptions.Tokenizer {specification}: expected bpe:N with N an integer");
            }
            var minimum = 256 + SpecialTokens.Default.Count;
            if (vocabSize < minimum || vocabSize > 1 << 20)
            {
                throw new ArgumentException($"PrepareOptions.Tokenizer {specification}: vocabulary size must be in [{minimum}, {1 << 20}]");
            }
            var trainer = new BpeTrainer();
            foreach (var text in corpus.Sample(sampleBytes, cancellationToken))
            {
                trainer.Add(text);
            }
            if (trainer.CharacterCount == 0)
            {
                throw new InvalidDataException($"{corpus.Specification}: corpus is empty (no characters)");
            }
            var bpe = trainer.Build(vocabSize, cancellationToken: cancellationToken);
            log?.Invoke($"tokenizer: byte-level BPE, {bpe.VocabSize} ids ({bpe.Merges.Count} merges) trained on {trainer.CharacterCount:N0} characters in {stopwatch.Elapsed.TotalSeconds:F1} s");
            return bpe;
        }
        if (Directory.Exists(specification) || File.Exists(specification))
        {
            return Tokenizer.Load(specification);
        }
        throw new FileNotFoundException($"PrepareOptions.Tokenizer {specification}: not a folder with {Tokenizer.FileName}, 'char' or 'bpe:N'", specification);
    }

    private static long Flush(Stream stream, List<int> ids, string dataType, ref byte[] bytes)
    {
        var count = ids.Count;
        var width = dataType == "uint16" ? 2 : 4;
        if (bytes.Length < count * width)
        {
            bytes = new byte[count * width];
        }
        for (var i = 0; i < count; i++)
        {
            if (width == 2)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), checked((ushort)ids[i]));
            }
            else
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), ids[i]);
            }
        }
        stream.Write(bytes, 0, count * width);
        ids.Clear();
        return count;
    }

    // An existing output folder is replaced only if it is empty or a token folder itself.
    private static void CheckReplaceable(string output)
    {
        if (File.Exists(output))
        {
            throw new IOException($"{output}: PrepareOptions.OutputDirectory is a file, expected a folder");
        }
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()
            && !File.Exists(Path.Combine(output, TokenShards.InfoFileName)))
        {
            throw new IOException($"{output}: PrepareOptions.OutputDirectory exists and is not a token folder; choose an empty or new folder");
        }
    }

    private static void MoveIntoPlace(string temporary, string output)
    {
        if (!Directory.Exists(output))
        {
            Directory.Move(temporary, output);
            return;
        }
        var old = temporary + ".old";
        Directory.Move(output, old);
        Directory.Move(temporary, output);
        Directory.Delete(old, recursive: true);
    }
}
