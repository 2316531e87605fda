using Loom.Text;

namespace Loom.Serving.Pipeline;

/// <summary>
/// Instruction data synthesised from documented members: "What does {member} do?" answered by the first sentence of
/// its summary, plainly or from numbered sources that cite it.
/// </summary>
public static class InstructionData
{
    /// <summary>The question asked about a member.</summary>
    public static string Question(DocMember member) => $"What does {member.Title} do?";

    /// <summary>The member's summary up to the end of its first sentence (at most 200 characters, on one line).</summary>
    public static string FirstSentence(string text)
    {
        string line = text.ReplaceLineEndings(" ").Trim();
        int end = line.IndexOf(". ", StringComparison.Ordinal);
        string sentence = end >= 0 ? line[..(end + 1)] : line;
        return sentence.Length <= 200 ? sentence : sentence[..200].TrimEnd() + "…";
    }

    /// <summary>
    /// One example per member: half plain questions, half the grounded-answer prompt (the member, mostly with a
    /// distractor, as numbered sources) answered with a citation, so a tuned model learns both to answer and to cite.
    /// Prompts are shortened to leave the answer room in <paramref name="contextLength"/> tokens.
    /// </summary>
    public static List<SupervisedExample> Synthesize(IReadOnlyList<DocMember> members, ITokenizer tokenizer, int contextLength, Random random,
        IProgress<string>? progress = null)
    {
        var examples = new List<SupervisedExample>(members.Count);
        int withSources = 0;
        for (int i = 0; i < members.Count; i++)
        {
            var member = members[i];
            string answer = FirstSentence(member.Text);
            var plain = new SupervisedExample([new ChatTurn("user", Question(member)), new ChatTurn("assistant", answer)], member.Id);
            if (i % 2 == 0 || members.Count < 2)
            {
                examples.Add(plain);
                continue;
            }
            var distractor = members[(i + 1 + random.Next(members.Count - 1)) % members.Count];
            // One or two sources, the member's in either place, as retrieval will give them when the prompt must be shortened.
            bool alone = random.Next(4) == 0;
            bool first = alone || random.Next(2) == 0;
            DocMember[] sources = alone ? [member] : first ? [member, distractor] : [distractor, member];
            string cited = $"{answer} [{(first ? 1 : 2)}]";
            int room = contextLength - tokenizer.Encode(cited).Length - 4;
            if (GroundedAnswers.FittingPrompt(Question(member), sources, tokenizer, room) is not { } turns)
            {
                examples.Add(plain);
                continue;
            }
            withSources++;
            examples.Add(new SupervisedExample([.. turns, new ChatTurn("assistant", cited)], member.Id));
        }
        progress?.Report($"{examples.Count:N0} examples ({withSources:N0} with sources)");
        return examples;
    }
}
