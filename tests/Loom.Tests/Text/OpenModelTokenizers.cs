using Loom.Text;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loom.Tests.Text;

/// <summary>
/// tokenizer.json files in the exact structure of the open model families (Llama 3, Qwen2, SmolLM2,
/// Llama 2, Mistral), with vocabularies trained here on Tiny Shakespeare plus code-like and non-ASCII lines
/// (no real tokenizer file can be downloaded), written once into a temporary folder.
/// </summary>
public sealed class OpenModelTokenizers : IDisposable
{
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Whole words put in the byte-level vocabularies without merges that build them, so only ignore_merges finds them.</summary>
    public static readonly string[] WholeWords = [" zyzzyva", " qwertyuiop", " 宇宙", "123", "456"];

    /// <summary>Lines that exercise what Shakespeare lacks.</summary>
    public static readonly string[] ExtraLines =
    [
        "Café naïve façade — résumé, crème brûlée à la mode.",
        "Größe, übermäßig, Straße; ¿Dónde está el niño? ¡Olé!",
        "Ελληνικά κείμενα και кириллица тоже.",
        "東京は日本の首都です。北京是中国的首都。",
        "한국어 문장도 있습니다.",
        "Emoji: 😀😃 👍🏽 👨‍👩‍👧 ❤️ 🚀rocket 😀abc x😀y",
        "Math bold 𝐀𝐁𝐂 and 𝟎𝟏𝟐 digits, 𠀀𠀁 rare Han, 𝐀bc mixed.",
        "Numbers 1234567890 3.14159 2026-12-02 +1 (555) 010-9999 ١٢٣٤ ½ Ⅻ",
        "I'm sure you're right, we'll see; they've gone, he'd said, it's JOHN'S, DON'T, x'S y'Ll z'Ve",
        "  leading spaces, trailing spaces   ",
        "tabs\tand\t\tmore\ttabs",
        "multiple\n\nnewlines\r\nand CRLF\r\n",
        "    indented code line",
        "for (int i = 0; i < n; i++) { sum += values[i] * 2; }",
        "def f(x):\n    return x ** 2  # square\n",
        "<div class=\"main\">Hello &amp; welcome</div>",
        "SELECT name, COUNT(*) FROM users WHERE id > 42 GROUP BY name;",
        @"path/to/file.txt C:\Users\loom\data.json https://example.com/a?b=c&d=e",
        "décomposé: e\u0301 a\u0300 n\u0303 (combining marks)",
        "zyzzyva qwertyuiop 宇宙 whole words, zyzzyva again",
        "nbsp\u00A0here and\u2003em space and ideographic\u3000space",
        "a    b     c      d",
        "...!!!???---___*** ~~~ ``` \"\"\" '''",
        "ﬁle ligature and ＦＵＬＬＷＩＤＴＨ letters",
    ];

    private readonly string directory = TestData.NewTemporaryDirectory();

    public OpenModelTokenizers()
    {
        Shakespeare = File.ReadAllText(TestData.TinyShakespeare);
        var corpus = new List<string> { Shakespeare };
        corpus.AddRange(ExtraLines.Where((_, index) => index % 2 == 0)); // half the extra lines stay unseen
        var byteLevel = BpeTrainer.Train(corpus, 3000, new BpeTrainerOptions { SpecialTokens = [] });
        var (pieces, pieceMerges) = TrainSentencePiece([Shakespeare[..200_000], .. ExtraLines.Where((_, index) => index % 2 == 0)], 700);

        Llama3 = Write("llama3", Llama3Json(byteLevel));
        Qwen2 = Write("qwen2", Qwen2Json(byteLevel));
        SmolLm2 = Write("smollm2", SmolLm2Json(byteLevel));
        Llama2 = Write("llama2", SentencePieceJson(pieces, pieceMerges, metaspace: false));
        Mistral = Write("mistral", SentencePieceJson(pieces, pieceMerges, metaspace: true));
    }

    public string Shakespeare { get; }

    /// <summary>Paths of the tokenizer.json files.</summary>
    public string Llama3 { get; }

    public string Qwen2 { get; }

    public string SmolLm2 { get; }

    public string Llama2 { get; }

    public string Mistral { get; }

