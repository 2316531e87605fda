using Loom.IO;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Loom.Text;

/// <summary>Reads and writes Hugging Face <c>tokenizer.json</c> files.</summary>
internal static partial class TokenizerJson
{
    private static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void WriteByteLevelBpe(ByteLevelBpeTokenizer tokenizer, string directory)
    {
        var tokens = tokenizer.Tokens;
        Write(directory, writer =>
        {
            WriteHeader(writer);
            writer.WriteStartArray("added_tokens");
            foreach (var (content, id) in tokenizer.SpecialTokenIds.OrderBy(pair => pair.Value))
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", id);
                writer.WriteString("content", content);
                writer.WriteBoolean("single_word", false);
                writer.WriteBoolean("lstrip", false);
                writer.WriteBoolean("rstrip", false);
                writer.WriteBoolean("normalized", false);
                writer.WriteBoolean("special", true);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteNull("normalizer");
            WriteByteLevelComponent(writer, "pre_tokenizer", trimOffsets: true);
            WriteByteLevelComponent(writer, "post_processor", trimOffsets: false);
            WriteByteLevelComponent(writer, "decoder", trimOffsets: true);
            WriteModelStart(writer);
            writer.WriteStartObject("vocab");
            for (var id = 0; id < tokens.Count; id++)
            {
                if (!tokenizer.IsSpecial(id))
                {
                    writer.WriteNumber(tokens[id], id);
                }
            }
            writer.WriteEndObject();
            writer.WriteStartArray("merges");
            foreach (var (left, right) in tokenizer.Merges)
            {
                writer.WriteStringValue(tokens[left] + " " + tokens[right]);
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndObject();
        });
    }

    public static void WriteChar(CharTokenizer tokenizer, string directory)
    {
        var tokens = tokenizer.Tokens;
        Write(directory, writer =>
        {
            WriteHeader(writer);
            writer.WriteStartArray("added_tokens");
            writer.WriteEndArray();
            writer.WriteNull("normalizer");
            writer.WriteNull("pre_tokenizer");
            writer.WriteNull("post_processor");
            writer.WriteStartObject("decoder");
            writer.WriteString("type", "Fuse");
            writer.WriteEndObject();
            WriteModelStart(writer);
            writer.WriteStartObject("vocab");
            for (var id = 0; id < tokens.Count; id++)
            {
                writer.WriteNumber(tokens[id], id);
            }
            writer.WriteEndObject();
            writer.WriteStartArray("merges");
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndObject();
        });
    }

    /// <summary>The largest tokenizer.json read (256 MiB; a 256k-token vocabulary with its merges is about 20 MB).</summary>
    public const long MaxFileBytes = 256L << 20;

    public static ITokenizer Read(string file)
    {
        JsonDocument document;
        byte[] bytes;
        try
        {
            long length = new FileInfo(file).Length;
            if (length > MaxFileBytes) throw new InvalidDataException($"{file}: {length:N0} bytes; a tokenizer.json is at most {MaxFileBytes >> 20} MiB");
            bytes = File.ReadAllBytes(file);
            if (!System.Text.Unicode.Utf8.IsValid(bytes))
            {
                throw new InvalidDataException($"{file}: not valid UTF-8");
            }
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"{file}: not valid JSON ({error.Message.ReplaceLineEndings(" ")})");
        }
        try
        {
            using (document)
            {
                return Read(file, document.RootElement, bytes);
            }
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json decodes strings lazily: an escaped lone surrogate (\ud800) surfaces where a string is read.
            throw new InvalidDataException($"{file}: a string is not valid text (an unpaired UTF-16 surrogate escape)");
        }
    }

