using System.Text;
using System.Text.RegularExpressions;

namespace Loom.Logs;

/// <summary>How the template miner groups messages. Null or unset fields take the defaults of the generic miner.</summary>
public sealed record TemplateMinerOptions
{
    /// <summary>Depth of the prefix tree: 2 levels (root, token count) plus Depth − 2 leading tokens.</summary>
    public int Depth { get; init; } = 4;
    /// <summary>Share of equal tokens at which a message joins a template (Drain's st).</summary>
    public double Similarity { get; init; } = 0.5;
    /// <summary>Children per tree node before further leading tokens go to the wildcard branch.</summary>
    public int MaxChildren { get; init; } = 100;
    /// <summary>Regexes whose matches are masked as variables before mining; null = <see cref="Masking.Default"/>.</summary>
    public IReadOnlyList<string>? Masks { get; init; }
    /// <summary>Characters that separate tokens besides whitespace (e.g. "=,"); they stay in the template text.</summary>
    public string Delimiters { get; init; } = "";
    /// <summary>
    /// When a message fits no template, merge it with a template of the same length that differs from it in exactly
    /// one position where both hold a variable-looking token (digits, a wildcard, or a path), instead of starting a new one.
    /// </summary>
    public bool MergeVariablePositions { get; init; } = true;
    /// <summary>
    /// Tokens made only of wildcards and punctuation become one wildcard, and a run of wildcards becomes one, so a
    /// variable that spans a different number of tokens in different lines (a date, a host list) still lines up.
    /// </summary>
    public bool CollapseVariables { get; init; }

    public TemplateMinerOptions Validate()
    {
        if (Depth < 3) throw new ArgumentException($"TemplateMinerOptions.Depth must be at least 3, got {Depth}");
        if (!(Similarity is >= 0 and <= 1)) throw new ArgumentException($"TemplateMinerOptions.Similarity must be in [0, 1], got {Similarity}");
        if (MaxChildren < 1) throw new ArgumentException($"TemplateMinerOptions.MaxChildren must be positive, got {MaxChildren}");
        return this;
    }
}

/// <summary>One template: a stable id, its tokens (wildcards where lines differ) and how many lines it has taken.</summary>
public sealed class LogTemplate
{
    internal LogTemplate(int id, string[] tokens)
    {
        Id = id;
        Tokens = tokens;
    }

    /// <summary>Stable id, 1-based in order of first appearance.</summary>
    public int Id { get; }
    internal string[] Tokens { get; }
    /// <summary>Lines assigned to this template so far.</summary>
    public long Count { get; internal set; }
    /// <summary>The template text: tokens joined by a space, <c>&lt;*&gt;</c> for variable parts.</summary>
    public string Text => string.Join(' ', Tokens);

    Regex? parameterRegex;
    string? parameterRegexText;

    /// <summary>The values the wildcards of this template take in <paramref name="content"/> (empty when it no longer lines up).</summary>
    public IReadOnlyList<string> Parameters(string content)
    {
        string text = Text;
        if (!text.Contains(Masking.Wildcard, StringComparison.Ordinal)) return [];
        if (parameterRegex is null || parameterRegexText != text)
        {
            var pattern = new StringBuilder("^");
            foreach (string piece in text.Split(Masking.Wildcard))
            {
                if (pattern.Length > 1) pattern.Append("(.*?)");
                pattern.Append(Regex.Replace(Regex.Escape(piece), @"(\\ )+", @"\s*"));
            }
            pattern.Append('$');
            parameterRegex = new Regex(pattern.ToString(), RegexOptions.CultureInvariant | RegexOptions.Singleline, TimeSpan.FromSeconds(1));
            parameterRegexText = text;
        }
        Match match;
        try { match = parameterRegex.Match(content.Trim()); }
        catch (RegexMatchTimeoutException) { return []; }
        if (!match.Success) return [];
        var values = new string[match.Groups.Count - 1];
        for (int i = 1; i < match.Groups.Count; i++) values[i - 1] = match.Groups[i].Value;
        return values;
    }
}

/// <summary>
/// An online template miner in the manner of Drain (He et al., ICWS'17): messages are masked, split into tokens, routed
/// through a fixed-depth prefix tree (token count, then the leading tokens; variable-looking tokens take the wildcard
/// branch) to a leaf of templates, and join the most similar template when the share of equal tokens reaches
/// <see cref="TemplateMinerOptions.Similarity"/>; where they differ the template gets a wildcard. Memory grows with
/// the number of templates, never with the number of lines.
/// Beyond Drain: masking inside tokens (every digit run), similarity that counts a variable-looking token against a
/// template wildcard as a match, and merging a would-be new template into one that differs only in a variable position.
/// </summary>
public sealed class TemplateMiner
{
    sealed class Node
    {
        public readonly Dictionary<string, Node> Children = new(StringComparer.Ordinal);
        public readonly List<LogTemplate> Templates = [];
    }

    readonly Node root = new();
    readonly List<LogTemplate> templates = [];
    readonly Masking masking;
    readonly char[] separators;

    public TemplateMiner(TemplateMinerOptions? options = null)
    {
        Options = (options ?? new TemplateMinerOptions()).Validate();
        masking = new Masking(Options.Masks ?? Masking.Default);
        separators = [' ', '\t', '\r', '\n'];
    }

