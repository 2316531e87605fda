using System.Text;
using System.Text.Json;

namespace Loom.Text;

/// <summary>Reads the normalizer, pre-tokenizer, model settings, post-processor and decoder of a Hugging Face <c>tokenizer.json</c>.</summary>
internal static partial class TokenizerJson
{
    /// <summary>
    /// Loom's own byte-level files (and GPT-2's): a single ByteLevel pre-tokenizer with the GPT-2 regex,
    /// no normalizer, no template, plain BPE settings, and only special added tokens without strip rules.
    /// </summary>
    private static bool IsLoomByteLevel(JsonElement root, JsonElement model, JsonElement preTokenizer, List<AddedToken> added) =>
        TypeOf(preTokenizer) == "ByteLevel"
        && OptionalBool(preTokenizer, "use_regex", "pre_tokenizer", fallback: true)
        && !OptionalBool(preTokenizer, "add_prefix_space", "pre_tokenizer", fallback: false)
        && IsNullOrMissing(root, "normalizer")
        && (IsNullOrMissing(root, "post_processor") || TypeOf(root.GetProperty("post_processor")) == "ByteLevel")
        && (IsNullOrMissing(root, "decoder") || TypeOf(root.GetProperty("decoder")) == "ByteLevel")
        && !OptionalBool(model, "byte_fallback", "model", fallback: false)
        && !OptionalBool(model, "ignore_merges", "model", fallback: false)
        && IsNullOrMissing(model, "unk_token")
        && added.All(token => token.Special && !token.LStrip && !token.RStrip && !token.SingleWord);

    /// <summary>Byte-level BPE (a ByteLevel step anywhere) or SentencePiece-style BPE (byte fallback, Metaspace or a Prepend normalizer).</summary>
    private static bool IsHuggingFaceBpe(JsonElement root, JsonElement model) =>
        OptionalBool(model, "byte_fallback", "model", fallback: false)
        || (root.TryGetProperty("pre_tokenizer", out var preTokenizer) && (Contains(preTokenizer, "ByteLevel") || Contains(preTokenizer, "Metaspace")))
        || (root.TryGetProperty("decoder", out var decoder) && (Contains(decoder, "ByteLevel") || Contains(decoder, "Metaspace")))
        || (root.TryGetProperty("normalizer", out var normalizer) && Contains(normalizer, "Prepend"));

