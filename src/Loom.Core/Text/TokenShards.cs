using System.IO.MemoryMappedFiles;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Loom.Text;

/// <summary>A file of the corpus and how many tokens it gave.</summary>
public sealed record TokenShardFile(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("tokens")] long Tokens);

/// <summary>The metadata file (<c>tokens.json</c>) of a prepared token folder.</summary>
public sealed record TokenShardsInfo
{
    /// <summary>Always "loom-tokens".</summary>
    [JsonPropertyName("format")] public string Format { get; init; } = TokenShards.FormatName;

    /// <summary>Format version.</summary>
    [JsonPropertyName("version")] public int Version { get; init; } = 1;

    /// <summary>The token file, relative to the folder.</summary>
    [JsonPropertyName("token_file")] public string TokenFile { get; init; } = TokenShards.TokenFileName;

    /// <summary>"uint16" (vocabulary up to 65,536) or "int32"; little-endian.</summary>
    [JsonPropertyName("dtype")] public string DataType { get; init; } = "uint16";

    /// <summary>How the tokenizer was made: "char", "bpe:N", or the folder it was loaded from.</summary>
    [JsonPropertyName("tokenizer")] public string Tokenizer { get; init; } = "";

    /// <summary>Vocabulary size of tokenizer.json.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }

    /// <summary>Tokens in the file.</summary>
    [JsonPropertyName("token_count")] public long TokenCount { get; init; }

    /// <summary>Tokens [0, TrainTokens) are training data; the rest are validation.</summary>
    [JsonPropertyName("train_tokens")] public long TrainTokens { get; init; }

    /// <summary>Requested fraction of tokens held out for validation.</summary>
    [JsonPropertyName("val_fraction")] public double ValidationFraction { get; init; }

    /// <summary>The end-of-text id appended after each document, or null if the tokenizer has none.</summary>
    [JsonPropertyName("document_separator")] public int? DocumentSeparator { get; init; }

    /// <summary>Number of documents (files, or dotnet-docs members).</summary>
    [JsonPropertyName("documents")] public long Documents { get; init; }

    /// <summary>The corpus as given.</summary>
    [JsonPropertyName("corpus")] public string Corpus { get; init; } = "";

    /// <summary>The files read, with their token counts.</summary>
    [JsonPropertyName("files")] public IReadOnlyList<TokenShardFile> Files { get; init; } = [];

    /// <summary>Files left out, with reasons.</summary>
    [JsonPropertyName("skipped")] public IReadOnlyList<SkippedFile> Skipped { get; init; } = [];
}

/// <summary>
/// A prepared token folder: <c>tokens.bin</c> (the whole token stream, memory-mapped),
/// <c>tokens.json</c> (metadata) and <c>tokenizer.json</c>. The first <see cref="TokenShardsInfo.TrainTokens"/>
/// tokens are <see cref="Train"/>, the rest <see cref="Validation"/> (nanoGPT's first 90% / last 10%).
/// </summary>
public sealed class TokenShards : IDisposable
{
    public const string FormatName = "loom-tokens";
    public const string TokenFileName = "tokens.bin";
    public const string InfoFileName = "tokens.json";

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly TokenFile file;

    private TokenShards(TokenShardsInfo info, ITokenizer tokenizer, TokenFile file)
    {
        Info = info;
        Tokenizer = tokenizer;
        this.file = file;
        Train = new TokenStream(file, 0, info.TrainTokens);
        Validation = new TokenStream(file, info.TrainTokens, info.TokenCount - info.TrainTokens);
    }

    public TokenShardsInfo Info { get; }

    public ITokenizer Tokenizer { get; }

    public TokenStream Train { get; }

    public TokenStream Validation { get; }

