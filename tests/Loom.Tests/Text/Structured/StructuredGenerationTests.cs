using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;
using Loom.Models;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;
using Loom.Text.Structured;

namespace Loom.Tests.Text.Structured;

/// <summary>
/// Structured output through the real <see cref="GenerationEngine"/>: a tiny random Transformer
/// sampled at temperature 1, a byte-level BPE trained here and the character tokenizer; every output
/// is parsed and validated by JsonSchema.Net, an implementation independent of Loom's compiler.
/// </summary>
public class StructuredGenerationTests
{
    static readonly Lazy<ByteLevelBpeTokenizer> Bpe = new(() =>
    {
        var corpus = new StringBuilder();
        for (int seed = 0; seed < 40; seed++) corpus.Append(RandomSchemas.Generate(1000 + seed).ToJsonString()).Append('\n');
        corpus.Append("""{"name":"Ada","age":36,"tags":["x","y"],"ok":true,"none":null,"v":-2.5} the quick brown fox jumps over the lazy dog, é 中文""");
        return BpeTrainer.Train([corpus.ToString()], 400);
    });

    /// <summary>Printable ASCII plus two multi-byte characters: every byte JSON needs is spelled by some token.</summary>
    static readonly Lazy<CharTokenizer> Chars = new(() =>
        CharTokenizer.Train([new string([.. Enumerable.Range(0x20, 0x5F).Select(c => (char)c)]) + "\n\té中"]));

