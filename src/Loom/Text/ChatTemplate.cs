namespace Loom.Text;

/// <summary>One turn of a conversation.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>
/// Loom's chat format, used by tuning (to build examples) and by serving (to build prompts):
/// <c>&lt;|system|&gt;\n…&lt;|end|&gt;\n&lt;|user|&gt;\n…&lt;|end|&gt;\n&lt;|assistant|&gt;\n…&lt;|end|&gt;\n</c>.
/// The role markers and <c>&lt;|end|&gt;</c> are special tokens of Loom's tokenizers.
/// </summary>
public static class ChatTemplate
{
    public const string End = "<|end|>";
    static readonly string[] Roles = ["system", "user", "assistant"];

    public static string RoleMarker(string role) => $"<|{role}|>";

    /// <summary>The conversation as one string; with <paramref name="addGenerationPrompt"/> it ends with an open assistant turn.</summary>
    public static string Format(IEnumerable<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new System.Text.StringBuilder();
        foreach (var turn in turns)
        {
            if (!Roles.Contains(turn.Role))
                throw new ArgumentException($"unknown chat role '{turn.Role}' (expected system, user or assistant)");
            text.Append(RoleMarker(turn.Role)).Append('\n').Append(turn.Content).Append(End).Append('\n');
        }
        if (addGenerationPrompt) text.Append(RoleMarker("assistant")).Append('\n');
        return text.ToString();
    }
}
