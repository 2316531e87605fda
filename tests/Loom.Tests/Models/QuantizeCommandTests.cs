using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tests.Text;
using Loom.Text;

namespace Loom.Tests.Models;

[Collection(nameof(ConsoleCollection))]
public sealed class QuantizeCommandTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-quantize-cli-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    string WriteCheckpoint()
    {
        var tokenizer = CharTokenizer.Train(["First Citizen:\nBefore we proceed any further, hear me speak.\n"]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 64, TiedEmbeddings = false };
        string checkpoint = Path.Combine(folder, "checkpoint");
        Checkpoint.Save(checkpoint, new Transformer(config, seed: 3), tokenizer.Save);
        return checkpoint;
    }

    [Fact]
    public void QuantizeWritesAFolderThatGenerateRuns()
    {
        string checkpoint = WriteCheckpoint();
        string output = Path.Combine(folder, "q8");
        var run = CliRun.Run("quantize", "--in", checkpoint, "--out", output, "--type", "q8_0");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.StartsWith($"wrote {output}: 2 layers, dim 64, 16 of 21 tensors as q8_0", run.Output);
        using (var reader = GgufReader.Open(Path.Combine(output, QuantizedLlamaGguf.FileName)))
            Assert.Equal(GgmlType.Q8_0, reader.Tensor("blk.1.ffn_down.weight").Type);

        var generate = CliRun.Run("generate", "--model", output, "First", "--temperature", "0", "--max-tokens", "8", "--threads", "1");
        Assert.True(generate.ExitCode == 0, generate.Error);
        Assert.NotEmpty(generate.Output.Trim());
    }

    [Fact]
    public void Q4_KFallsBackToQ4_0WhereRowsAreNotWholeSuperBlocks()
    {
        string checkpoint = WriteCheckpoint();
        string output = Path.Combine(folder, "q4k");
        var run = CliRun.Run("quantize", "--model", checkpoint, "--out", output, "--type", "q4_k");
        Assert.True(run.ExitCode == 0, run.Error);
        using (var reader = GgufReader.Open(Path.Combine(output, QuantizedLlamaGguf.FileName)))
            Assert.Equal(GgmlType.Q4_0, reader.Tensor("blk.0.attn_q.weight").Type); // rows of 64: whole 32-blocks, not 256
        var model = Checkpoint.Load(output);
        Assert.All(model.Parameters.Where(p => p.Rank == 2), p => Assert.Equal(GgmlType.Q4_0, p.Quantized?.Type));
    }

    [Fact]
    public void CommandsThatNeedFloatWeightsRefuseAQuantisedFolderInOneLine()
    {
        string checkpoint = WriteCheckpoint();
        string output = Path.Combine(folder, "q8");
        Assert.Equal(0, CliRun.Run("quantize", "--in", checkpoint, "--out", output, "--type", "q8_0").ExitCode);
        string data = Path.Combine(folder, "sft.jsonl");
        File.WriteAllText(data, "{\"prompt\": \"First\", \"completion\": \" Citizen\"}\n");
        foreach (var arguments in new[]
        {
            new[] { "finetune", "sft", "--model", output, "--data", data, "--out", Path.Combine(folder, "tuned"), "--steps", "1" },
        })
        {
            var run = CliRun.Run(arguments);
            Assert.NotEqual(0, run.ExitCode);
            Assert.Contains("the weights are held quantised (Q8_0)", run.Error);
            Assert.Single(run.Error.Trim().Split('\n'));
        }
    }

    [Fact]
    public void AnUnknownTypeIsOneLineNamingTheFlag()
    {
        string checkpoint = WriteCheckpoint();
        var run = CliRun.Run("quantize", "--model", checkpoint, "--out", Path.Combine(folder, "x"), "--type", "q5_k");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--type must be q8_0, q4_0 or q4_k, got 'q5_k'", run.Error);
        Assert.Single(run.Error.Trim().Split('\n'));
    }
}
