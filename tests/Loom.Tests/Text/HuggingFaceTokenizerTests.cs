using Loom.Text;
using System.Text;
using HfTokenizer = Tokenizers.DotNet.Tokenizer;

namespace Loom.Tests.Text;

/// <summary>Loads Loom's tokenizer.json into Hugging Face's own tokenizers library (Rust, through Tokenizers.DotNet).</summary>
public class HuggingFaceTokenizerTests(ShakespeareTokenizers shakespeare) : IClassFixture<ShakespeareTokenizers>
{
    [Fact]
    public void ByteLevelBpeGivesTheSameIdsAsHuggingFace()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            shakespeare.Bpe4096.Save(directory);
            var reference = new HfTokenizer(vocabPath: Path.Combine(directory, Tokenizer.FileName));
            foreach (var line in shakespeare.RandomLines(1000, seed: 17))
            {
                Assert.Equal(reference.Encode(line).Select(id => (int)id), shakespeare.Bpe4096.Encode(line));
            }
            // Hugging Face parses added tokens in text, as Loom does when special tokens are allowed.
            var chat = $"{SpecialTokens.User}Where is the king?{SpecialTokens.End}{SpecialTokens.Assistant}In the tower.{SpecialTokens.EndOfText}";
            Assert.Equal(reference.Encode(chat).Select(id => (int)id), shakespeare.Bpe4096.Encode(chat, allowSpecialTokens: true));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void CharTokenizerGivesTheSameIdsAsHuggingFace()
    {
        var tokenizer = CharTokenizer.Train([shakespeare.Text]);
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            tokenizer.Save(directory);
            var reference = new HfTokenizer(vocabPath: Path.Combine(directory, Tokenizer.FileName));
            foreach (var line in shakespeare.RandomLines(1000, seed: 19))
            {
                var ids = tokenizer.Encode(line);
                Assert.Equal(reference.Encode(line).Select(id => (int)id), ids);
                Assert.Equal(line, reference.Decode([.. ids.Select(id => (uint)id)]));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>
/// Open models' tokenizer.json files (Llama 3, Qwen2, SmolLM2, Llama 2, Mistral structures; vocabularies trained
/// here) load into <see cref="HuggingFaceTokenizer"/> and give the ids Hugging Face's own library gives.
/// </summary>
public class OpenModelTokenizerTests(OpenModelTokenizers files) : IClassFixture<OpenModelTokenizers>
{
    private string PathOf(string family) => family switch
    {
        "llama3" => files.Llama3,
        "qwen2" => files.Qwen2,
        "smollm2" => files.SmolLm2,
        "llama2" => files.Llama2,
        _ => files.Mistral,
    };

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("smollm2")]
    [InlineData("llama2")]
    [InlineData("mistral")]
    public void IdsEqualHuggingFaceOnAThousandLines(string family)
    {
        var path = PathOf(family);
        var loom = Assert.IsType<HuggingFaceTokenizer>(Tokenizer.Load(path));
        var reference = new HfTokenizer(vocabPath: path);
        var mismatches = new List<string>();
        var decodeMismatches = new List<string>();
        foreach (var line in files.Lines(seed: 23))
        {
            var expected = reference.Encode(line).Select(id => (int)id).ToArray();
            var actual = loom.EncodeWithTemplate(line);
            if (!expected.SequenceEqual(actual))
            {
                mismatches.Add($"{JsonEscape(line)}: HF [{string.Join(' ', expected)}] Loom [{string.Join(' ', actual)}]");
            }
            var hfText = reference.Decode([.. actual.Select(id => (uint)id)]);
            var loomText = loom.Decode(actual, skipSpecialTokens: true);
            if (hfText != loomText)
            {
                decodeMismatches.Add($"{JsonEscape(line)}: HF {JsonEscape(hfText)} Loom {JsonEscape(loomText)}");
            }
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of 1000 lines differ; first: {string.Join(" | ", mismatches.Take(3))}");
        Assert.True(decodeMismatches.Count == 0, $"{decodeMismatches.Count} decodes differ; first: {string.Join(" | ", decodeMismatches.Take(3))}");
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("smollm2")]
    [InlineData("llama2")]
    [InlineData("mistral")]
    public void DecodeGivesTheTextBack(string family)
    {
        var loom = Tokenizer.Load(PathOf(family));
        foreach (var line in files.Lines(seed: 29))
        {
            // Qwen2 normalizes to NFC, and its normalized added token "Café" decodes as Hugging Face's ByteLevel decoder spells it
            // (é read as the byte 0xE9); Mistral's Metaspace does not mark a line that already starts with a space, and its decoder drops that space.
            if ((family == "qwen2" && (line.Contains('\u0301') || line.Contains("Café"))) || (family == "mistral" && line.StartsWith(' ')))
            {
                continue;
            }
            Assert.Equal(line, loom.Decode(loom.Encode(line)));
        }
    }

    [Fact]
    public void SupplementaryCharactersSplitAsOnigurumaDoes()
    {
        var regex = new System.Text.RegularExpressions.Regex(OpenModelTokenizers.Llama3Pattern);
        var text = "😀abc x😀y 𝐀bc 𝟎𝟏𝟐𝟑";
        var matches = new List<(int Start, int End)>();
        new CodePointRegex(regex).Matches(text, matches);
        // An emoji is one code point, neither letter nor digit: the optional lead of the letters after it; 𝐀 is a letter; 𝟎 a digit (three per piece).
        Assert.Equal(["😀abc", " x", "😀y", " 𝐀bc", " ", "𝟎𝟏𝟐", "𝟑"], matches.Select(match => text[match.Start..match.End]));
        // .NET alone sees surrogates, which are neither letters nor digits.
        Assert.Equal(["😀", "abc", " x", "😀", "y", " 𝐀", "bc", " 𝟎𝟏𝟐𝟑"], regex.Matches(text).Select(match => match.Value));
    }

    [Fact]
    public void PossessiveQuantifiersBecomeAtomicGroups()
    {
        Assert.Equal(@"(?>a?)(?>b+)(?>[x\]]*)(?>(c|d)+)(?>\p{L}+)(?:x{1,3})+", CodePointRegex.RewritePossessive(@"a?+b++[x\]]*+(c|d)++\p{L}++x{1,3}+"));
        Assert.Equal(OpenModelTokenizers.Llama3Pattern, CodePointRegex.RewritePossessive(OpenModelTokenizers.Llama3Pattern));
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            // A pattern with possessive quantifiers (as Ling/BailingMoE's tokenizer.json has), run by Hugging Face and by Loom.
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(files.Qwen2))!;
            json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] =
                @"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
            var path = Path.Combine(directory, Tokenizer.FileName);
            File.WriteAllText(path, json.ToJsonString());
            var loom = Tokenizer.Load(path);
            var reference = new HfTokenizer(vocabPath: path);
            foreach (var line in files.Lines(seed: 31))
            {
                Assert.Equal(reference.Encode(line).Select(id => (int)id), loom.Encode(line));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Llama3AndQwen2PatternsSplitDigitsDifferently()
    {
        var llama3 = Tokenizer.Load(files.Llama3);
        var qwen2 = Tokenizer.Load(files.Qwen2);
        var llama3Reference = new HfTokenizer(vocabPath: files.Llama3);
        var qwen2Reference = new HfTokenizer(vocabPath: files.Qwen2);
        const string digits = "1234567";
        Assert.Equal(llama3Reference.Encode(digits).Skip(1).Select(id => (int)id), llama3.Encode(digits));
        Assert.Equal(qwen2Reference.Encode(digits).Select(id => (int)id), qwen2.Encode(digits));
        Assert.Equal(["123", "456", "7"], llama3.Encode(digits).Select(id => Encoding.UTF8.GetString(llama3.TokenBytes(id))));
        Assert.Equal(["1", "2", "3", "4", "5", "6", "7"], qwen2.Encode(digits).Select(id => Encoding.UTF8.GetString(qwen2.TokenBytes(id))));
    }

    [Fact]
    public void IgnoreMergesTakesAWholeWordFromTheVocabulary()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(files.Llama3))!;
            json["model"]!["ignore_merges"] = false;
            var withMerges = Path.Combine(directory, Tokenizer.FileName);
            File.WriteAllText(withMerges, json.ToJsonString());
            const string text = "a zyzzyva and 宇宙";
            var ignoring = Tokenizer.Load(files.Llama3);
            var merging = Tokenizer.Load(withMerges);
            Assert.Equal(new HfTokenizer(vocabPath: files.Llama3).Encode(text).Skip(1).Select(id => (int)id), ignoring.Encode(text));
            Assert.Equal(new HfTokenizer(vocabPath: withMerges).Encode(text).Skip(1).Select(id => (int)id), merging.Encode(text));
            Assert.Contains(ignoring.TokenToId(ByteLevel.BytesToTokenString(Encoding.UTF8.GetBytes(" zyzzyva")))!.Value, ignoring.Encode(text));
            Assert.True(merging.Encode(text).Length > ignoring.Encode(text).Length);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void PostProcessorTellsWhetherTheModelAddsBos()
    {
        var llama3 = Tokenizer.Load(files.Llama3);
        var qwen2 = Tokenizer.Load(files.Qwen2);
        var llama2 = Tokenizer.Load(files.Llama2);
        Assert.True(llama3.AddsBos);
        Assert.Equal(llama3.TokenToId("<|begin_of_text|>"), llama3.BosId);
        Assert.Equal(llama3.TokenToId("<|end_of_text|>"), llama3.EosId);
        Assert.False(qwen2.AddsBos);
        Assert.Null(qwen2.BosId);
        Assert.Equal(qwen2.TokenToId("<|endoftext|>"), qwen2.EosId);
        Assert.True(llama2.AddsBos);
        Assert.Equal((1, 2), (llama2.BosId, llama2.EosId));
        Assert.DoesNotContain(1, llama2.Encode("Hello"));
        Assert.True(llama3.IsEndOfGeneration(llama3.TokenToId("<|eot_id|>")!.Value));
        Assert.True(llama3.IsEndOfGeneration(llama3.EosId!.Value));
        Assert.False(llama3.IsEndOfGeneration(llama3.TokenToId("<|start_header_id|>")!.Value));
        Assert.True(qwen2.IsEndOfGeneration(qwen2.TokenToId("<|im_end|>")!.Value));
        Assert.False(qwen2.IsEndOfGeneration(qwen2.Encode("Hello")[0]));
        Assert.True(llama2.IsEndOfGeneration(2));
        Assert.Equal(1, ((HuggingFaceTokenizer)llama2).EncodeWithTemplate("Hello")[0]);
    }

    [Theory]
    [InlineData("qwen2", "<|im_start|>user\nWhere is the king?<|im_end|>\n<|im_start|>assistant\n")]
    [InlineData("qwen2", "call <tool_call>{\"name\": \"f\"}</tool_call> now")]
    [InlineData("qwen2", "a   <mask>   b<mask>c")]
    [InlineData("qwen2", "Cafe\u0301 and Café and Caf")]
    [InlineData("qwen2", "a<sw> <sw> b, <sw>c (<sw>) é<sw>")]
    [InlineData("llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")]
    [InlineData("llama2", "<s>[INST] Hello [/INST] Hi</s> <s>again")]
    [InlineData("mistral", "<s>[INST] Hello [/INST] Hi</s> <s>again")]
    public void AddedTokensInTextMatchHuggingFace(string family, string text)
    {
        var loom = Assert.IsType<HuggingFaceTokenizer>(Tokenizer.Load(PathOf(family)));
        var reference = new HfTokenizer(vocabPath: PathOf(family));
        Assert.Equal(reference.Encode(text).Select(id => (int)id), loom.EncodeWithTemplate(text, allowSpecialTokens: true));
    }

    [Fact]
    public void SpecialTokenTextIsPlainUnlessAllowedButOtherAddedTokensAlwaysMatch()
    {
        var qwen2 = Tokenizer.Load(files.Qwen2);
        var imStart = qwen2.TokenToId("<|im_start|>")!.Value;
        var toolCall = qwen2.TokenToId("<tool_call>")!.Value;
        const string text = "<|im_start|>user <tool_call>";
        Assert.Equal([imStart], qwen2.Encode(text, allowSpecialTokens: true).Where(qwen2.IsSpecial));
        Assert.DoesNotContain(qwen2.Encode(text), qwen2.IsSpecial);
        Assert.Contains(toolCall, qwen2.Encode(text));
        Assert.False(qwen2.IsSpecial(toolCall));
        Assert.Equal("<tool_call>", Encoding.UTF8.GetString(qwen2.TokenBytes(toolCall)));
        Assert.Empty(qwen2.TokenBytes(imStart));
        Assert.Equal(text, qwen2.Decode(qwen2.Encode(text)));
    }

    [Fact]
    public void SaveWritesTheSameFileBack()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            var loaded = Tokenizer.Load(files.Llama2);
            loaded.Save(directory);
            Assert.Equal(File.ReadAllBytes(files.Llama2), File.ReadAllBytes(Path.Combine(directory, Tokenizer.FileName)));
            var line = OpenModelTokenizers.ExtraLines[5];
            Assert.Equal(loaded.Encode(line), Tokenizer.Load(directory).Encode(line));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("pre_tokenizer", """{"type":"Whitespace"}""", "pre_tokenizer.type \"Whitespace\" is not supported")]
    [InlineData("pre_tokenizer", """{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?<"},"behavior":"Isolated","invert":false}]}""", "pre_tokenizer.pretokenizers[0].pattern.Regex")]
    [InlineData("pre_tokenizer", """{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"a"},"behavior":"Sideways","invert":false}]}""", "pre_tokenizer.pretokenizers[0].behavior")]
    [InlineData("normalizer", """{"type":"Lowercase"}""", "normalizer.type \"Lowercase\" is not supported")]
    [InlineData("decoder", """{"type":"WordPiece"}""", "decoder.type \"WordPiece\" is not supported")]
    [InlineData("post_processor", """{"type":"BertProcessing"}""", "post_processor.type \"BertProcessing\" is not supported")]
    public void UnsupportedPartsAreOneLineErrorsNamingTheField(string field, string replacement, string expected)
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(files.Llama3))!;
            json[field] = System.Text.Json.Nodes.JsonNode.Parse(replacement);
            File.WriteAllText(Path.Combine(directory, Tokenizer.FileName), json.ToJsonString());
            var error = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(directory));
            Assert.Contains(expected, error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string JsonEscape(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