    private static ITokenizer Read(string file, JsonElement root, byte[] bytes)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{file}: no \"model\" object");
        }
        var type = !model.TryGetProperty("type", out var typeElement) ? "BPE"
            : typeElement.ValueKind == JsonValueKind.String ? typeElement.GetString() : typeElement.GetRawText();
        if (type != "BPE")
        {
            throw new InvalidDataException($"{file}: model.type {Quote(type)} is not supported (only BPE)");
        }
        if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{file}: model.vocab is missing");
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id))
            {
                throw new InvalidDataException($"{file}: model.vocab[{Quote(entry.Name)}] is not an integer id");
            }
            vocabulary[entry.Name] = id;
        }
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesElement) && mergesElement.ValueKind == JsonValueKind.Array)
        {
            var index = 0;
            foreach (var merge in mergesElement.EnumerateArray())
            {
                merges.Add(ParseMerge(file, index++, merge));
            }
        }
        var added = ReadAddedTokens(file, root);
        try
        {
            if (root.TryGetProperty("pre_tokenizer", out var preTokenizer) && IsLoomByteLevel(root, model, preTokenizer, added))
            {
                var specials = new Dictionary<string, int>(StringComparer.Ordinal);
                foreach (var token in added)
                {
                    if (!vocabulary.TryGetValue(token.Content, out var vocabId) || vocabId == token.Id)
                    {
                        vocabulary.Remove(token.Content);
                        specials[token.Content] = token.Id;
                    }
                }
                return new ByteLevelBpeTokenizer(vocabulary, merges, specials);
            }
            if (IsHuggingFaceBpe(root, model))
            {
                return new HuggingFaceTokenizer(ReadPipeline(root, model, vocabulary, merges, added), bytes);
            }
            if (merges.Count == 0 && added.Count == 0 && vocabulary.Keys.All(IsSingleRune))
            {
                var characters = vocabulary.OrderBy(pair => pair.Value).Select(pair => Rune.GetRuneAt(pair.Key, 0)).ToList();
                var tokenizer = new CharTokenizer(characters);
                foreach (var (token, id) in vocabulary)
                {
                    if (tokenizer.TokenToId(token) != id)
                    {
                        throw new InvalidDataException($"model.vocab[{Quote(token)}]: character ids must be in code-point order");
                    }
                }
                return tokenizer;
            }
        }
        catch (InvalidDataException error)
        {
            throw new InvalidDataException($"{file}: {error.Message.ReplaceLineEndings(" ")}");
        }
        throw new InvalidDataException($"{file}: only byte-level BPE and character vocabularies are supported, and SentencePiece-style BPE "
            + "(model.byte_fallback, a Metaspace pre_tokenizer or a Prepend normalizer)");
    }

    private static List<AddedToken> ReadAddedTokens(string file, JsonElement root)
    {
        var added = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            return added;
        }
        var index = 0;
        foreach (var token in list.EnumerateArray())
        {
            if (token.ValueKind != JsonValueKind.Object
                || !token.TryGetProperty("content", out var contentElement) || contentElement.ValueKind != JsonValueKind.String
                || !token.TryGetProperty("id", out var idElement) || idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out var id))
            {
                throw new InvalidDataException($"{file}: added_tokens[{index}] needs a string \"content\" and an integer \"id\"");
            }
            var path = $"added_tokens[{index}]";
            added.Add(new AddedToken(id, contentElement.GetString()!,
                Special: OptionalBool(token, "special", path, fallback: false),
                Normalized: OptionalBool(token, "normalized", path, fallback: false),
                LStrip: OptionalBool(token, "lstrip", path, fallback: false),
                RStrip: OptionalBool(token, "rstrip", path, fallback: false),
                SingleWord: OptionalBool(token, "single_word", path, fallback: false)));
            index++;
        }
        return added;
    }

    private static (string, string) ParseMerge(string file, int index, JsonElement merge)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            var text = merge.GetString()!;
            var space = text.Length > 1 ? text.IndexOf(' ', 1) : -1;
            if (space > 0)
            {
                return (text[..space], text[(space + 1)..]);
            }
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
            && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
        {
            return (merge[0].GetString() ?? "", merge[1].GetString() ?? "");
        }
        throw new InvalidDataException($"{file}: model.merges[{index}] is not \"left right\" or [left, right]");
    }

    /// <summary>A name from the file as a JSON string literal: quoted, with line breaks and control characters escaped, so an error stays one line.</summary>
    internal static string Quote(string? name) => JsonSerializer.Serialize(name, QuoteOptions);

    static readonly JsonSerializerOptions QuoteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static bool IsSingleRune(string token) =>
        token.Length > 0 && Rune.TryGetRuneAt(token, 0, out var rune) && rune.Utf16SequenceLength == token.Length;

    private static void WriteHeader(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("version", "1.0");
        writer.WriteNull("truncation");
        writer.WriteNull("padding");
    }

    private static void WriteModelStart(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("model");
        writer.WriteString("type", "BPE");
        writer.WriteNull("dropout");
        writer.WriteNull("unk_token");
        writer.WriteNull("continuing_subword_prefix");
        writer.WriteNull("end_of_word_suffix");
        writer.WriteBoolean("fuse_unk", false);
        writer.WriteBoolean("byte_fallback", false);
        writer.WriteBoolean("ignore_merges", false);
    }

    private static void WriteByteLevelComponent(Utf8JsonWriter writer, string name, bool trimOffsets)
    {
        writer.WriteStartObject(name);
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", false);
        writer.WriteBoolean("trim_offsets", trimOffsets);
        writer.WriteBoolean("use_regex", true);
        writer.WriteEndObject();
    }

    private static void Write(string directory, Action<Utf8JsonWriter> write)
    {
        Directory.CreateDirectory(directory);
        AtomicFile.Write(Path.Combine(directory, Tokenizer.FileName), stream =>
        {
            using var writer = new Utf8JsonWriter(stream, WriterOptions);
            write(writer);
        });
    }
}
