using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Tensors;
using Loom.Tests.Tensors;
using Loom.Tests.Text;

namespace Loom.Tests.Models;

/// <summary>
/// Hugging Face folders as the Hub publishes them, written here by a plain safetensors writer (F32, F16, BF16; one file
/// or shards with model.safetensors.index.json), imported with <see cref="HuggingFaceFolder"/> and <c>loom import --hf</c>.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class HuggingFaceFolderTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-hf-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    static readonly LlamaConfig Qwen2 = new()
    {
        ModelType = LlamaConfig.Qwen2Type, VocabSize = 40, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 48, MaxSeq = 64,
        RopeTheta = 1e6f, NormEps = 1e-6f, TiedEmbeddings = true, BosId = 1, EosId = 2,
    };

    const string TokenizerJson = """{"version":"1.0","added_tokens":[{"id":39,"content":"<|end|>","special":true}],"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2}}}""";
    const string TokenizerConfigJson = """{"chat_template":"{% for m in messages %}{{ m.content }}{% endfor %}","eos_token":"<|end|>"}""";
    const string GenerationConfigJson = """{"bos_token_id":1,"eos_token_id":[2,39],"do_sample":true,"temperature":0.7}""";

    static Transformer RandomModel(LlamaConfig config, int seed) => TestModels.Random(config, seed);

    /// <summary>BF16 of a float, rounded to nearest even (as torch's .to(torch.bfloat16)).</summary>
    static ushort ToBFloat16(float value)
    {
        int bits = BitConverter.SingleToInt32Bits(value);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    static float Rounded(float value, string dtype) => dtype switch
    {
        "BF16" => BitConverter.Int32BitsToSingle(ToBFloat16(value) << 16),
        "F16" => (float)(Half)value,
        _ => value,
    };

    /// <summary>A safetensors file of the given tensors in one dtype, written plainly from the format's description.</summary>
    static void WriteSafeTensors(string path, IEnumerable<Tensor> tensors, string dtype)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        var data = new MemoryStream();
        foreach (var t in tensors)
        {
            long begin = data.Length;
            foreach (float value in t.Span.ToArray())
            {
                var bytes = new byte[dtype == "F32" ? 4 : 2];
                if (dtype == "F32") BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
                else if (dtype == "F16") BinaryPrimitives.WriteHalfLittleEndian(bytes, (Half)value);
                else BinaryPrimitives.WriteUInt16LittleEndian(bytes, ToBFloat16(value));
                data.Write(bytes);
            }
            header[t.Name!] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray([.. t.Shape.ToArray().Select(d => (JsonNode)d)]),
                ["data_offsets"] = new JsonArray(begin, data.Length),
            };
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var file = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerBytes.Length);
        file.Write(length);
        file.Write(headerBytes);
        data.Position = 0;
        data.CopyTo(file);
    }

    /// <summary>A Hub-style folder of the model: one safetensors file, or <paramref name="shards"/> with an index.</summary>
    string WriteFolder(string name, Transformer model, string dtype, int shards = 1, bool tokenizerFiles = true, string? configJson = null)
    {
        string folder = Path.Combine(root, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), configJson ?? model.Config.ToHuggingFaceJson());
        if (tokenizerFiles)
        {
            File.WriteAllText(Path.Combine(folder, "tokenizer.json"), TokenizerJson);
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), TokenizerConfigJson);
            File.WriteAllText(Path.Combine(folder, "generation_config.json"), GenerationConfigJson);
        }
        var parameters = model.Parameters.ToList();
        if (shards == 1)
        {
            WriteSafeTensors(Path.Combine(folder, "model.safetensors"), parameters, dtype);
            return folder;
        }
        var weightMap = new JsonObject();
        for (int s = 0; s < shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = parameters.Where((_, i) => i % shards == s).ToList();
            WriteSafeTensors(Path.Combine(folder, file), part, dtype);
            foreach (var t in part) weightMap[t.Name!] = file;
        }
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"),
            new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 0 }, ["weight_map"] = weightMap }.ToJsonString());
        return folder;
    }

    [Theory]
    [InlineData("F32", 1)]
    [InlineData("F16", 1)]
    [InlineData("BF16", 3)]
    public void ImportsWeightsAsFloat32AndCopiesTheTokenizerFilesUnchanged(string dtype, int shards)
    {
        var model = RandomModel(Qwen2, 3);
        string folder = WriteFolder("hf", model, dtype, shards);
        string checkpoint = Path.Combine(root, "checkpoint");
        HuggingFaceFolder.Import(folder, checkpoint);

        var loaded = Checkpoint.Load(checkpoint);
        Assert.Equal(Qwen2, loaded.Config);
        foreach (var (original, imported) in model.Parameters.Zip(loaded.Parameters))
        {
            Assert.Equal(original.Name, imported.Name);
            for (int i = 0; i < original.Length; i++)
                Assert.Equal(Rounded(original[i], dtype), imported[i]);
        }
        Assert.Contains("\"dtype\":\"F32\"", Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(checkpoint, "model.safetensors")).AsSpan(8, 200)));
        foreach (string file in HuggingFaceFolder.CopiedFiles)
            Assert.Equal(File.ReadAllBytes(Path.Combine(folder, file)), File.ReadAllBytes(Path.Combine(checkpoint, file)));
    }

    [Fact]
    public void ShardedBFloat16ImportsToTheLogitsOfTheFloat32FolderWithinBFloat16Rounding()
    {
        var model = RandomModel(Qwen2, 5);
        var f32 = HuggingFaceFolder.Read(WriteFolder("f32", model, "F32"));
        var bf16 = HuggingFaceFolder.Read(WriteFolder("bf16", model, "BF16", shards: 2));
        var ids = TestModels.Ids(30, Qwen2.VocabSize, 6);
        var exact = TestModels.FullForward(f32, ids);
        var rounded = TestModels.FullForward(bf16, ids);
        Assert.Equal(TestModels.FullForward(model, ids), exact);

        // The BF16 model is exactly the model of the rounded weights...
        var roundedWeights = model.Parameters.ToDictionary(p => p.Name!, p => Tensor.From([.. p.Span.ToArray().Select(v => Rounded(v, "BF16"))], p.Shape));
        Assert.Equal(TestModels.FullForward(Transformer.FromTensors(Qwen2, roundedWeights, "rounded"), ids), rounded);
        // ...and its logits stay within what 8 bits of mantissa (relative 2^-9 per weight) move them.
        double error = GradCheck.RelativeError([.. rounded.Select(v => (double)v)], [.. exact.Select(v => (double)v)]);
        Assert.True(error > 0 && error < 2e-2, $"BF16 logits relative error {error:E3}");
    }

    [Fact]
    public void AnUntiedLlamaWithRopeScalingImportsFromOneFile()
    {
        var config = new LlamaConfig
        {
            VocabSize = 40, Dim = 32, Layers = 1, Heads = 4, KvHeads = 1, HiddenDim = 48, MaxSeq = 64, RopeTheta = 500000f,
            TiedEmbeddings = false, RopeScaling = new RopeScaling(32, 1, 4, 8192),
        };
        var model = RandomModel(config, 8);
        var imported = HuggingFaceFolder.Read(WriteFolder("llama", model, "F32"));
        Assert.Equal(config, imported.Config);
        var ids = TestModels.Ids(20, config.VocabSize, 9);
        Assert.Equal(TestModels.FullForward(model, ids), TestModels.FullForward(imported, ids));
    }

    [Fact]
    public void ATiedModelsRedundantLmHeadIsIgnored()
    {
        var model = RandomModel(Qwen2, 10);
        string folder = WriteFolder("tied", model, "F32");
        var head = Tensor.From(model.TokenEmbedding.Span, Qwen2.VocabSize, Qwen2.Dim); // [vocab, dim]
        head.Name = "lm_head.weight";
        WriteSafeTensors(Path.Combine(folder, "model.safetensors"), [.. model.Parameters, head], "F32");
        var ids = TestModels.Ids(10, Qwen2.VocabSize, 11);
        Assert.Equal(TestModels.FullForward(model, ids), TestModels.FullForward(HuggingFaceFolder.Read(folder), ids));
    }

    [Fact]
    public void BadFoldersGiveOneLineErrorsNamingFileAndTensor()
    {
        var model = RandomModel(Qwen2, 12);
        string Message(Action action) => Assert.ThrowsAny<Exception>(action).Message;

        string missingBias = WriteFolder("missing", model, "BF16");
        WriteSafeTensors(Path.Combine(missingBias, "model.safetensors"), model.Parameters.Where(p => p.Name != "model.layers.1.self_attn.v_proj.bias"), "BF16");
        string m = Message(() => HuggingFaceFolder.Read(missingBias));
        Assert.Contains("model.safetensors", m);
        Assert.Contains("'model.layers.1.self_attn.v_proj.bias' is missing", m);

        string sharded = WriteFolder("sharded", model, "F16", shards: 2);
        File.Delete(Path.Combine(sharded, "model-00002-of-00002.safetensors"));
        Assert.Contains("model-00002-of-00002.safetensors", Message(() => HuggingFaceFolder.Read(sharded)));

        string wrongClass = WriteFolder("class", model, "F32", configJson: model.Config.ToHuggingFaceJson().Replace("Qwen2ForCausalLM", "Qwen2ForSequenceClassification"));
        Assert.Contains("architectures[0] is 'Qwen2ForSequenceClassification'", Message(() => HuggingFaceFolder.Read(wrongClass)));

        string yarn = WriteFolder("yarn", model, "F32", configJson: model.Config.ToHuggingFaceJson().Replace("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}"));
        Assert.Contains("rope_scaling type 'yarn' is not supported", Message(() => HuggingFaceFolder.Read(yarn)));

        string noTokenizer = WriteFolder("notokenizer", model, "F32", tokenizerFiles: false);
        Assert.Contains("tokenizer.json: file not found", Message(() => HuggingFaceFolder.Import(noTokenizer, Path.Combine(root, "out"))));
        Assert.False(Directory.Exists(Path.Combine(root, "out")));

        string int8 = WriteFolder("int8", model, "F32");
        string weights = Path.Combine(int8, "model.safetensors");
        File.WriteAllBytes(weights, ReplaceFirst(File.ReadAllBytes(weights), "\"dtype\":\"F32\"", "\"dtype\":\"I32\""));
        string dtypeMessage = Message(() => HuggingFaceFolder.Read(int8));
        Assert.Contains("model.safetensors", dtypeMessage);
        Assert.Contains("dtype I32", dtypeMessage);

        foreach (string message in new[] { m, dtypeMessage }) Assert.DoesNotContain('\n', message);
    }

    static byte[] ReplaceFirst(byte[] bytes, string from, string to)
    {
        string text = Encoding.Latin1.GetString(bytes);
        int at = text.IndexOf(from, StringComparison.Ordinal);
        Assert.True(at >= 0);
        return Encoding.Latin1.GetBytes(text[..at] + to + text[(at + from.Length)..]);
    }

    [Fact]
    public void TheImportCommandWritesALoadableCheckpoint()
    {
        var model = RandomModel(Qwen2, 14);
        string folder = WriteFolder("cli", model, "BF16", shards: 2);
        string checkpoint = Path.Combine(root, "cli-checkpoint");
        var (exitCode, output, error) = CliRun.Run("import", "--hf", folder, "--out", checkpoint);
        Assert.True(exitCode == 0, error);
        Assert.StartsWith($"wrote {checkpoint}: Qwen2ForCausalLM, 2 layers, dim 32", output);
        Assert.Equal(Qwen2, Checkpoint.Load(checkpoint).Config);

        var neither = CliRun.Run("import", "--out", checkpoint);
        Assert.NotEqual(0, neither.ExitCode);
        Assert.Contains("--gguf", neither.Error);
        var missing = CliRun.Run("import", "--hf", Path.Combine(root, "nowhere"), "--out", checkpoint);
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("nowhere: folder not found", missing.Error);
    }
}
