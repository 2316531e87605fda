using System.Text.Json.Nodes;
using Loom.LlamaCpp;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tensors;
using Loom.Tests.Text;
using Loom.Text;
using Xunit.Abstractions;

namespace Loom.Tests.Models;

/// <summary>
/// Exports of imported and LoRA-tuned models: a Hugging Face folder of the family (F32 or BF16) that Loom imports back to the
/// same logits, the CLI path finetune (QLoRA on a Q8_0 base, merged) → export --hf/--gguf, and a GGUF that llama.cpp runs to
/// Loom's logits within 1e-3 for a LoRA-tuned model in SmolLM2-135M's shape.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public sealed class HfExportTests(ITestOutputHelper output) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-hf-export-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static LlamaConfig Tiny(string modelType) => new()
    {
        ModelType = modelType, VocabSize = 64, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 32,
        TiedEmbeddings = modelType != LlamaConfig.MistralType, SlidingWindow = modelType == LlamaConfig.MistralType ? 8 : null,
    };

    static float[] Logits(Transformer model, int[] ids) => model.Forward(new Tape { Recording = false }, ids, 1, ids.Length).Span.ToArray();

    static int[] Prompt(int seed, int length, int vocab)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => random.Next(vocab))];
    }

    static double MaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    [Theory]
    [InlineData(LlamaConfig.LlamaType, "LlamaForCausalLM")]
    [InlineData(LlamaConfig.Qwen2Type, "Qwen2ForCausalLM")]
    [InlineData(LlamaConfig.MistralType, "MistralForCausalLM")]
    public void HfExportReimportsWithEqualLogits(string modelType, string architecture)
    {
        var config = Tiny(modelType);
        var model = Transformer.FromTensors(config, GgufReference.RandomWeights(config, seed: 11), "random weights"); // qwen2: nonzero biases
        var ids = Prompt(12, 20, config.VocabSize);

        string f32 = Path.Combine(folder, modelType + "-f32");
        HuggingFaceFolder.Export(f32, model, checkpoint: null);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(f32, Checkpoint.ConfigFileName)))!;
        Assert.Equal(architecture, json["architectures"]![0]!.GetValue<string>());
        Assert.Equal("float32", json["torch_dtype"]!.GetValue<string>());
        var back = HuggingFaceFolder.Read(f32);
        Assert.Equal(config, back.Config);
        Assert.Equal(Logits(model, ids), Logits(back, ids));

        // BF16: the logits of the model with its matrices rounded to bfloat16 (norms and biases too: every tensor is written as BF16).
        string bf16 = Path.Combine(folder, modelType + "-bf16");
        HuggingFaceFolder.Export(bf16, model, checkpoint: null, bfloat16: true);
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(Path.Combine(bf16, Checkpoint.ConfigFileName)))!["torch_dtype"]!.GetValue<string>());
        Assert.True(new FileInfo(Path.Combine(bf16, SafeTensors.ModelFileName)).Length < 0.55 * new FileInfo(Path.Combine(f32, SafeTensors.ModelFileName)).Length);
        var rounded = new Dictionary<string, Tensor>();
        foreach (var p in model.Parameters)
        {
            var bytes = new byte[p.Length * 2];
            GgmlQuant.EncodeBF16(p.Span, bytes);
            var values = new Tensor(p.Shape) { Name = p.Name };
            GgmlQuant.DecodeBF16(bytes, values.Span);
            rounded[p.Name!] = values;
        }
        var expected = Transformer.FromTensors(config, rounded, "bf16-rounded");
        Assert.Equal(Logits(expected, ids), Logits(HuggingFaceFolder.Read(bf16), ids));
        Assert.True(MaxDifference(Logits(model, ids), Logits(expected, ids)) > 0, "BF16 rounding changed nothing: the test cannot tell F32 from BF16");
    }

    [Fact]
    public void QLoraOnAQ8BaseMergesAndExportsToHfAndGgufFromTheCli()
    {
        // Every printable ASCII character: the chat format's markers are spelled with them.
        var tokenizer = CharTokenizer.Train(["First Citizen:\n" + new string([.. Enumerable.Range(32, 95).Select(c => (char)c)])]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 64 };
        string checkpoint = Path.Combine(folder, "base");
        Checkpoint.Save(checkpoint, new Transformer(config, seed: 3), target =>
        {
            tokenizer.Save(target);
            File.WriteAllText(Path.Combine(target, "tokenizer_config.json"), "{\"model_max_length\": 64}");
        });
        string data = Path.Combine(folder, "sft.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 12).Select(i => $"{{\"prompt\": \"First {i % 3}\", \"completion\": \" Citizen: speak.\"}}"));

        string tuned = Path.Combine(folder, "tuned");
        var run = CliRun.Run("finetune", "sft", "--model", checkpoint, "--data", data, "--out", tuned, "--steps", "3", "--batch", "2", "--threads", "1",
            "--lora-rank", "4", "--lora-targets", "q_proj,v_proj,down_proj", "--base-type", "q8_0", "--merge");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("frozen base: ", run.Output);
        Assert.Contains("as q8_0; only the LoRA adapters train", run.Output);
        var merged = Checkpoint.Load(Path.Combine(tuned, "checkpoint"));
        Assert.Null(merged.QuantizedType);

        // Full fine-tuning of a frozen base is refused in one line.
        var refused = CliRun.Run("finetune", "sft", "--model", checkpoint, "--data", data, "--out", Path.Combine(folder, "full"), "--steps", "1", "--base-type", "q4_0");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("--base-type needs --lora-rank", refused.Error);
        Assert.Single(refused.Error.Trim().Split('\n'));

        // The adapter merges into a `loom quantize` folder too: a float32 checkpoint of the dequantised weights.
        string q8 = Path.Combine(folder, "q8");
        Assert.Equal(0, CliRun.Run("quantize", "--model", checkpoint, "--out", q8, "--type", "q8_0").ExitCode);
        string mergedQ8 = Path.Combine(folder, "merged-q8");
        var merge = CliRun.Run("finetune", "merge", "--model", q8, "--adapter", Path.Combine(tuned, "adapter"), "--out", mergedQ8);
        Assert.True(merge.ExitCode == 0, merge.Error);
        Assert.Contains("dequantised from q8_0", merge.Output);
        var fromQ8 = Checkpoint.Load(mergedQ8);
        Assert.Null(fromQ8.QuantizedType);
        var ids = tokenizer.Encode("First Citizen");
        // The same adapter on the same Q8_0 weights, merged during tuning and after quantising: the same float32 model.
        Assert.Equal(Logits(merged, ids), Logits(fromQ8, ids));

        string hf = Path.Combine(folder, "hf");
        string gguf = Path.Combine(folder, "tuned.gguf");
        var export = CliRun.Run("export", "--model", tuned, "--hf", hf, "--dtype", "f32", "--gguf", gguf);
        Assert.True(export.ExitCode == 0, export.Error);
        Assert.Contains($"wrote {hf}: LlamaForCausalLM", export.Output);
        Assert.True(File.Exists(Path.Combine(hf, Checkpoint.TokenizerFileName)));
        foreach (string file in HuggingFaceFolder.CopiedFiles.Where(f => File.Exists(Path.Combine(tuned, "checkpoint", f))))
            Assert.Equal(File.ReadAllText(Path.Combine(tuned, "checkpoint", file)), File.ReadAllText(Path.Combine(hf, file)));
        Assert.Equal(Logits(merged, ids), Logits(HuggingFaceFolder.Read(hf), ids));
        Assert.Equal(Logits(merged, ids), Logits(LlamaGguf.Import(gguf).Model, ids));

        // A quantised folder exports too (dequantised), saying so.
        var fromQuantised = CliRun.Run("export", "--model", q8, "--hf", Path.Combine(folder, "hf-q8"));
        Assert.True(fromQuantised.ExitCode == 0, fromQuantised.Error);
        Assert.Contains("dequantised to float32 for export", fromQuantised.Output);

        var neither = CliRun.Run("export", "--model", tuned);
        Assert.NotEqual(0, neither.ExitCode);
        Assert.Contains("export needs --gguf FILE or --hf FOLDER", neither.Error);
    }

    // SmolLM2-135M's shape (576 channels, 9 heads of 64, 3 kv heads, SwiGLU 1536, tied), 2 layers and a 512-token vocabulary.
    static readonly LlamaConfig Smol = new() { VocabSize = 512, Dim = 576, Layers = 2, Heads = 9, KvHeads = 3, HiddenDim = 1536, MaxSeq = 128, RopeTheta = 100000f, NormEps = 1e-5f, TiedEmbeddings = true };

    [Theory]
    [Trait(TestCategories.Category, TestCategories.Slow)]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.BF16)]
    public void LoraTunedSmolLm2ShapeExportsToAGgufThatLlamaCppRunsToLoomsLogits(GgmlType baseType)
    {
        var model = Transformer.FromTensors(Smol, GgufReference.RandomWeights(Smol, seed: 41), "random weights");
        Lora.FreezeBase(model, baseType);
        var trainable = Lora.Attach(model, new LoraOptions { Rank = 8, Alpha = 16, Targets = LoraOptions.AllTargets }, seed: 3);
        var random = new Random(42);
        foreach (var t in trainable.Where(t => t.Name!.Contains("lora_B", StringComparison.Ordinal)))
            for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() - 0.5) * 0.05f;
        var prompts = new[] { Prompt(43, 1, Smol.VocabSize), Prompt(44, 17, Smol.VocabSize), Prompt(45, 64, Smol.VocabSize) };
        var adapted = prompts.Select(p => Logits(model, p)).ToArray(); // the unmerged adapters on the frozen base

        var merged = Lora.MergedFloat(model);
        var mergedLogits = prompts.Select(p => Logits(merged, p)).ToArray();
        double adapterEffect = MaxDifference(mergedLogits[2], Logits(Lora.MergedFloat(Transformer.FromTensors(Smol, GgufReference.RandomWeights(Smol, seed: 41), "base")), prompts[2]));
        if (baseType == GgmlType.F32) // merging is exact up to float32 sums
            for (int i = 0; i < prompts.Length; i++) Assert.True(MaxDifference(adapted[i], mergedLogits[i]) < 1e-3);

        string path = Path.Combine(folder, $"smol-{baseType}.gguf");
        LlamaGguf.Export(path, merged, tokenizer: null, GgmlType.F32, "smol-lora");
        using var peer = LlamaCppModel.Load(path, new LlamaCppOptions(ContextSize: Smol.MaxSeq, Threads: 1, Float32Cache: true));
        double worst = 0;
        for (int i = 0; i < prompts.Length; i++) worst = Math.Max(worst, MaxDifference(mergedLogits[i], peer.AllLogits(prompts[i])));
        output.WriteLine($"{baseType} base: max |llama.cpp − Loom| {worst:E2}; the adapters move the logits by {adapterEffect:E2}");
        Assert.True(worst < 1e-3, $"{baseType}: max logit difference {worst}");
        Assert.True(adapterEffect > 1e-2, $"the adapters change the logits by only {adapterEffect}");
    }
}
