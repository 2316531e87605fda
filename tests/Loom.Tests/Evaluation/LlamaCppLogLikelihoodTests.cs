using Loom.Cli;
using Loom.Evaluation;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Tests.Models;
using Loom.Text;
using Xunit.Abstractions;

namespace Loom.Tests.Evaluation;

/// <summary>
/// Loom's evaluation numbers are checkable outside Loom: the same weights exported to an F32 GGUF and run by llama.cpp
/// (LLamaSharp) give the same multiple-choice log-likelihoods and rolling-window perplexity, item by item, through the
/// same task code (an <see cref="ILogLikelihoodModel"/> for each), and `loom eval --gguf` reports what `--model` does.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public sealed class LlamaCppLogLikelihoodTests(ITestOutputHelper output) : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-llamacpp-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void MultipleChoiceAndPerplexityEqualLlamaCppsWithin1e3PerItem()
    {
        string text = File.ReadAllText(GgufReference.Shakespeare())[..200_000];
        var tokenizer = CharTokenizer.Train([text]);
        var config = new LlamaConfig
        {
            VocabSize = tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 64,
            RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false,
        };
        var model = Transformer.FromTensors(config, GgufReference.RandomWeights(config, 21), "random weights");
        string checkpoint = Path.Combine(folder, "model");
        Checkpoint.Save(checkpoint, model, tokenizer.Save);
        string gguf = Path.Combine(folder, "model.gguf");
        LlamaGguf.Export(gguf, model, tokenizer, GgmlType.F32, "tiny");

        var loom = new TransformerLogLikelihood(model, tokenizer, ModelVersion.Of(checkpoint));
        using var peer = LlamaCppLogLikelihood.Load(gguf, threads: 1, contextSize: config.MaxSeq);
        Assert.Equal(loom.ContextLength, peer.ContextLength);
        Assert.Equal(loom.BosId, peer.BosId);

        var random = new Random(5);
        string Snippet(int length) { int start = random.Next(text.Length - length); return text.Substring(start, length); }
        double worstChoice = 0, worstDocument = 0;
        for (int item = 0; item < 12; item++)
        {
            var choiceItem = new EvalTasks.ChoiceItem(Snippet(20 + item * 4), [Snippet(5), Snippet(12), Snippet(3), Snippet(70)], 0);
            var expected = EvalTasks.ChoiceLogLikelihoods(loom, choiceItem);
            var actual = EvalTasks.ChoiceLogLikelihoods(peer, choiceItem);
            for (int c = 0; c < expected.Length; c++)
            {
                Assert.True(Math.Abs(expected[c] - actual[c]) < 1e-3, $"item {item} choice {c}: Loom {expected[c]}, llama.cpp {actual[c]}");
                worstChoice = Math.Max(worstChoice, Math.Abs(expected[c] - actual[c]));
            }
        }
        for (int document = 0; document < 4; document++)
        {
            string snippet = Snippet(50 + document * 60); // one window, and several with a shorter last one
            double expected = EvalTasks.DocumentNll(loom, snippet).Nats, actual = EvalTasks.DocumentNll(peer, snippet).Nats;
            Assert.True(Math.Abs(expected - actual) < 1e-3, $"document {document}: Loom {expected} nats, llama.cpp {actual}");
            worstDocument = Math.Max(worstDocument, Math.Abs(expected - actual));
        }
        output.WriteLine($"max |Loom - llama.cpp|: {worstChoice:E2} nats per choice, {worstDocument:E2} nats per document");

        // The CLI: --gguf runs the same tasks through llama.cpp and reports the same numbers.
        File.WriteAllText(Path.Combine(folder, "doc.txt"), Snippet(300));
        File.WriteAllText(Path.Combine(folder, "ppl.json"), """{"name": "doc", "kind": "perplexity", "data": "doc.txt"}""");
        string task = Path.Combine(folder, "ppl.json"), loomRun = Path.Combine(folder, "loom.json"), peerRun = Path.Combine(folder, "peer.json");
        var a = CliRun.Run("eval", "--task", task, "--model", checkpoint, "--out", loomRun, "--threads", "1");
        Assert.True(a.ExitCode == 0, a.Error);
        var b = CliRun.Run("eval", "--task", task, "--gguf", gguf, "--out", peerRun, "--threads", "1");
        Assert.True(b.ExitCode == 0, b.Error);
        double loomBits = EvalRun.Load(loomRun).Tasks[0].Metrics["bits_per_byte"].Value, peerBits = EvalRun.Load(peerRun).Tasks[0].Metrics["bits_per_byte"].Value;
        Assert.True(Math.Abs(loomBits - peerBits) < 1e-5, $"bits/byte: Loom {loomBits}, llama.cpp {peerBits}");
    }
}