    /// <summary>1,000 lines: random Shakespeare lines and the extra lines, some joined, some with a newline.</summary>
    public IReadOnlyList<string> Lines(int seed)
    {
        var lines = Shakespeare.Split('\n');
        var random = new Random(seed);
        var result = new List<string>(1000);
        for (var i = 0; i < 1000; i++)
        {
            var line = i % 3 == 0 ? ExtraLines[random.Next(ExtraLines.Length)] : lines[random.Next(lines.Length)];
            if (random.Next(4) == 0)
            {
                line += " " + (random.Next(2) == 0 ? ExtraLines[random.Next(ExtraLines.Length)] : lines[random.Next(lines.Length)]);
            }
            result.Add(line + (random.Next(3) == 0 ? "\n" : ""));
        }
        return result;
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string Write(string name, JsonObject json)
    {
        var folder = Path.Combine(directory, name);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, Tokenizer.FileName);
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        return path;
    }

    private static JsonObject Llama3Json(ByteLevelBpeTokenizer trained)
    {
        var (vocab, merges) = ByteLevelVocabulary(trained, arrayMerges: false);
        var size = vocab.Count;
        string[] specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. specials.Select((content, index) => AddedToken(size + index, content, special: true))]),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Llama3Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["processors"] = new JsonArray(
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                    Template("<|begin_of_text|>", size)),
            },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = Model(vocab, merges, unknown: null, byteFallback: false, ignoreMerges: true),
        };
    }

    private static JsonObject Qwen2Json(ByteLevelBpeTokenizer trained)
    {
        var (vocab, merges) = ByteLevelVocabulary(trained, arrayMerges: true);
        var size = vocab.Count;
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(
                AddedToken(size, "<|endoftext|>", special: true),
                AddedToken(size + 1, "<|im_start|>", special: true),
                AddedToken(size + 2, "<|im_end|>", special: true),
                AddedToken(size + 3, "<tool_call>", special: false),
                AddedToken(size + 4, "</tool_call>", special: false),
                AddedToken(size + 5, "<mask>", special: false, lstrip: true, rstrip: true),
                AddedToken(size + 6, "Café", special: false, normalized: true),
                AddedToken(size + 7, "<sw>", special: false, singleWord: true)),
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Qwen2Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["model"] = Model(vocab, merges, unknown: null, byteFallback: false, ignoreMerges: false),
        };
    }

    private static JsonObject SmolLm2Json(ByteLevelBpeTokenizer trained)
    {
        var (vocab, merges) = ByteLevelVocabulary(trained, arrayMerges: false);
        var size = vocab.Count;
        string[] specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>"];
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. specials.Select((content, index) => AddedToken(size + index, content, special: true))]),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Digits", ["individual_digits"] = true },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = Model(vocab, merges, unknown: null, byteFallback: false, ignoreMerges: false),
        };
    }

    private static JsonObject SentencePieceJson(IReadOnlyList<string> pieces, IReadOnlyList<(string Left, string Right)> merges, bool metaspace)
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (var b = 0; b < 256; b++)
        {
            vocab[$"<0x{b:X2}>"] = 3 + b;
        }
        foreach (var piece in pieces)
        {
            vocab[piece] = vocab.Count;
        }
        var mergeList = new JsonArray([.. merges.Select(merge => metaspace ? (JsonNode)new JsonArray(merge.Left, merge.Right) : merge.Left + " " + merge.Right)]);
        var model = new JsonObject
        {
            ["type"] = "BPE",
            ["dropout"] = null,
            ["unk_token"] = "<unk>",
            ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null,
            ["fuse_unk"] = true,
            ["byte_fallback"] = true,
            ["ignore_merges"] = false,
            ["vocab"] = vocab,
            ["merges"] = mergeList,
        };
        JsonNode? normalizer = metaspace ? null : new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(
                new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
        };
        JsonNode? preTokenizer = metaspace ? new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false } : null;
        JsonNode decoder = metaspace
            ? new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" }),
            }
            : new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(AddedToken(0, "<unk>", special: true), AddedToken(1, "<s>", special: true), AddedToken(2, "</s>", special: true)),
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = Template("<s>", 1),
            ["decoder"] = decoder,
            ["model"] = model,
        };
    }

    // The trained byte-level vocabulary, its merges, and the whole words that no merge builds.
    private static (JsonObject Vocab, JsonArray Merges) ByteLevelVocabulary(ByteLevelBpeTokenizer trained, bool arrayMerges)
    {
        var vocab = new JsonObject();
        for (var id = 0; id < trained.VocabSize; id++)
        {
            vocab[trained.IdToToken(id)!] = id;
        }
        foreach (var word in WholeWords)
        {
            var spelled = ByteLevel.BytesToTokenString(Encoding.UTF8.GetBytes(word));
            if (!vocab.ContainsKey(spelled))
            {
                vocab[spelled] = vocab.Count;
            }
        }
        var merges = new JsonArray([.. trained.Merges.Select(merge => arrayMerges
            ? (JsonNode)new JsonArray(trained.IdToToken(merge.Left), trained.IdToToken(merge.Right))
            : trained.IdToToken(merge.Left) + " " + trained.IdToToken(merge.Right))]);
        return (vocab, merges);
    }

    private static JsonObject Model(JsonObject vocab, JsonArray merges, string? unknown, bool byteFallback, bool ignoreMerges) => new()
    {
        ["type"] = "BPE",
        ["dropout"] = null,
        ["unk_token"] = unknown,
        ["continuing_subword_prefix"] = null,
        ["end_of_word_suffix"] = null,
        ["fuse_unk"] = false,
        ["byte_fallback"] = byteFallback,
        ["ignore_merges"] = ignoreMerges,
        ["vocab"] = vocab,
        ["merges"] = merges,
    };

    private static JsonObject AddedToken(int id, string content, bool special, bool normalized = false, bool lstrip = false, bool rstrip = false, bool singleWord = false) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = singleWord,
        ["lstrip"] = lstrip,
        ["rstrip"] = rstrip,
        ["normalized"] = normalized,
        ["special"] = special,
    };

    private static JsonObject Template(string bos, int bosId) => new()
    {
        ["type"] = "TemplateProcessing",
        ["single"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        ["pair"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 1 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
        ["special_tokens"] = new JsonObject
        {
            [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) },
        },
    };

    /// <summary>
    /// SentencePiece-style BPE training in miniature: words are "▁word" (a space becomes ▁ and starts a
    /// word), symbols are characters, and the most frequent adjacent pair is merged (ties: the smaller
    /// pair of ids). Returns the pieces (characters first, then merged pieces in merge order) and the merges.
    /// </summary>
    private static (List<string> Pieces, List<(string Left, string Right)> Merges) TrainSentencePiece(IEnumerable<string> texts, int mergeCount)
    {
        var pieces = new List<string>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int Id(string piece)
        {
            if (!ids.TryGetValue(piece, out var id))
            {
                ids[piece] = id = pieces.Count;
                pieces.Add(piece);
            }
            return id;
        }
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            foreach (var line in text.Split('\n'))
            {
                var marked = "▁" + line.Replace(' ', '▁');
                var start = 0;
                for (var i = 1; i <= marked.Length; i++)
                {
                    if (i == marked.Length || marked[i] == '▁')
                    {
                        var word = marked[start..i];
                        wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;
                        start = i;
                    }
                }
            }
        }
        foreach (var character in wordCounts.Keys.SelectMany(word => word.EnumerateRunes()).Select(rune => rune.ToString()).Distinct().Order(StringComparer.Ordinal))
        {
            Id(character);
        }
        var words = wordCounts.Select(pair => (Symbols: pair.Key.EnumerateRunes().Select(rune => ids[rune.ToString()]).ToList(), Count: pair.Value)).ToList();
        var merges = new List<(string, string)>();
        for (var step = 0; step < mergeCount; step++)
        {
            var pairCounts = new Dictionary<(int, int), long>();
            foreach (var (symbols, count) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    pairCounts[(symbols[i], symbols[i + 1])] = pairCounts.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
                }
            }
            if (pairCounts.Count == 0)
            {
                break;
            }
            var best = pairCounts.OrderByDescending(pair => pair.Value).ThenBy(pair => pair.Key.Item1).ThenBy(pair => pair.Key.Item2).First();
            if (best.Value < 2)
            {
                break;
            }
            var (left, right) = best.Key;
            var merged = Id(pieces[left] + pieces[right]);
            merges.Add((pieces[left], pieces[right]));
            foreach (var (symbols, _) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }
        return (pieces, merges);
    }
}