    private static HuggingFacePipeline ReadPipeline(JsonElement root, JsonElement model, Dictionary<string, int> vocabulary, List<(string, string)> merges, List<AddedToken> added)
    {
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() != 0)
        {
            throw new InvalidDataException("model.dropout is not supported (encoding must be deterministic)");
        }
        foreach (var name in (string[])["continuing_subword_prefix", "end_of_word_suffix"])
        {
            if (OptionalString(model, name, "model") is { Length: > 0 })
            {
                throw new InvalidDataException($"model.{name} is not supported");
            }
        }
        var options = new BpeModelOptions
        {
            UnknownToken = OptionalString(model, "unk_token", "model"),
            FuseUnknown = OptionalBool(model, "fuse_unk", "model", fallback: false),
            ByteFallback = OptionalBool(model, "byte_fallback", "model", fallback: false),
            IgnoreMerges = OptionalBool(model, "ignore_merges", "model", fallback: false),
        };
        var tokenIds = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        foreach (var token in added)
        {
            tokenIds[token.Content] = token.Id;
        }
        var (prefix, suffix) = root.TryGetProperty("post_processor", out var post) ? ReadPostProcessor(post, "post_processor", tokenIds) : ([], []);
        var preTokenizer = root.TryGetProperty("pre_tokenizer", out var pre) ? ReadPreTokenizer(pre, "pre_tokenizer") : null;
        var decoder = root.TryGetProperty("decoder", out var decoderElement) ? ReadDecoder(decoderElement, "decoder") : null;
        return new HuggingFacePipeline
        {
            Model = new BpeModel(vocabulary, merges, options),
            AddedTokens = added,
            Normalizer = root.TryGetProperty("normalizer", out var normalizer) ? ReadNormalizer(normalizer, "normalizer") : null,
            PreTokenizer = preTokenizer,
            Decoder = decoder,
            PrefixIds = prefix,
            SuffixIds = suffix,
            IsByteLevel = (root.TryGetProperty("pre_tokenizer", out var p) && Contains(p, "ByteLevel")) || (root.TryGetProperty("decoder", out var d) && Contains(d, "ByteLevel")),
            ByteFallback = options.ByteFallback,
            WordMark = WordMarkOf(root),
        };
    }

    private static TextNormalizer? ReadNormalizer(JsonElement element, string path)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return RequiredType(element, path) switch
        {
            "Sequence" => new TextNormalizer.Sequence(ReadList(element, "normalizers", path, ReadNormalizer)),
            "NFC" => UnicodeForm(NormalizationForm.FormC, path),
            "NFD" => UnicodeForm(NormalizationForm.FormD, path),
            "NFKC" => UnicodeForm(NormalizationForm.FormKC, path),
            "NFKD" => UnicodeForm(NormalizationForm.FormKD, path),
            "Prepend" => new TextNormalizer.Prepend(RequiredString(element, "prepend", path)),
            "Replace" => ReadPattern(element, path) switch
            {
                (string literal, null) => new TextNormalizer.ReplaceString(literal, RequiredString(element, "content", path)),
                (_, CodePointRegex regex) => new TextNormalizer.ReplaceRegex(regex, RequiredString(element, "content", path)),
                _ => throw new InvalidDataException($"{path}.pattern needs \"String\" or \"Regex\""),
            },
            var type => throw new InvalidDataException($"{path}.type {Quote(type)} is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace)"),
        };
    }

    private static TextNormalizer UnicodeForm(NormalizationForm form, string path) => UnicodeNormalizer.IsAvailable
        ? new TextNormalizer.Unicode(form)
        : throw new InvalidDataException($"{path}: Unicode normalization needs the ICU library (libicuuc), which is not installed");

    private static PreTokenizerStep? ReadPreTokenizer(JsonElement element, string path)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        switch (RequiredType(element, path))
        {
            case "Sequence":
                return new PreTokenizerStep.Sequence(ReadList(element, "pretokenizers", path, ReadPreTokenizer));
            case "Split":
                var behavior = ReadBehavior(element, path);
                var invert = OptionalBool(element, "invert", path, fallback: false);
                return ReadPattern(element, path) switch
                {
                    (string literal, null) => new PreTokenizerStep.StringSplit(literal, behavior, invert),
                    (_, CodePointRegex regex) => new PreTokenizerStep.RegexSplit(regex, behavior, invert),
                    _ => throw new InvalidDataException($"{path}.pattern needs \"String\" or \"Regex\""),
                };
            case "ByteLevel":
                return new PreTokenizerStep.ByteLevelStep(OptionalBool(element, "add_prefix_space", path, fallback: true), OptionalBool(element, "use_regex", path, fallback: true));
            case "Metaspace":
                return new PreTokenizerStep.MetaspaceStep(RequiredString(element, "replacement", path), ReadPrependScheme(element, path), OptionalBool(element, "split", path, fallback: true));
            case "Digits":
                return new PreTokenizerStep.DigitsStep(OptionalBool(element, "individual_digits", path, fallback: false));
            case var type:
                throw new InvalidDataException($"{path}.type {Quote(type)} is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits)");
        }
    }

    private static DecoderStep? ReadDecoder(JsonElement element, string path)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return RequiredType(element, path) switch
        {
            "Sequence" => new DecoderStep.Sequence(ReadList(element, "decoders", path, ReadDecoder)),
            "ByteLevel" => new DecoderStep.ByteLevelStep(),
            "ByteFallback" => new DecoderStep.ByteFallback(),
            "Fuse" => new DecoderStep.Fuse(),
            "Replace" => ReadPattern(element, path) switch
            {
                (string literal, null) => new DecoderStep.Replace(literal, RequiredString(element, "content", path)),
                _ => throw new InvalidDataException($"{path}.pattern: only a \"String\" pattern is supported in a decoder"),
            },
            "Strip" => new DecoderStep.Strip(RequiredChar(element, "content", path), RequiredInt(element, "start", path), RequiredInt(element, "stop", path)),
            "Metaspace" => new DecoderStep.Metaspace(RequiredString(element, "replacement", path), ReadPrependScheme(element, path)),
            var type => throw new InvalidDataException($"{path}.type {Quote(type)} is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace)"),
        };
    }

    /// <summary>The ids a TemplateProcessing post-processor puts before and after a single sequence ($A).</summary>
    private static (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement element, string path, Dictionary<string, int> tokenIds)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return ([], []);
        }
        switch (RequiredType(element, path))
        {
            case "ByteLevel":
                return ([], []);
            case "Sequence":
                var parts = ReadList(element, "processors", path, (item, itemPath) => ReadPostProcessor(item, itemPath, tokenIds));
                return ([.. parts.SelectMany(part => part.Prefix)], [.. parts.SelectMany(part => part.Suffix)]);
            case "TemplateProcessing":
                if (!element.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
                {
                    throw new InvalidDataException($"{path}.single must be a list");
                }
                List<int> prefix = [];
                List<int> suffix = [];
                var seenSequence = false;
                var index = 0;
                foreach (var piece in single.EnumerateArray())
                {
                    var piecePath = $"{path}.single[{index++}]";
                    if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("Sequence", out _))
                    {
                        seenSequence = true;
                    }
                    else if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("SpecialToken", out var special))
                    {
                        var name = RequiredString(special, "id", piecePath + ".SpecialToken");
                        (seenSequence ? suffix : prefix).AddRange(SpecialTokenIds(element, name, path, tokenIds));
                    }
                    else
                    {
                        throw new InvalidDataException($"{piecePath} must be {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
                    }
                }
                return ([.. prefix], [.. suffix]);
            case var type:
                throw new InvalidDataException($"{path}.type {Quote(type)} is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        }
    }

    private static IEnumerable<int> SpecialTokenIds(JsonElement template, string name, string path, Dictionary<string, int> tokenIds)
    {
        if (template.TryGetProperty("special_tokens", out var map) && map.ValueKind == JsonValueKind.Object
            && map.TryGetProperty(name, out var entry) && entry.ValueKind == JsonValueKind.Object
            && entry.TryGetProperty("ids", out var ids) && ids.ValueKind == JsonValueKind.Array)
        {
            return [.. ids.EnumerateArray().Select(id => id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out var value) && value >= 0 ? value
                : throw new InvalidDataException($"{path}.special_tokens[{Quote(name)}].ids must be non-negative integers"))];
        }
        return tokenIds.TryGetValue(name, out var known) ? [known]
            : throw new InvalidDataException($"{path}: special token {Quote(name)} is neither in special_tokens nor in the vocabulary");
    }

    private static (string? Literal, CodePointRegex? Regex) ReadPattern(JsonElement element, string path)
    {
        if (!element.TryGetProperty("pattern", out var pattern) || pattern.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{path}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
        }
        if (pattern.TryGetProperty("String", out _))
        {
            return (RequiredString(pattern, "String", path + ".pattern"), null);
        }
        var source = RequiredString(pattern, "Regex", path + ".pattern");
        try
        {
            return (null, CodePointRegex.FromOniguruma(source));
        }
        catch (ArgumentException error)
        {
            throw new InvalidDataException($"{path}.pattern.Regex {Quote(source)} is not a pattern .NET can run ({error.Message.ReplaceLineEndings(" ")})");
        }
    }

    private static SplitBehavior ReadBehavior(JsonElement element, string path) => RequiredString(element, "behavior", path) switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        var other => throw new InvalidDataException($"{path}.behavior {Quote(other)} is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous"),
    };

    // Newer files say prepend_scheme; older ones add_prefix_space (true = always, false = never).
    private static PrependScheme ReadPrependScheme(JsonElement element, string path)
    {
        if (OptionalString(element, "prepend_scheme", path) is { } scheme)
        {
            return scheme switch
            {
                "always" => PrependScheme.Always,
                "first" => PrependScheme.First,
                "never" => PrependScheme.Never,
                _ => throw new InvalidDataException($"{path}.prepend_scheme {Quote(scheme)} is not one of always, first, never"),
            };
        }
        return OptionalBool(element, "add_prefix_space", path, fallback: true) ? PrependScheme.Always : PrependScheme.Never;
    }

    // The SentencePiece word mark, from the decoder that turns it back into a space.
    private static string? WordMarkOf(JsonElement root)
    {
        if (!root.TryGetProperty("decoder", out var decoder))
        {
            return null;
        }
        foreach (var step in Flatten(decoder, "decoders"))
        {
            switch (TypeOf(step))
            {
                case "Metaspace" when step.TryGetProperty("replacement", out var replacement) && replacement.ValueKind == JsonValueKind.String:
                    return replacement.GetString();
                case "Replace" when step.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() == " "
                    && step.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
                    && pattern.TryGetProperty("String", out var literal) && literal.ValueKind == JsonValueKind.String:
                    return literal.GetString();
            }
        }
        return null;
    }

    private static IEnumerable<JsonElement> Flatten(JsonElement element, string listName)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            yield break;
        }
        yield return element;
        if (element.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in list.EnumerateArray())
            {
                foreach (var inner in Flatten(item, listName))
                {
                    yield return inner;
                }
            }
        }
    }

    private static bool Contains(JsonElement element, string type)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            return false;
        }
        if (TypeOf(element) == type)
        {
            return true;
        }
        foreach (var listName in (string[])["pretokenizers", "decoders", "normalizers", "processors"])
        {
            if (element.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array && list.EnumerateArray().Any(item => Contains(item, type)))
            {
                return true;
            }
        }
        return false;
    }

    private static string? TypeOf(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString() : null;

    private static string RequiredType(JsonElement element, string path) =>
        TypeOf(element) ?? throw new InvalidDataException($"{path} needs a string \"type\"");

    private static bool IsNullOrMissing(JsonElement element, string name) =>
        !element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null;

    private static List<T> ReadList<T>(JsonElement element, string name, string path, Func<JsonElement, string, T?> read)
    {
        if (!element.TryGetProperty(name, out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{path}.{name} must be a list");
        }
        var items = new List<T>();
        var index = 0;
        foreach (var item in list.EnumerateArray())
        {
            if (read(item, $"{path}.{name}[{index++}]") is { } value)
            {
                items.Add(value);
            }
        }
        return items;
    }

    private static bool OptionalBool(JsonElement element, string name, string path, bool fallback)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{path}.{name} must be true or false"),
        };
    }

    private static string? OptionalString(JsonElement element, string name, string path)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new InvalidDataException($"{path}.{name} must be a string");
    }

    private static string RequiredString(JsonElement element, string name, string path) =>
        OptionalString(element, name, path) ?? throw new InvalidDataException($"{path}.{name} is missing");

    private static char RequiredChar(JsonElement element, string name, string path) =>
        RequiredString(element, name, path) is { Length: 1 } text ? text[0] : throw new InvalidDataException($"{path}.{name} must be one character");

    private static int RequiredInt(JsonElement element, string name, string path) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) && number >= 0 ? number
            : throw new InvalidDataException($"{path}.{name} must be a non-negative integer");
}