    /// <summary>Opens a folder written by <c>loom prepare</c>; errors name the file and field.</summary>
    public static TokenShards Open(string directory)
    {
        var infoPath = Path.Combine(directory, InfoFileName);
        if (!File.Exists(infoPath))
        {
            throw new FileNotFoundException($"{infoPath}: not found (is {directory} a folder written by 'loom prepare'?)", infoPath);
        }
        TokenShardsInfo info;
        try
        {
            info = JsonSerializer.Deserialize<TokenShardsInfo>(File.ReadAllBytes(infoPath), JsonOptions)
                ?? throw new InvalidDataException($"{infoPath}: empty");
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"{infoPath}: not valid ({error.Message})");
        }
        if (info.Format != FormatName)
        {
            throw new InvalidDataException($"{infoPath}: format is \"{info.Format}\", expected \"{FormatName}\"");
        }
        var bytesPerToken = info.DataType switch
        {
            "uint16" => 2,
            "int32" => 4,
            _ => throw new InvalidDataException($"{infoPath}: dtype \"{info.DataType}\" is not uint16 or int32"),
        };
        if (info.TrainTokens < 0 || info.TrainTokens > info.TokenCount)
        {
            throw new InvalidDataException($"{infoPath}: train_tokens {info.TrainTokens} is outside [0, token_count {info.TokenCount}]");
        }
        // token_file names a file beside tokens.json: a path ('../x', '/etc/passwd') would read outside the folder.
        if (info.TokenFile.Length == 0 || info.TokenFile != Path.GetFileName(info.TokenFile) || info.TokenFile is "." or "..")
        {
            throw new InvalidDataException($"{infoPath}: token_file \"{info.TokenFile}\" must be a file name in the same folder");
        }
        var tokenPath = Path.Combine(directory, info.TokenFile);
        if (!File.Exists(tokenPath))
        {
            throw new FileNotFoundException($"{tokenPath}: not found", tokenPath);
        }
        var length = new FileInfo(tokenPath).Length;
        if (length != info.TokenCount * bytesPerToken)
        {
            throw new InvalidDataException($"{tokenPath}: {length} bytes, expected {info.TokenCount} tokens of {bytesPerToken} bytes");
        }
        var tokenizer = Text.Tokenizer.Load(directory);
        return new TokenShards(info, tokenizer, new TokenFile(tokenPath, bytesPerToken, info.TokenCount));
    }

    public void Dispose() => file.Dispose();
}

/// <summary>A contiguous range of a memory-mapped token file. Reads are thread-safe.</summary>
public sealed class TokenStream
{
    private readonly TokenFile file;
    private readonly long start;

    internal TokenStream(TokenFile file, long start, long length)
    {
        this.file = file;
        this.start = start;
        Length = length;
    }

    /// <summary>Number of tokens.</summary>
    public long Length { get; }

    /// <summary>Copies tokens [offset, offset + destination.Length) into destination.</summary>
    public void Read(long offset, Span<int> destination)
    {
        if (offset < 0 || offset + destination.Length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"tokens [{offset}, {offset + destination.Length}) are outside the stream of {Length}");
        }
        file.Read(start + offset, destination);
    }

    /// <summary>One token.</summary>
    public int this[long index]
    {
        get
        {
            Span<int> one = stackalloc int[1];
            Read(index, one);
            return one[0];
        }
    }
}

/// <summary>A token file mapped read-only into memory.</summary>
internal sealed unsafe class TokenFile : IDisposable
{
    private readonly MemoryMappedFile? mapping;
    private readonly MemoryMappedViewAccessor? view;
    private readonly byte* pointer;
    private readonly int bytesPerToken;
    private readonly long tokenCount;

    public TokenFile(string path, int bytesPerToken, long tokenCount)
    {
        this.bytesPerToken = bytesPerToken;
        this.tokenCount = tokenCount;
        if (tokenCount == 0)
        {
            return;
        }
        mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* basePointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        pointer = basePointer + view.PointerOffset;
    }

    public void Read(long offset, Span<int> destination)
    {
        if (destination.Length == 0)
        {
            return;
        }
        ObjectDisposedException.ThrowIf(view is not null && view.SafeMemoryMappedViewHandle.IsClosed, this);
        if (offset < 0 || offset + destination.Length > tokenCount)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }
        if (bytesPerToken == 2)
        {
            var source = new ReadOnlySpan<ushort>(pointer + offset * 2, destination.Length);
            for (var i = 0; i < source.Length; i++)
            {
                destination[i] = source[i];
            }
        }
        else
        {
            new ReadOnlySpan<int>(pointer + offset * 4, destination.Length).CopyTo(destination);
        }
    }

    public void Dispose()
    {
        if (view is not null && !view.SafeMemoryMappedViewHandle.IsClosed)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        mapping?.Dispose();
    }
}
