using System.Text;
using Loom.Models;
using Loom.Tests.Training;
using Loom.Text;
using AtomicFile = Loom.IO.AtomicFile;

namespace Loom.Tests.Models;

[Collection(SerialTrainingCollection.Name)]
public sealed class CheckpointTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("loom-ckpt-").FullName;

    public void Dispose()
    {
        AtomicFile.ResetCreateStream();
        Directory.Delete(root, recursive: true);
    }

    static CharTokenizer Tokenizer(string characters) => new(characters.EnumerateRunes());

    static Transformer Model(int vocab, ulong seed = 1) =>
        new(new LlamaConfig { VocabSize = vocab, Dim = 16, Layers = 2, Heads = 2, KvHeads = 1, HiddenDim = 24, MaxSeq = 8, TiedEmbeddings = false }, seed);

    [Fact]
    public void SaveAndLoadRoundTripInTheHuggingFaceLayout()
    {
        var tokenizer = Tokenizer("abcdefg");
        var model = Model(tokenizer.VocabSize);
        string folder = Path.Combine(root, "ckpt");
        Checkpoint.Save(folder, model, tokenizer.Save);
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);
        Assert.False(Directory.Exists(Path.Combine(folder, Checkpoint.TrainingStateFolderName)));
        var loaded = Checkpoint.Load(folder);
        Assert.Equal(model.Config, loaded.Config);
        for (int i = 0; i < model.Parameters.Count; i++)
        {
            Assert.Equal(model.Parameters[i].Name, loaded.Parameters[i].Name);
            Assert.Equal(model.Parameters[i].Span.ToArray(), loaded.Parameters[i].Span.ToArray());
        }
        Assert.Equal(7, Loom.Text.Tokenizer.Load(folder).VocabSize);

        // Saving again replaces the folder whole, and leaves no temporary folders beside it.
        var other = Model(tokenizer.VocabSize, seed: 2);
        Checkpoint.Save(folder, other, tokenizer.Save, state => File.WriteAllText(Path.Combine(state, "marker"), "x"));
        Assert.Equal(other.LmHead.Span.ToArray(), Checkpoint.Load(folder).LmHead.Span.ToArray());
        Assert.True(File.Exists(Path.Combine(folder, "training_state", "marker")));
        Assert.Equal(["ckpt"], Directory.GetDirectories(root).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("num_attention_heads", 0, "Heads must be positive")]
    [InlineData("num_key_value_heads", 0, "KvHeads must be positive")]
    [InlineData("num_hidden_layers", 1000000, "parameters")]
    [InlineData("hidden_size", 1000000, "parameters")]
    [InlineData("vocab_size", -5, "VocabSize must be positive")]
    public void CorruptConfigFieldsAreOneLineErrorsBeforeAnyAllocation(string field, int value, string expected)
    {
        var tokenizer = Tokenizer("abcdefg");
        string folder = Path.Combine(root, "ckpt");
        Checkpoint.Save(folder, Model(tokenizer.VocabSize), tokenizer.Save);
        File.Delete(Path.Combine(folder, "tokenizer.json")); // the config alone is under test
        string configPath = Path.Combine(folder, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config[field] = value;
        config.Remove("head_dim");
        File.WriteAllText(configPath, config.ToJsonString());
        var e = Assert.ThrowsAny<Exception>(() => Checkpoint.Load(folder));
        Assert.True(e is FormatException or InvalidDataException, e.ToString());
        Assert.Contains(expected, e.Message);
        Assert.Contains(folder, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AContextTooLongForMemoryIsRefusedBeforeTheCacheIsAllocated()
    {
        // 40 layers × 20M tokens × 8 channels of keys and values: 51 GB, refused before any of it is allocated.
        var model = new Transformer(new LlamaConfig { VocabSize = 7, Dim = 16, Layers = 40, Heads = 2, KvHeads = 1, HiddenDim = 24, MaxSeq = 20_000_000 });
        var e = Assert.Throws<ArgumentException>(() => new TransformerDecoder(model));
        Assert.Contains("KV cache", e.Message);
        Assert.Contains("GB", e.Message);
    }

    [Fact]
    public void ASaveRemovesTheFoldersOfKilledSavesButNotOfRunningOnes()
    {
        var tokenizer = Tokenizer("abcdefg");
        using var finished = System.Diagnostics.Process.Start("true")!;
        finished.WaitForExit();
        string killed = Path.Combine(root, $".ckpt.partial-{finished.Id}-0123");
        string killedOld = Path.Combine(root, $".ckpt.old-{finished.Id}-4567");
        string running = Path.Combine(root, $".ckpt.partial-{Environment.ProcessId}-89ab");
        string other = Path.Combine(root, ".other.partial-1-cdef");
        foreach (var folder in new[] { killed, killedOld, running, other })
            File.WriteAllText(Path.Combine(Directory.CreateDirectory(folder).FullName, "model.safetensors"), "half");
        Checkpoint.Save(Path.Combine(root, "ckpt"), Model(tokenizer.VocabSize), tokenizer.Save);
        Assert.False(Directory.Exists(killed));
        Assert.False(Directory.Exists(killedOld));
        Assert.True(Directory.Exists(running));
        Assert.True(Directory.Exists(other)); // another checkpoint's leftovers are its own save's to remove
    }

    [Fact]
    public void TokenizerThatDisagreesWithVocabSizeIsNamed()
    {
        var model = Model(7);
        string folder = Path.Combine(root, "ckpt");
        // More tokens than embedding rows is an error; fewer is a padded vocabulary (Qwen2.5: 151,665 tokens, 151,936 rows).
        Checkpoint.Save(folder, model, Tokenizer("abcdef").Save); // 6 tokens, vocab_size 7
        Assert.Equal(7, Checkpoint.Load(folder).Config.VocabSize);
        Checkpoint.Save(folder, model, Tokenizer("abcdefgh").Save); // 8 tokens, vocab_size 7
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(folder));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("8 tokens", e.Message);
        Assert.Contains("vocab_size 7", e.Message);
    }

    [Fact]
    public void TensorThatDisagreesWithTheConfigIsNamed()
    {
        var tokenizer = Tokenizer("abcdefg");
        string folder = Path.Combine(root, "ckpt");
        Checkpoint.Save(folder, Model(7), tokenizer.Save);
        string configPath = Path.Combine(folder, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"intermediate_size\": 24", "\"intermediate_size\": 32"));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(folder));
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("[24, 16]", e.Message);
    }

    /// <summary>A file stream that fails like a full disk once <paramref name="capacity"/> bytes are written.</summary>
    internal sealed class FullDiskStream(string path, int capacity) : Stream
    {
        readonly FileStream inner = new(path, FileMode.CreateNew, FileAccess.Write);

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (inner.Length + buffer.Length > capacity) throw new IOException("No space left on device");
            inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    [Fact]
    public void FullDiskLeavesThePreviousCheckpointAndNoPartialFolder()
    {
        var tokenizer = Tokenizer("abcdefg");
        string folder = Path.Combine(root, "ckpt");
        var first = Model(7, seed: 1);
        Checkpoint.Save(folder, first, tokenizer.Save);
        AtomicFile.CreateStream = path => new FullDiskStream(path, 1000);
        var e = Assert.Throws<IOException>(() => Checkpoint.Save(folder, Model(7, seed: 2), tokenizer.Save));
        Assert.Contains("No space left", e.Message);
        Assert.Equal(["ckpt"], Directory.GetDirectories(root).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
        AtomicFile.ResetCreateStream();
        Assert.Equal(first.LmHead.Span.ToArray(), Checkpoint.Load(folder).LmHead.Span.ToArray());
    }
}
