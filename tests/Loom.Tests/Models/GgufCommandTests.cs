using Loom.Cli;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tests.Text;
using Loom.Text;

namespace Loom.Tests.Models;

[Collection(nameof(ConsoleCollection))]
public sealed class GgufCommandTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-gguf-cli-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static (int ExitCode, string Output, string Error) Run(params string[] args) => CliRun.Run(args);

    (string Folder, Transformer Model, CharTokenizer Tokenizer) WriteCheckpoint()
    {
        var tokenizer = CharTokenizer.Train(["First Citizen:\nBefore we proceed any further, hear me speak.\n"]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 64, TiedEmbeddings = false };
        var model = new Transformer(config, seed: 3);
        string checkpoint = Path.Combine(folder, "checkpoint");
        Checkpoint.Save(checkpoint, model, tokenizer.Save);
        return (checkpoint, model, tokenizer);
    }

    [Fact]
    public void ExportThenImportGivesTheCheckpointBack()
    {
        var (checkpoint, model, tokenizer) = WriteCheckpoint();
        string gguf = Path.Combine(folder, "model.gguf");
        var export = Run("export", "--gguf", gguf, "--model", checkpoint);
        Assert.True(export.ExitCode == 0, export.Error);
        Assert.StartsWith($"wrote {gguf}: llama, 2 layers, dim 64", export.Output);
        using (var reader = GgufReader.Open(gguf))
        {
            Assert.Equal("checkpoint", reader.GetString("general.name"));
            Assert.Equal(GgmlType.F32, reader.Tensor("blk.0.attn_q.weight").Type);
        }

        string back = Path.Combine(folder, "imported");
        var import = Run("import", "--gguf", gguf, "--out", back);
        Assert.True(import.ExitCode == 0, import.Error);
        var loaded = Checkpoint.Load(back);
        Assert.Equal(model.Config, loaded.Config);
        foreach (var (p, q) in model.Parameters.Zip(loaded.Parameters))
            Assert.True(p.Span.SequenceEqual(q.Span), $"{p.Name} changed");
        const string text = "hear me, Citizen";
        Assert.Equal(tokenizer.Encode(text), Tokenizer.Load(back).Encode(text));

        string q8 = Path.Combine(folder, "model-q8.gguf");
        var quantised = Run("export", "--gguf", q8, "--model", checkpoint, "--type", "q8_0");
        Assert.True(quantised.ExitCode == 0, quantised.Error);
        using var q8Reader = GgufReader.Open(q8);
        Assert.Equal(GgmlType.Q8_0, q8Reader.Tensor("blk.0.attn_q.weight").Type);
        Assert.True(new FileInfo(q8).Length < new FileInfo(gguf).Length / 3);
    }

    [Fact]
    public void UserMistakesAreOneLineErrors()
    {
        var (checkpoint, _, _) = WriteCheckpoint();
        var badType = Run("export", "--gguf", Path.Combine(folder, "x.gguf"), "--model", checkpoint, "--type", "q4_0");
        Assert.Equal(1, badType.ExitCode);
        Assert.Equal("error: --type must be f32, f16 or q8_0, got 'q4_0'", badType.Error.Trim());

        string notGguf = Path.Combine(folder, "notes.txt");
        File.WriteAllText(notGguf, "hello, this is text");
        var import = Run("import", "--gguf", notGguf, "--out", Path.Combine(folder, "out"));
        Assert.Equal(1, import.ExitCode);
        Assert.Equal($"error: {notGguf}: not a GGUF file (magic 'hell', expected 'GGUF')", import.Error.Trim());
        Assert.False(Directory.Exists(Path.Combine(folder, "out")));

        var missing = Run("export", "--gguf", Path.Combine(folder, "y.gguf"), "--model", Path.Combine(folder, "nowhere"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Single(missing.Error.Trim().Split('\n'));
        Assert.Contains("nowhere", missing.Error);
    }
}
