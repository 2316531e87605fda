using System.Text;
using System.Text.RegularExpressions;

namespace Loom.Logs;

/// <summary>
/// The header layout of one log system, written as logparser writes it: <c>&lt;Date&gt; &lt;Time&gt; &lt;Level&gt;: &lt;Content&gt;</c>.
/// Each <c>&lt;Field&gt;</c> becomes a named group, a space matches any run of spaces, everything else is a regex
/// fragment; <c>Content</c> is the message the miner reads. A line the layout does not match keeps its whole text as
/// content (nothing is dropped) and is counted as unmatched.
/// </summary>
public sealed class LogFormat
{
    static readonly Regex FieldPattern = new(@"<(\w+)>", RegexOptions.Compiled);

    readonly Regex regex;

    public LogFormat(string layout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(layout);
        Layout = layout;
        var pattern = new StringBuilder("^");
        var fields = new List<string>();
        int position = 0;
        foreach (Match field in FieldPattern.Matches(layout))
        {
            pattern.Append(Literal(layout[position..field.Index]));
            string name = field.Groups[1].Value;
            if (fields.Contains(name)) throw new ArgumentException($"LogFormat.Layout names the field {name} twice: {layout}");
            fields.Add(name);
            pattern.Append(name == "Content" ? $"(?<{name}>.*)" : $"(?<{name}>.*?)");
            position = field.Index + field.Length;
        }
        pattern.Append(Literal(layout[position..])).Append('$');
        if (!fields.Contains("Content")) throw new ArgumentException($"LogFormat.Layout has no <Content> field: {layout}");
        Fields = fields;
        try { regex = Build(pattern.ToString()); }
        catch (ArgumentException e) { throw new ArgumentException($"LogFormat.Layout is not a valid pattern ({e.Message.Split('\n')[0]}): {layout}"); }
    }

    /// <summary>
    /// Linear time where the layout allows it: five lazy fields between spaces backtrack as the fifth power of the
    /// line on a line that almost fits (a second per 800-byte line, until the timeout). A layout with a lookaround
    /// or backreference, which the non-backtracking engine cannot run, keeps the backtracking one and its timeout.
    /// </summary>
    static Regex Build(string pattern)
    {
        try { return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (NotSupportedException) { return new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
    }

    /// <summary>The layout as given.</summary>
    public string Layout { get; }

    /// <summary>The field names in order, Content included.</summary>
    public IReadOnlyList<string> Fields { get; }

    static string Literal(string fragment) => Regex.Replace(fragment, " +", @"\s+");

    /// <summary>The header fields and the content of <paramref name="line"/>, or null when the layout does not match.</summary>
    public (IReadOnlyDictionary<string, string> Header, string Content)? Match(string line)
    {
        Match match;
        try { match = regex.Match(line); }
        catch (RegexMatchTimeoutException) { return null; }
        if (!match.Success) return null;
        var header = new Dictionary<string, string>(Fields.Count - 1);
        foreach (string field in Fields)
            if (field != "Content") header[field] = match.Groups[field].Value;
        return (header, match.Groups["Content"].Value);
    }
}
