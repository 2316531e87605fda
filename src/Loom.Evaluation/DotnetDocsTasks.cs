using System.Text.Json;
using Loom.IO;
using Loom.Text;

namespace Loom.Evaluation;

/// <summary>
/// Builds the shipped multiple-choice set "which member does this summary describe?" from the .NET API docs: a
/// deterministic sample of documented members (a summary of at least 40 characters, a title under 80), each with three
/// other members of the same kind (method, property, type…) as distractors and the right answer at a random position.
/// The same docs, count and seed give the same file.
/// </summary>
public static class DotnetDocsTasks
{
    const int MaxSummary = 300;

    public static IReadOnlyList<EvalTasks.ChoiceItem> MemberChoices(IEnumerable<DocMember> members, int count, int seed)
    {
        var pool = members.Where(m => m.Title.Length < 80 && m.Text.Length >= 40 && m.Id.Length > 2 && m.Id[1] == ':')
            .DistinctBy(m => m.Title).ToList();
        if (pool.Count < count + 3) throw new InvalidDataException($"only {pool.Count} usable documented members, {count + 3} needed");
        var random = new Random(seed);
        for (int i = pool.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        var byKind = pool.GroupBy(m => m.Id[0]).ToDictionary(g => g.Key, g => g.ToList());
        var items = new List<EvalTasks.ChoiceItem>();
        foreach (var member in pool)
        {
            if (items.Count == count) break;
            var sameKind = byKind[member.Id[0]];
            if (sameKind.Count < 4) continue;
            var distractors = new List<string>();
            while (distractors.Count < 3)
            {
                var other = sameKind[random.Next(sameKind.Count)];
                if (other.Title != member.Title && !distractors.Contains(other.Title)) distractors.Add(other.Title);
            }
            int answer = random.Next(4);
            distractors.Insert(answer, member.Title);
            string summary = member.Text.ReplaceLineEndings(" ");
            if (summary.Length > MaxSummary) summary = summary[..MaxSummary] + "…";
            items.Add(new EvalTasks.ChoiceItem($"Summary: {summary}\nWhich .NET member does this summary describe?\nAnswer:", distractors, answer));
        }
        return items;
    }

    /// <summary>Writes items as the JSONL a multiple_choice task reads (atomically).</summary>
    public static void Save(string path, IReadOnlyList<EvalTasks.ChoiceItem> items) =>
        AtomicFile.WriteAllText(path, string.Concat(items.Select(i =>
            JsonSerializer.Serialize(new { context = i.Context, choices = i.Choices, answer = i.Answer }) + "\n")));
}
