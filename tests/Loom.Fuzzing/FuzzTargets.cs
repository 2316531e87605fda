using System.Text;
using Loom.Logs;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Retrieval;
using Loom.Server;
using Loom.Text;

namespace Loom.Fuzzing;

/// <summary>
/// Every parser that reads user files or request bodies, as a fuzzing target. Each one runs the
/// entry point the product uses and, where the parse succeeds, what the product does next with the
/// result (encoding with a loaded tokenizer, chunking a read document), since a parser that accepts
/// an inconsistent file pushes the crash downstream.
/// </summary>
public static class FuzzTargets
{
    static readonly string[] JsonTokens =
    [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\\udc00", "\\uffff", "null", "true", "false", "\"\"", "{}", "[]",
        "-", "1e", ".", "\u0000", "\t", "\n", "\r\n", "\ufeff", "\"a\":", "\"\":null,", "[null]", "/*", "//",
    ];

    static readonly (string, string)[] JsonNesting = [("[", "]"), ("{\"a\":", "}"), ("{\"messages\":[", "]}")];

    static readonly string Sample = "The quick brown fox, 123 jumps! Ünïcödé ☃ 🦊\n<|user|> tab\tend";

    /// <summary>All targets, in report order.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        Gguf(), SafeTensorsTarget(), Config(), TokenizerTarget(), Feedback(), Corpus(),
        Document("pdf", ".pdf", 2, isText: false, ["%PDF-1.7", "obj", "endobj", "stream", "endstream", "xref", "trailer", "startxref", "/Length 999999999", "/Type /Page", "/Kids [", "<<", ">>", "0 R", "/Filter /FlateDecode", "%%EOF", "-1", "99999999999"], [("<<", ">>"), ("[", "]")]),
        Document("html", ".html", 2, isText: true, ["<p>", "</p>", "<h1>", "<table><tr><td>", "<pre>", "<script>", "<!--", "-->", "<![CDATA[", "&amp;", "&#x0;", "&#1114112;", "<title>", "<li>", "<svg>", "<math>", "<template>"], [("<div>", "</div>"), ("<li><ul>", "</ul></li>"), ("<table><tr><td>", "</td></tr></table>"), ("<b>", "</b>")]),
        Document("csv", ".csv", 10, isText: true, ["\"", "\"\"", ",", "\n", "\r\n", "\r", ",,,,", "\"a\nb\""], []),
        Document("json", ".json", 6, isText: true, JsonTokens, JsonNesting),
        Document("jsonl", ".jsonl", 4, isText: true, JsonTokens, JsonNesting),
        Document("markdown", ".md", 2, isText: true, ["# ", "###### ", "```", "~~~", "\n\n", "    ", "- ", "> ", "| a | b |", "#######", "```cs\n"], [("> ", ""), ("- ", "")]),
        Document("text", ".txt", 6, isText: true, ["\n", "\n\n", ". ", "! ", "\t", "\u00a0", "\u2028", "\r"], []),
        Logs(),
        Request("request-chat", "POST /v1/chat/completions", body => OpenAiProtocol.ParseCompletion(body, chat: true)),
        Request("request-completion", "POST /v1/completions", body => OpenAiProtocol.ParseCompletion(body, chat: false)),
        Request("request-embeddings", "POST /v1/embeddings", body => OpenAiProtocol.ParseEmbeddings(body)),
    ];

    public static FuzzTarget Find(string name) =>
        All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"unknown fuzz target '{name}' (known: {string.Join(", ", All.Select(t => t.Name))})");

    /// <summary>A seed corpus folder: every file in tests/fuzz-corpus/TARGET, in name order.</summary>
    public static IReadOnlyList<byte[]> Seeds(string corpusRoot, FuzzTarget target)
    {
        string folder = Path.Combine(corpusRoot, target.Name);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no seed corpus for fuzz target '{target.Name}'");
        return Directory.GetFiles(folder).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
    }

    static FuzzTarget Gguf() => new()
    {
        Name = "gguf",
        Weight = 3,
        Description = "LlamaGguf.Import (GgufReader header, hyperparameters, tensors, vocabulary) of a .gguf file, then the tokenizer on a sample",
        Rejections = [typeof(GgufException)],
        Fields = FormatFields.Gguf,
        Dictionary = ["GGUF", "general.architecture", "llama", "llama.block_count", "llama.context_length", "llama.embedding_length",
            "llama.attention.head_count", "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.tokens",
            "tokenizer.ggml.merges", "general.alignment", "token_embd.weight", "output.weight", "\u0009\u0000\u0000\u0000", "\u0008\u0000\u0000\u0000",
            "\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u007f"],
        Run = (input, scratch) =>
        {
            var (model, tokenizer) = LlamaGguf.Import(scratch.File("model.gguf", input));
            if (tokenizer is not null) RoundTrip(tokenizer);
            _ = model.Config.ParameterCount;
        },
    };

    static FuzzTarget SafeTensorsTarget() => new()
    {
        Name = "safetensors",
        Weight = 10,
        Description = "SafeTensors.Read of a model.safetensors stream (8-byte length, JSON header, data)",
        Rejections = [typeof(InvalidDataException)],
        IsText = true,
        Fields = FormatFields.SafeTensors,
        Dictionary = [.. JsonTokens, "\"dtype\":", "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"shape\":", "\"data_offsets\":", "[0,0]", "[4294967296,1]", "\"__metadata__\":", "[-1]", "[1,1,1,1,1]"],
        Nesting = JsonNesting,
        Run = (input, scratch) =>
        {
            using var stream = new MemoryStream(input, writable: false);
            var content = SafeTensors.Read(stream, "model.safetensors");
            foreach (var tensor in content.Tensors.Values) _ = tensor.ShapeText;
        },
    };

    static FuzzTarget Config() => new()
    {
        Name = "config",
        Weight = 6,
        Description = "LlamaConfig.Load of a Hugging Face config.json",
        Rejections = [typeof(FormatException)],
        IsText = true,
        Dictionary = [.. JsonTokens, "\"model_type\":", "\"llama\"", "\"hidden_size\":", "\"num_attention_heads\":", "\"num_key_value_heads\":", "\"num_hidden_layers\":",
            "\"intermediate_size\":", "\"max_position_embeddings\":", "\"rms_norm_eps\":", "\"rope_theta\":", "\"vocab_size\":", "\"head_dim\":", "\"tie_word_embeddings\":", "\"hidden_act\":"],
        Nesting = JsonNesting,
        Run = (input, scratch) =>
        {
            var config = LlamaConfig.Load(scratch.File("config.json", input));
            _ = config.ParameterCount + config.FlopsPerToken;
        },
    };

    static FuzzTarget TokenizerTarget() => new()
    {
        Name = "tokenizer",
        Weight = 6,
        Description = "Tokenizer.Load of a tokenizer.json (byte-level BPE or characters), then encode and decode a sample",
        Rejections = [typeof(InvalidDataException)],
        IsText = true,
        Dictionary = [.. JsonTokens, "\"model\":", "\"type\":\"BPE\"", "\"vocab\":", "\"merges\":", "\"added_tokens\":", "\"id\":", "\"content\":", "\"special\":true",
            "\"pre_tokenizer\":", "\"ByteLevel\"", "\"Ġ\"", "\"a b\"", "[\"a\",\"b\"]", "\"<|endoftext|>\"", "-1", "2147483647"],
        Nesting = JsonNesting,
        Run = (input, scratch) => RoundTrip(Tokenizer.Load(scratch.File("tokenizer.json", input))),
    };

    static FuzzTarget Feedback() => new()
    {
        Name = "feedback",
        Weight = 4,
        Description = "FeedbackDatasets.Read and ReadPrompts of a JSONL file (SFT messages, prompt/completion, comparisons, rankings, ratings, corrections): lenient mode gives one-line reasons for bad lines, strict mode throws FormatException, and a file that is not UTF-8 is refused whole with InvalidDataException",
        Rejections = [typeof(FormatException), typeof(InvalidDataException)],
        IsText = true,
        Dictionary = [.. JsonTokens, "\"messages\":", "\"role\":", "\"content\":", "\"system\"", "\"user\"", "\"assistant\"", "\"prompt\":", "\"completion\":", "\"chosen\":",
            "\"rejected\":", "\"responses\":", "\"ranking\":", "[0,0]", "[1,0]", "[-1]", "\"rating\":", "\"response\":", "\"corrected\":", "1e308", "NaN"],
        Nesting = JsonNesting,
        Run = (input, scratch) =>
        {
            string path = scratch.File("data.jsonl", input);
            var lenient = FeedbackDatasets.Read(path);
            foreach (string skipped in lenient.Skipped)
                if (skipped.Contains('\n')) throw new FuzzCheckException($"FeedbackDatasets skipped a line with a multi-line reason: {skipped.Split('\n')[0]}");
            var promptsSkipped = new List<string>();
            FeedbackDatasets.ReadPrompts(path, promptsSkipped, strict: false);
            foreach (string reason in promptsSkipped)
                if (reason.Contains('\n')) throw new FuzzCheckException($"FeedbackDatasets.ReadPrompts skipped a line with a multi-line reason: {reason.Split('\n')[0]}");
            FeedbackDatasets.Read(path, strict: true);
        },
    };

    static FuzzTarget Corpus() => new()
    {
        Name = "corpus",
        Weight = 2,
        Description = "TextCorpus.Open of a pretraining text file, then every chunk of its documents",
        Rejections = [typeof(InvalidDataException)],
        IsText = true,
        Dictionary = ["\n", "\u0000", " ", "\u00a0", "\ufeff", "\r\n", "<|endoftext|>"],
        Run = (input, scratch) =>
        {
            var corpus = TextCorpus.Open(scratch.File("corpus.txt", input));
            foreach (var document in corpus.Documents())
                foreach (string chunk in document.Chunks) _ = chunk.Length;
        },
    };

    static FuzzTarget Document(string name, string extension, int weight, bool isText, string[] dictionary, (string, string)[] nesting) => new()
    {
        Name = name,
        Weight = weight,
        Description = $"FileReader.Read of a {extension} file as ingestion reads it, then Chunker.Split of its text; a bad file is a skip reason, never an exception",
        IsText = isText,
        Dictionary = dictionary,
        Nesting = nesting,
        Run = (input, scratch) =>
        {
            var result = FileReader.Read(scratch.File("document" + extension, input), new Dictionary<string, string>());
            if (result.SkipReason is { } reason && (reason.Length == 0 || reason.Contains('\n') || reason.Contains('\r')))
                throw new FuzzCheckException($"skip reason is not one line: {reason.Split('\n')[0]}");
            if (result.Document is { } document)
                new Chunker().Split(document.Text, document.Kind is "markdown" or "html" or "code");
        },
    };

    static readonly string?[] LogPresetChoices = [null, "HDFS", "Linux", "Apache", "BGL"];

    static FuzzTarget Logs() => new()
    {
        Name = "logs",
        Weight = 2,
        Description = "LogLineSplitter over a log stream (4 KB line limit), then LogParser.Parse (layout header, masking, template mining) and ToJson of each line; the preset is chosen by the input's length, and a parser mines up to 500 inputs in a row",
        IsText = true,
        Dictionary = ["\n", "\r\n", "\r", "\u0000", "blk_-1234", "0x7fff", "192.168.0.1:8080", "/var/log/a/b", "081109 203615 148 INFO dfs.DataNode: ", "<*>", "[", "]", "-",
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: ", "[Sun Dec 04 04:47:44 2005] [error] ", "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 "],
        Run = (input, scratch) =>
        {
            var parser = Parser(LogPresetChoices[input.Length % LogPresetChoices.Length]);
            using var stream = new MemoryStream(input, writable: false);
            foreach (var line in LogLineSplitter.ReadStream(stream, maxLineBytes: 4096))
                _ = LogParser.ToJson(parser.Parse(line));
        },
    };

    /// <summary>Parsers compile their layout and mask regexes once; each worker thread keeps one per preset, renewed every 500 inputs so the miner's templates stay few.</summary>
    [ThreadStatic] static Dictionary<string, (LogParser Parser, int Uses)>? parsers;

    static LogParser Parser(string? preset)
    {
        parsers ??= [];
        string key = preset ?? "";
        if (!parsers.TryGetValue(key, out var entry) || entry.Uses >= 500)
            entry = (new LogParser(new LogParserOptions { Preset = preset }), 0);
        parsers[key] = (entry.Parser, entry.Uses + 1);
        return entry.Parser;
    }

    static FuzzTarget Request(string name, string endpoint, Action<System.Text.Json.Nodes.JsonObject> parse) => new()
    {
        Name = name,
        Weight = 15,
        Description = $"OpenAiProtocol.ParseObject and the typed parse of a {endpoint} body",
        Rejections = [typeof(ApiException)],
        IsText = true,
        Dictionary = [.. JsonTokens, "\"model\":\"m\",", "\"messages\":", "\"role\":\"user\"", "\"content\":", "\"prompt\":", "\"input\":", "\"stream\":true", "\"max_tokens\":",
            "\"temperature\":", "\"top_p\":", "\"n\":", "\"stop\":", "\"seed\":", "\"frequency_penalty\":", "\"presence_penalty\":", "\"stream_options\":{\"include_usage\":true}",
            "{\"type\":\"text\",\"text\":\"x\"}", "{\"type\":\"image_url\"}", "\"\\ud800\"", "1e-45", "1e39"],
        Nesting = JsonNesting,
        Run = (input, scratch) => parse(OpenAiProtocol.ParseObject(input)),
    };

    /// <summary>
    /// Decodes the tokenizer's first ids to text and encodes that text back (every loaded tokenizer must encode
    /// text made of its own tokens), and a byte-level one also encodes arbitrary Unicode; every id must be in the vocabulary.
    /// </summary>
    static void RoundTrip(ITokenizer tokenizer)
    {
        var first = Enumerable.Range(0, Math.Min(tokenizer.VocabSize, 64)).ToArray();
        string own = tokenizer.Decode(first, skipSpecialTokens: true);
        Check(tokenizer, tokenizer.Encode(own));
        if (tokenizer is ByteLevelBpeTokenizer)
        {
            Check(tokenizer, tokenizer.Encode(Sample));
            Check(tokenizer, tokenizer.Encode(Sample, allowSpecialTokens: true));
        }
    }

    static void Check(ITokenizer tokenizer, int[] ids)
    {
        foreach (int id in ids)
            if (id < 0 || id >= tokenizer.VocabSize)
                throw new FuzzCheckException($"the tokenizer encoded id {id} outside its vocabulary of {tokenizer.VocabSize}");
        _ = tokenizer.Decode(ids);
    }
}