    public TemplateMinerOptions Options { get; }

    /// <summary>Every template so far, by id (index = id − 1).</summary>
    public IReadOnlyList<LogTemplate> Templates => templates;

    /// <summary>The template that <paramref name="content"/> joins (a new one when none is similar enough).</summary>
    public LogTemplate Add(string content)
    {
        string[] tokens = Tokenize(content);
        var leaf = Leaf(tokens, create: true)!;
        var best = Closest(leaf.Templates, tokens, out double similarity);
        if (best is not null && similarity >= Options.Similarity)
        {
            Generalise(best, tokens);
        }
        else if (Options.MergeVariablePositions && FindOneOff(leaf.Templates, tokens) is { } near)
        {
            best = near;
            Generalise(best, tokens);
        }
        else
        {
            best = new LogTemplate(templates.Count + 1, tokens);
            templates.Add(best);
            leaf.Templates.Add(best);
        }
        best.Count++;
        return best;
    }

    /// <summary>The template <paramref name="content"/> would join without changing anything, or null.</summary>
    public LogTemplate? Match(string content)
    {
        string[] tokens = Tokenize(content);
        var leaf = Leaf(tokens, create: false);
        if (leaf is null) return null;
        var best = Closest(leaf.Templates, tokens, out double similarity);
        return best is not null && similarity >= Options.Similarity ? best : null;
    }

    internal string[] Tokenize(string content)
    {
        string masked = masking.Apply(content);
        foreach (char delimiter in Options.Delimiters) masked = masked.Replace(delimiter.ToString(), $" {delimiter} ", StringComparison.Ordinal);
        string[] tokens = masked.Split(separators, StringSplitOptions.RemoveEmptyEntries);
        if (!Options.CollapseVariables) return tokens;
        var collapsed = new List<string>(tokens.Length);
        foreach (string token in tokens)
        {
            string t = token.Contains(Masking.Wildcard, StringComparison.Ordinal) && !token.Any(char.IsLetter) ? Masking.Wildcard : token;
            if (t == Masking.Wildcard && collapsed.Count > 0 && collapsed[^1] == Masking.Wildcard) continue;
            collapsed.Add(t);
        }
        return [.. collapsed];
    }

    /// <summary>A token that is probably a variable: it holds a digit or a wildcard.</summary>
    internal static bool LooksVariable(string token)
    {
        if (token.Contains(Masking.Wildcard, StringComparison.Ordinal)) return true;
        foreach (char c in token)
            if (char.IsAsciiDigit(c)) return true;
        return false;
    }

    Node? Leaf(string[] tokens, bool create)
    {
        string lengthKey = tokens.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var node = Child(root, lengthKey, create);
        if (node is null) return null;
        int prefix = Math.Min(Options.Depth - 2, tokens.Length);
        for (int i = 0; i < prefix; i++)
        {
            string token = LooksVariable(tokens[i]) ? Masking.Wildcard : tokens[i];
            if (!node.Children.ContainsKey(token) && node.Children.Count >= Options.MaxChildren) token = Masking.Wildcard;
            var next = Child(node, token, create);
            if (next is null)
            {
                if (token == Masking.Wildcard) return null;
                next = Child(node, Masking.Wildcard, false);
                if (next is null) return null;
            }
            node = next;
        }
        return node;
    }

    static Node? Child(Node node, string key, bool create)
    {
        if (node.Children.TryGetValue(key, out var child)) return child;
        if (!create) return null;
        child = new Node();
        node.Children[key] = child;
        return child;
    }

    static LogTemplate? Closest(List<LogTemplate> candidates, string[] tokens, out double bestSimilarity)
    {
        LogTemplate? best = null;
        bestSimilarity = -1;
        int bestWildcards = -1;
        foreach (var template in candidates)
        {
            int equal = 0, wildcards = 0;
            var t = template.Tokens;
            for (int i = 0; i < t.Length; i++)
            {
                if (t[i] == Masking.Wildcard)
                {
                    wildcards++;
                    if (LooksVariable(tokens[i])) equal++;
                }
                else if (t[i] == tokens[i]) equal++;
            }
            double similarity = t.Length == 0 ? 1 : (double)equal / t.Length;
            if (similarity > bestSimilarity || (similarity == bestSimilarity && wildcards > bestWildcards))
            {
                best = template;
                bestSimilarity = similarity;
                bestWildcards = wildcards;
            }
        }
        return best;
    }

    static LogTemplate? FindOneOff(List<LogTemplate> candidates, string[] tokens)
    {
        foreach (var template in candidates)
        {
            int differences = 0, at = -1;
            var t = template.Tokens;
            for (int i = 0; i < t.Length && differences < 2; i++)
            {
                if (t[i] == tokens[i]) continue;
                differences++;
                at = i;
            }
            if (differences == 1 && LooksVariable(t[at]) && LooksVariable(tokens[at])) return template;
        }
        return null;
    }

    static void Generalise(LogTemplate template, string[] tokens)
    {
        var t = template.Tokens;
        for (int i = 0; i < t.Length; i++)
            if (t[i] != tokens[i]) t[i] = Masking.Wildcard;
    }
}
