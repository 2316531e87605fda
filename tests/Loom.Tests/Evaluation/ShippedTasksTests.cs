using Loom.Evaluation;
using Loom.Models;
using Loom.Tests.Models;
using Loom.Text;

namespace Loom.Tests.Evaluation;

/// <summary>The task files shipped in eval/ load, point at data that exists, and their items parse.</summary>
public class ShippedTasksTests
{
    static string Folder => Path.Combine(GgufReference.RepoRoot(), "eval");

    [Fact]
    public void EveryShippedTaskLoadsAndItsDataParses()
    {
        var tasks = Directory.GetFiles(Folder, "*.json").Order().Select(EvalTask.Load).ToDictionary(t => t.Name);
        Assert.Equal(["dotnet-members-choice", "hdfs-dev", "quickstart-heldout", "retrieval-questions", "tinyshakespeare"], tasks.Keys.Order());
        var shakespeare = EvalTasks.ReadDocuments(tasks["tinyshakespeare"]);
        Assert.Equal(20_000, Assert.Single(shakespeare).Length);
        Assert.StartsWith(File.ReadAllText(GgufReference.Shakespeare())[(int)(1_115_394 * 0.9)..][..50], shakespeare[0]);
        var choices = EvalTasks.ReadChoices(tasks["dotnet-members-choice"]);
        Assert.Equal(200, choices.Count);
        Assert.All(choices, c => Assert.Equal(4, c.Choices.Distinct().Count()));
        Assert.InRange(choices.Count(c => c.Answer == 0), 25, 75); // answer positions are spread
        Assert.Equal(386, EvalTasks.ReadQuestions(tasks["retrieval-questions"]).Count);
        Assert.Equal(50, EvalTasks.ReadPrompts(tasks["quickstart-heldout"]).Count);
    }

    [Fact]
    [Trait(TestCategories.Category, TestCategories.Slow)]
    public void TheShippedQuickstartQuestionsAreTheOnesTheQuickstartHoldsOut()
    {
        var task = EvalTask.Load(Path.Combine(Folder, "quickstart-heldout.json"));
        var shipped = EvalTasks.ReadPrompts(task);
        var heldOut = Loom.Serving.Pipeline.Quickstart.HeldOutQuestions(fast: false);
        Assert.Equal(heldOut.Select(h => h.Question), shipped.Select(p => p.Prompt));
        Assert.Equal(heldOut.Select(h => h.Reference), shipped.Select(p => Assert.Single(p.References)));
        Assert.Equal(Loom.Serving.Pipeline.QuickstartPlan.For(false).AnswerTokens, task.Options.MaxTokens);
    }

    [Fact]
    public void ShakespeareTaskRunsThroughTheCliAndAnUntrainedModelScoresAboutUniform()
    {
        string root = Directory.CreateTempSubdirectory("loom-eval-shipped-").FullName;
        try
        {
            var tokenizer = CharTokenizer.Train([File.ReadAllText(GgufReference.Shakespeare())]);
            var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 64 };
            string model = Path.Combine(root, "model");
            Checkpoint.Save(model, new Transformer(config, 1), tokenizer.Save);
            string output = Path.Combine(root, "run.json");
            var result = CliRun.Run("eval", "--task", Path.Combine(Folder, "tinyshakespeare.json"), "--model", model, "--out", output, "--threads", "1");
            Assert.True(result.ExitCode == 0, result.Error);
            // A freshly initialised model predicts nearly uniformly: log2(65) = 6.02 bits per character.
            double bits = EvalRun.Load(output).Tasks[0].Metrics["bits_per_byte"].Value;
            Assert.InRange(bits, Math.Log2(tokenizer.VocabSize) - 0.1, Math.Log2(tokenizer.VocabSize) + 0.1);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
