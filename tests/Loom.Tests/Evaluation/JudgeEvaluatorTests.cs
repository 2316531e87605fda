using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.AI.Evaluation;

namespace Loom.Tests.Evaluation;

/// <summary>
/// Loom's judged metrics inside Microsoft.Extensions.AI.Evaluation: the framework's <see cref="CompositeEvaluator"/> runs
/// Loom's evaluators, and the judge is whatever <see cref="ChatConfiguration"/> carries — a program judge or a Loom model.
/// </summary>
public class JudgeEvaluatorTests
{
    static readonly ChatMessage[] Question = [new ChatMessage(ChatRole.User, "Where is the Eiffel tower?")];
    static readonly ChatResponse Answer = new(new ChatMessage(ChatRole.Assistant, "The Eiffel tower is in Paris. It was painted green."));
    const string Grounding = "The Eiffel tower is a wrought-iron tower in Paris, France.";

    [Fact]
    public async Task TheFrameworksCompositeRunsLoomsEvaluatorsWithTheJudgeItIsGiven()
    {
        var judge = new OverlapJudgeChatClient();
        IEvaluator evaluator = new CompositeEvaluator(new ReferenceEvaluator(), new JudgeEvaluator());
        var result = await evaluator.EvaluateAsync(Question, Answer, new ChatConfiguration(judge),
            [new ReferenceContext(["The Eiffel tower is in Paris."]), new GroundingContext(Grounding)]);

        // The same numbers as asking the judge directly: one of two sentences supported; relevance from the prompt.
        Assert.Equal(0.5, (double)result.Get<NumericMetric>("faithfulness").Value!);
        Assert.Equal(await ChatJudge.FaithfulnessAsync(judge, Grounding, Answer.Text), (double)result.Get<NumericMetric>("faithfulness").Value!);
        Assert.Equal(await ChatJudge.AnswerRelevanceAsync(judge, Question[0].Text, Answer.Text), (double)result.Get<NumericMetric>("answer_relevance").Value!);
        Assert.NotNull(result.Get<NumericMetric>("rouge_l").Value);
    }

    [Fact]
    public async Task ALoomModelIsTheFrameworksJudge()
    {
        var tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'])]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 512 };
        await using var model = LoomModel.Create("judge", new Transformer(config, 4), tokenizer);
        var judge = model.AsIChatClient();
        var result = await new JudgeEvaluator().EvaluateAsync(Question, Answer, new ChatConfiguration(judge), [new GroundingContext(Grounding)]);

        // Greedy judging is deterministic: the framework's run gives what the judge gives when asked directly.
        double relevance = (double)result.Get<NumericMetric>("answer_relevance").Value!;
        Assert.InRange(relevance, 0, 1);
        Assert.Equal(await ChatJudge.AnswerRelevanceAsync(judge, Question[0].Text, Answer.Text), relevance);
        Assert.Equal(await ChatJudge.FaithfulnessAsync(judge, Grounding, Answer.Text), (double)result.Get<NumericMetric>("faithfulness").Value!);

        var withoutJudge = await new JudgeEvaluator().EvaluateAsync(Question, Answer);
        Assert.Contains(withoutJudge.Get<NumericMetric>("answer_relevance").Diagnostics!, d => d.Severity == EvaluationDiagnosticSeverity.Error);
    }
}
