using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.AI.Evaluation;

namespace Loom.Tests.Evaluation;

public sealed class EvaluatorAndCacheTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-eval-cache-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task ReferenceEvaluatorReportsLoomsMetricsThroughTheFramework()
    {
        IEvaluator evaluator = new ReferenceEvaluator();
        var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, "the the the the the the the"));
        var result = await evaluator.EvaluateAsync([], response, null, [new ReferenceContext(["the cat is on the mat"])]);
        Assert.Equal(0.30769, (double)result.Get<NumericMetric>("f1").Value!, 4);
        Assert.Equal(0.0385, (double)result.Get<NumericMetric>("bleu").Value!, 4);
        Assert.Equal(0.0909, (double)result.Get<NumericMetric>("gleu").Value!, 4);
        Assert.Equal(evaluator.EvaluationMetricNames.Order(), result.Metrics.Keys.Order());
        var missing = await evaluator.EvaluateAsync([], response);
        Assert.Contains(missing.Get<NumericMetric>("bleu").Diagnostics!, d => d.Severity == EvaluationDiagnosticSeverity.Error);
    }

    [Fact]
    public async Task CachedAnswersAreReusedByVersionPromptAndOptions()
    {
        var tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'])]); // printable ASCII: the chat template too
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 64 };
        await using var model = LoomModel.Create("tiny", new Transformer(config, 3), tokenizer);
        var version = new ModelVersion("tiny", "h1");
        var (messages, options) = EvalTasks.Request("abc?", new EvalTaskOptions(MaxTokens: 8));

        using var first = new ResponseCacheChatClient(model.AsIChatClient(), folder, version);
        string answer = (await first.GetResponseAsync(messages, options)).Text;
        Assert.Equal((0, 1), (first.Hits, first.Misses));
        using var again = new ResponseCacheChatClient(model.AsIChatClient(), folder, version);
        Assert.Equal(answer, (await again.GetResponseAsync(messages, options)).Text);
        Assert.Equal((1, 0), (again.Hits, again.Misses));
        // Another version, prompt or option is another key.
        Assert.NotEqual(ResponseCacheChatClient.Key(version, messages, options), ResponseCacheChatClient.Key(version with { Hash = "h2" }, messages, options));
        Assert.NotEqual(ResponseCacheChatClient.Key(version, messages, options), ResponseCacheChatClient.Key(version, messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 9 }));
        Assert.NotEqual(ResponseCacheChatClient.Key(version, messages, options), ResponseCacheChatClient.Key(version, EvalTasks.Request("abd?", new EvalTaskOptions(MaxTokens: 8)).Messages, options));
    }
}