    static LoomModel Model(ITokenizer tokenizer, int seed, int slots = 4) =>
        LoomModel.Create("structured", TestModels.Random(TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 1024 }, seed), tokenizer,
            new LoomModelOptions { Slots = slots });

    static async Task<(string Text, FinishReason? Reason)> Generate(ITextGenerator generator, GenerationRequest request)
    {
        var text = new StringBuilder();
        FinishReason? reason = null;
        await foreach (var update in generator.GenerateAsync(request))
        {
            text.Append(update.Text);
            reason = update.FinishReason ?? reason;
        }
        return (text.ToString(), reason);
    }

    static JsonElement Parse(string text) => JsonDocument.Parse(text).RootElement;

    static void AssertValid(string schemaText, string output)
    {
        JsonElement instance;
        try
        {
            instance = JsonDocument.Parse(output).RootElement;
        }
        catch (JsonException e)
        {
            throw new Xunit.Sdk.XunitException($"output does not parse ({e.Message}): {output}\nschema: {schemaText}");
        }
        var result = JsonSchema.FromText(schemaText).Evaluate(instance, new EvaluationOptions { OutputFormat = Json.Schema.OutputFormat.List });
        Assert.True(result.IsValid, $"output {output} does not validate against {schemaText}: "
            + string.Join("; ", (result.Details ?? []).Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))));
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Theory]
    [InlineData("bpe")]
    [InlineData("char")]
    public async Task TwoHundredRandomSchemasAlwaysGiveValidOutput(string vocabulary)
    {
        ITokenizer tokenizer = vocabulary == "bpe" ? Bpe.Value : Chars.Value;
        await using var model = Model(tokenizer, seed: 11, slots: 8);
        string prompt = vocabulary == "bpe" ? "Answer in JSON:" : "json:";
        var schemas = Enumerable.Range(0, 200).Select(i => RandomSchemas.Generate(i).ToJsonString()).ToArray();
        // All at once: the engine batches sequences that follow different formats.
        var outputs = await Task.WhenAll(schemas.Select((schema, i) => Generate(model.Engine, new GenerationRequest
        {
            Prompt = prompt,
            Format = new Loom.Serving.OutputFormat { JsonSchema = Parse(schema) },
            Sampling = new SamplingOptions { Temperature = 1f, Seed = i },
        })));
        for (int i = 0; i < schemas.Length; i++)
        {
            Assert.True(outputs[i].Reason == FinishReason.Stop, $"schema {i} ended with {outputs[i].Reason}: {outputs[i].Text}");
            AssertValid(schemas[i], outputs[i].Text);
        }
    }

    [Fact]
    public async Task JsonObjectModeGivesAnObjectOrATruncatedPrefixAtMaxTokens()
    {
        await using var model = Model(Bpe.Value, seed: 12);
        var format = new Loom.Serving.OutputFormat { JsonSchema = Parse("""{"type":"object"}""") };
        var reference = Grammar.FromJsonSchema(Parse("""{"type":"object"}"""));
        int complete = 0;
        for (int seed = 0; seed < 12; seed++)
        {
            var (text, reason) = await Generate(model.Engine, new GenerationRequest { Prompt = "{", Format = format, MaxTokens = 60, Sampling = new SamplingOptions { Seed = seed } });
            if (reason == FinishReason.Stop)
            {
                Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
                complete++;
            }
            else
            {
                Assert.Equal(FinishReason.Length, reason);
                Assert.False(reference.Matches(Encoding.UTF8.GetBytes(text)), "a complete object should have stopped");
                Assert.StartsWith("{", text);
            }
        }
        Assert.True(complete > 0, "no sampled object finished within 60 tokens");
    }

    [Fact]
    public async Task MaxTokensTruncatesWithFinishReasonLength()
    {
        await using var model = Model(Bpe.Value, seed: 13);
        var format = new Loom.Serving.OutputFormat { JsonSchema = Parse("""{"type":"object","properties":{"a":{"type":"string","minLength":50}},"required":["a"]}""") };
        var (text, reason) = await Generate(model.Engine, new GenerationRequest { Prompt = "x", Format = format, MaxTokens = 5, Sampling = new SamplingOptions { Seed = 1 } });
        Assert.Equal(FinishReason.Length, reason);
        // Five tokens cannot finish a 50-character string; what came out is a prefix of the only opening the schema allows.
        Assert.True(text.StartsWith("{\"a\":\"", StringComparison.Ordinal) || "{\"a\":\"".StartsWith(text, StringComparison.Ordinal), text);
    }

    [Theory]
    [InlineData("(yes|no), because [a-z ]{3,12}\\.")]
    [InlineData("\\d{4}-\\d{2}-\\d{2}")]
    [InlineData("[A-Z][a-z]+( [A-Z][a-z]+)?")]
    [InlineData("é{1,2}(中|x)")]
    public async Task PatternOutputsMatchDotNetRegex(string pattern)
    {
        await using var model = Model(Bpe.Value, seed: 14);
        var reference = new Regex($"\\A(?:{pattern})\\z");
        for (int seed = 0; seed < 6; seed++)
        {
            var (text, reason) = await Generate(model.Engine, new GenerationRequest
            {
                Prompt = "answer:",
                Format = new Loom.Serving.OutputFormat { Pattern = pattern },
                MaxTokens = 200,
                Sampling = new SamplingOptions { Seed = seed },
            });
            Assert.Equal(FinishReason.Stop, reason);
            Assert.Matches(reference, text);
        }
    }

    [Fact]
    public async Task GreedyStructuredOutputIsTheArgmaxOfTheMaskedLogits()
    {
        // The engine's answer equals decoding by hand: mask, arg-max, advance, until the format is finished.
        var tokenizer = Bpe.Value;
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 256 };
        var weights = TestModels.Random(config, 15);
        var schema = Parse("""{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer","minimum":0,"maximum":9}},"required":["ok","n"],"additionalProperties":false}""");
        await using var model = LoomModel.Create("s", weights, tokenizer);
        var (text, reason) = await Generate(model.Engine, new GenerationRequest { Prompt = "hi", Format = new Loom.Serving.OutputFormat { JsonSchema = schema }, Sampling = SamplingOptions.Greedy });

        using var decoder = new TransformerDecoder(weights);
        var matcher = TokenGrammar.ForJsonSchema(schema, tokenizer).Start();
        int[] prompt = [.. tokenizer.BosId is int bos ? [bos] : Array.Empty<int>(), .. tokenizer.Encode("hi")];
        var logits = new float[tokenizer.VocabSize];
        decoder.Prefill(0, prompt, logits);
        var ids = new List<int>();
        while (true)
        {
            matcher.ApplyMask(logits);
            int token = Sampler.ArgMax(logits);
            if (matcher.IsEndToken(token)) break;
            matcher.Accept(token);
            ids.Add(token);
            if (matcher.IsFinished) break;
            decoder.Decode([0], [token], logits);
        }
        Assert.Equal(tokenizer.Decode([.. ids]), text);
        Assert.Equal(FinishReason.Stop, reason);
        AssertValid(schema.GetRawText(), text);
    }

    [Fact]
    public async Task AnUnsupportedKeywordIsRefusedBeforeGenerating()
    {
        await using var model = Model(Bpe.Value, seed: 16);
        var error = await Assert.ThrowsAsync<SchemaNotSupportedException>(() => Generate(model.Engine, new GenerationRequest
        {
            Prompt = "x",
            Format = new Loom.Serving.OutputFormat { JsonSchema = Parse("""{"type":"object","properties":{"date":{"type":"string","format":"date"}}}""") },
        }));
        Assert.Equal("unsupported JSON Schema keyword 'format' at #/properties/date", error.Message);
    }

    [Fact]
    public async Task AVocabularyThatCannotSpellTheFormatIsRefused()
    {
        var letters = CharTokenizer.Train(["abcdefgh "]);
        await using var model = Model(letters, seed: 17);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Generate(model.Engine, new GenerationRequest
        {
            Prompt = "abc",
            Format = new Loom.Serving.OutputFormat { JsonSchema = Parse("""{"type":"object"}""") },
        }));
        Assert.Contains("OutputFormat", error.Message);
    }
}

