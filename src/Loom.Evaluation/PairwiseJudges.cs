using System.Text;
using System.Text.RegularExpressions;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;
using Microsoft.Extensions.AI;

namespace Loom.Evaluation;

/// <summary>Compares two answers to one prompt: 1 when A is better, 0 when B is, 0.5 for a tie.</summary>
public interface IPairwiseJudge
{
    Task<double> CompareAsync(string prompt, string answerA, string answerB, IReadOnlyList<string> references, CancellationToken cancellationToken = default);
}

/// <summary>A program judge: each answer scored against the references ("f1", "exact_match", "contains"; "program" is "f1").</summary>
public sealed class ProgramPairwiseJudge(string name) : IPairwiseJudge
{
    public Task<double> CompareAsync(string prompt, string answerA, string answerB, IReadOnlyList<string> references, CancellationToken cancellationToken = default) =>
        Task.FromResult(EvalTasks.Judge(name == "program" ? "f1" : name, answerA, answerB, references));
}

/// <summary>
/// The reward model trained by <c>loom finetune reward</c> as a judge: each answer is scored as the assistant's turn after the
/// prompt (the chat template the reward model was trained on); the higher reward wins, equal rewards tie.
/// </summary>
public sealed class RewardPairwiseJudge(RewardModel reward, ITokenizer tokenizer, ComputeContext? compute = null) : IPairwiseJudge
{
    /// <summary>Loads a reward-model folder and its tokenizer.</summary>
    public static RewardPairwiseJudge Load(string folder, ComputeContext? compute = null) =>
        new(RewardModel.Load(folder), Tokenizer.Load(Loom.Models.Checkpoint.Resolve(folder)), compute);

    /// <summary>The rewards of answers to one prompt.</summary>
    public float[] Rewards(string prompt, IReadOnlyList<string> answers) =>
        reward.Score([.. answers.Select(a => TokenSequence.FromResponse([new ChatTurn("user", prompt)], a, tokenizer))], compute: compute);

    public Task<double> CompareAsync(string prompt, string answerA, string answerB, IReadOnlyList<string> references, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var rewards = Rewards(prompt, [answerA, answerB]);
        return Task.FromResult(rewards[0] > rewards[1] ? 1.0 : rewards[0] < rewards[1] ? 0.0 : 0.5);
    }
}

/// <summary>
/// Any <see cref="IChatClient"/> as a judge, asked twice with a fixed prompt which answer is better, "A" or "B": once with
/// A first and once with the two swapped, so a judge that prefers a position gives a tie. The verdict is the mean of the two
/// (each 1, 0 or 0.5 when the reply names neither or both).
/// </summary>
public sealed partial class ChatPairwiseJudge(IChatClient judge) : IPairwiseJudge
{
    /// <summary>The fixed instruction before the question, the reference (when there is one) and the two answers.</summary>
    public const string Instruction = "You compare two answers to the same question. Reply with one letter: A if answer A is better, B if answer B is better.";

    public static string Prompt(string question, string first, string second, IReadOnlyList<string> references)
    {
        var prompt = new StringBuilder(Instruction).Append("\n\nQuestion:\n").Append(question.Trim()).Append('\n');
        if (references.Count > 0) prompt.Append("\nReference answer:\n").Append(references[0].Trim()).Append('\n');
        return prompt.Append("\nAnswer A:\n").Append(first.Trim()).Append("\n\nAnswer B:\n").Append(second.Trim()).Append('\n').ToString();
    }

    public async Task<double> CompareAsync(string prompt, string answerA, string answerB, IReadOnlyList<string> references, CancellationToken cancellationToken = default)
    {
        double straight = await AskAsync(Prompt(prompt, answerA, answerB, references), cancellationToken);
        double swapped = await AskAsync(Prompt(prompt, answerB, answerA, references), cancellationToken);
        return (straight + (1 - swapped)) / 2;
    }

    /// <summary>1 when the reply's verdict is A, 0 when it is B, 0.5 otherwise.</summary>
    async Task<double> AskAsync(string prompt, CancellationToken cancellationToken)
    {
        var response = await judge.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 }, cancellationToken);
        return Verdict(response.Text);
    }

    /// <summary>The verdict in a reply: its first standalone letter A or B (1 or 0); 0.5 when there is none.</summary>
    public static double Verdict(string reply) => Letter().Match(reply) is { Success: true } m ? m.Value == "A" ? 1 : 0 : 0.5;

    [GeneratedRegex(@"\b[AB]\b")]
    private static partial Regex Letter();
}
