using Loom.Evaluation;
using Loom.Tests.Models;

namespace Loom.Tests.Evaluation;

/// <summary>The task files shipped in eval/ load, point at data that exists, and their items parse.</summary>
public class ShippedTasksTests
{
    static string Folder => Path.Combine(GgufReference.RepoRoot(), "eval");

    [Fact]
    public void EveryShippedTaskLoadsAndItsDataParses()
    {
        var tasks = Directory.GetFiles(Folder, "*.json").Order().Select(EvalTask.Load).ToDictionary(t => t.Name);
        Assert.Equal(["dotnet-members-choice", "retrieval-questions", "tinyshakespeare"], tasks.Keys.Order());
        var shakespeare = EvalTasks.ReadDocuments(tasks["tinyshakespeare"]);
        Assert.Equal(20_000, Assert.Single(shakespeare).Length);
        Assert.StartsWith(File.ReadAllText(GgufReference.Shakespeare())[(int)(1_115_394 * 0.9)..][..50], shakespeare[0]);
        var choices = EvalTasks.ReadChoices(tasks["dotnet-members-choice"]);
        Assert.Equal(200, choices.Count);
        Assert.All(choices, c => Assert.Equal(4, c.Choices.Distinct().Count()));
        Assert.InRange(choices.Count(c => c.Answer == 0), 25, 75); // answer positions are spread
        Assert.Equal(386, EvalTasks.ReadQuestions(tasks["retrieval-questions"]).Count);
    }
}