/// <summary>Structured output for a GGUF model run by llama.cpp, with the GGUF's own tokenizer (llama.cpp's pieces as token bytes).</summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class StructuredGgufTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-structured-gguf-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task LlamaCppOutputValidatesAgainstTheSchema()
    {
        var tokenizer = BpeTrainer.Train(["""{"city":"Paris","temp":21,"tags":["sun","wind"]} {"city":"Oslo","temp":-3,"tags":[]} the quick brown fox"""], 320);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 256 };
        string path = Path.Combine(folder, "bpe.gguf");
        Loom.Models.Gguf.LlamaGguf.Export(path, TestModels.Random(config, 21), tokenizer);
        using var decoder = Loom.LlamaCpp.LlamaCppDecoder.Load(path, slots: 2, new Loom.LlamaCpp.LlamaCppOptions(Threads: 1, Float32Cache: true));
        await using var engine = new GenerationEngine("gguf", decoder, decoder.Tokenizer);
        const string schema = """
            {"type":"object","properties":{"city":{"type":"string","maxLength":8},"temp":{"type":"integer","minimum":-40,"maximum":50},
             "tags":{"type":"array","items":{"enum":["sun","rain","wind"]},"maxItems":3}},"required":["city","temp"],"additionalProperties":false}
            """;
        for (int seed = 0; seed < 8; seed++)
        {
            var text = new StringBuilder();
            FinishReason? reason = null;
            await foreach (var update in engine.GenerateAsync(new GenerationRequest
            {
                Prompt = "weather:",
                Format = new Loom.Serving.OutputFormat { JsonSchema = JsonDocument.Parse(schema).RootElement },
                Sampling = new SamplingOptions { Seed = seed },
            }))
            {
                text.Append(update.Text);
                reason = update.FinishReason ?? reason;
            }
            Assert.Equal(FinishReason.Stop, reason);
            var result = JsonSchema.FromText(schema).Evaluate(JsonDocument.Parse(text.ToString()).RootElement);
            Assert.True(result.IsValid, text.ToString());
        }
    }
}
