using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Server;
using Loom.Text;

namespace Loom.Tests.IO;

/// <summary>
/// The bounds docs/limits.md lists for inputs that had none: each is checked before the input is read whole, and the
/// refusal is one line naming the file (or the field).
/// </summary>
public sealed class InputBoundTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-bounds-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>A file of that length whose bytes are never written (sparse): only a size check can be quick about it.</summary>
    string Sparse(string name, long length)
    {
        string path = Path.Combine(folder, name);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        stream.SetLength(length);
        return path;
    }

    [Fact]
    public void AJsonlLineLongerThanTheLimitIsRefusedBeforeItIsHeldWhole()
    {
        string path = Path.Combine(folder, "pairs.jsonl");
        using (var writer = new StreamWriter(path))
        {
            writer.WriteLine("""{"prompt":"a","completion":"b"}""");
            writer.Write("{\"prompt\":\"");
            var chunk = new string('x', 1 << 20);
            for (int i = 0; i <= Loom.IO.Utf8Lines.MaxLineBytes >> 20; i++) writer.Write(chunk);
        }
        var error = Assert.Throws<InvalidDataException>(() => FeedbackDatasets.Read(path));
        Assert.StartsWith($"{path}:2: the line is longer than 64 MiB", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void AnOversizedTokenizerJsonIsRefusedByItsSize()
    {
        string path = Sparse("tokenizer.json", TokenizerJson.MaxFileBytes + 1);
        var error = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(path));
        Assert.Contains("a tokenizer.json is at most 256 MiB", error.Message);
        Assert.Throws<InvalidDataException>(() => Checkpoint.TokenizerVocabSize(path));
    }

    [Fact]
    public void AnOversizedConfigJsonIsRefusedByItsSize()
    {
        string path = Sparse("config.json", LlamaConfig.MaxFileBytes + 1);
        var error = Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(path));
        Assert.Contains("a config.json is at most 1 MiB", error.Message);
    }

    [Fact]
    public void AStopStringLongerThanTheLimitIsA400()
    {
        JsonObject Body(string stop) => new()
        {
            ["model"] = "m",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
            ["stop"] = new JsonArray(stop),
        };
        var error = Assert.Throws<ApiException>(() => OpenAiProtocol.ParseCompletion(Body(new string('s', OpenAiProtocol.MaxStopChars + 1)), chat: true));
        Assert.Equal(400, error.Status);
        Assert.Equal("stop", error.Param);
        Assert.NotNull(OpenAiProtocol.ParseCompletion(Body(new string('s', OpenAiProtocol.MaxStopChars)), chat: true).Stop);
    }
}
