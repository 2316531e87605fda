namespace Loom.Text;

/// <summary>One turn of a conversation.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>
/// How a model lays a conversation out as text and tokens: Loom's own format (<see cref="LoomChatFormat"/>) or the
/// Jinja chat template a checkpoint carries in tokenizer_config.json (<see cref="JinjaChatFormat"/>). Serving builds
/// prompts with it and stops at its <see cref="StopSequences"/>; tuning builds examples with it and learns the
/// assistant turns its <see cref="Encode"/> marks.
/// </summary>
public interface IChatFormat
{
    /// <summary>The text that ends an assistant turn (such as <c>&lt;|end|&gt;</c>, <c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>); generation stops there.</summary>
    IReadOnlyList<string> StopSequences { get; }

    /// <summary>The conversation as one string; with <paramref name="addGenerationPrompt"/> it ends with an open assistant turn.</summary>
    string Format(IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt);

    /// <summary>
    /// The conversation as token ids, with a mask that is true on the tokens a model should learn to produce: each
    /// assistant turn's content and the marker that ends it.
    /// </summary>
    (int[] Ids, bool[] TargetMask) Encode(IReadOnlyList<ChatTurn> turns, ITokenizer tokenizer, bool addGenerationPrompt);
}

/// <summary>Loom's own chat format (<see cref="ChatTemplate"/>) as an <see cref="IChatFormat"/>: the format of every checkpoint Loom trains.</summary>
public sealed class LoomChatFormat : IChatFormat
{
    public static LoomChatFormat Instance { get; } = new();

    LoomChatFormat() { }

    public IReadOnlyList<string> StopSequences { get; } = [ChatTemplate.End];

    public string Format(IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt) => ChatTemplate.Format(turns, addGenerationPrompt);

    public (int[] Ids, bool[] TargetMask) Encode(IReadOnlyList<ChatTurn> turns, ITokenizer tokenizer, bool addGenerationPrompt) =>
        ChatTemplate.Encode(turns, tokenizer, addGenerationPrompt);
}

/// <summary>Finding a checkpoint's chat format.</summary>
public static class ChatFormat
{
    /// <summary>
    /// The chat format of a checkpoint folder: the Jinja template of its tokenizer_config.json (or chat_template.jinja)
    /// when it has one, else Loom's own format.
    /// </summary>
    public static IChatFormat Load(string folder) => JinjaChatFormat.FromFolder(folder) ?? (IChatFormat)LoomChatFormat.Instance;
}

/// <summary>
/// Loom's chat format, used by tuning (to build examples) and by serving (to build prompts):
/// <c>&lt;|system|&gt;\n…&lt;|end|&gt;\n&lt;|user|&gt;\n…&lt;|end|&gt;\n&lt;|assistant|&gt;\n…&lt;|end|&gt;\n</c>.
/// The role markers and <c>&lt;|end|&gt;</c> are special tokens of Loom's tokenizers. A function's result comes back
/// in a <c>&lt;|tool|&gt;</c> turn (plain text where the vocabulary has no such token); functions are offered in the
/// system turn by <see cref="ToolsBlock"/>, and an assistant turn that calls one holds the call as JSON.
/// </summary>
public static class ChatTemplate
{
    public const string End = SpecialTokens.End;
    static readonly string[] Roles = ["system", "user", "assistant", "tool"];

    /// <summary>
    /// The system-turn text that offers functions: an instruction, then each function as one line of JSON
    /// (<c>{"name", "description", "parameters"}</c>, as the caller serialised it).
    /// </summary>
    public static string ToolsBlock(IEnumerable<string> functionsJson) =>
        "You can call these functions. To call one, answer with only a JSON object {\"name\": function name, \"arguments\": {…}}; " +
        "to answer in words, answer with {\"content\": your answer}. Function results come back in tool turns.\nFunctions:\n" +
        string.Join("\n", functionsJson);

    public static string RoleMarker(string role) => $"<|{role}|>";

    /// <summary>The conversation as one string; with <paramref name="addGenerationPrompt"/> it ends with an open assistant turn.</summary>
    public static string Format(IEnumerable<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new System.Text.StringBuilder();
        foreach (var turn in turns)
        {
            if (!Roles.Contains(turn.Role))
                throw new ArgumentException($"unknown chat role '{turn.Role}' (expected system, user, assistant or tool)");
            text.Append(RoleMarker(turn.Role)).Append('\n').Append(turn.Content).Append(End).Append('\n');
        }
        if (addGenerationPrompt) text.Append(RoleMarker("assistant")).Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// The conversation as token ids, with a mask that is true on the tokens a model should learn to
    /// produce (each assistant turn's content and its end marker). Markers become special tokens where
    /// the vocabulary has them; message content is always plain text, so it cannot inject markers.
    /// </summary>
    public static (int[] Ids, bool[] TargetMask) Encode(IEnumerable<ChatTurn> turns, ITokenizer tokenizer, bool addGenerationPrompt)
    {
        var ids = new List<int>();
        var mask = new List<bool>();
        void Add(string text, bool special, bool target)
        {
            int before = ids.Count;
            tokenizer.Encode(text, ids, allowSpecialTokens: special);
            for (int i = before; i < ids.Count; i++) mask.Add(target);
        }
        foreach (var turn in turns)
        {
            if (!Roles.Contains(turn.Role))
                throw new ArgumentException($"unknown chat role '{turn.Role}' (expected system, user, assistant or tool)");
            bool target = turn.Role == "assistant";
            Add(RoleMarker(turn.Role), special: true, target: false);
            Add("\n", special: false, target: false);
            Add(turn.Content, special: false, target: target);
            Add(End, special: true, target: target);
            Add("\n", special: false, target: false);
        }
        if (addGenerationPrompt)
        {
            Add(RoleMarker("assistant"), special: true, target: false);
            Add("\n", special: false, target: false);
        }
        return ([.. ids], [.. mask]);
    }
}
