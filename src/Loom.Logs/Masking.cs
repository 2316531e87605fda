using System.Text.RegularExpressions;

namespace Loom.Logs;

/// <summary>
/// Replaces the variable parts of a message (ids, addresses, numbers, hex, paths) by <see cref="Wildcard"/> before
/// mining, so two lines that differ only there look alike. The patterns are ordinary .NET regexes, applied in order.
/// </summary>
public sealed class Masking
{
    /// <summary>The wildcard every template uses for a variable part.</summary>
    public const string Wildcard = "<*>";

    /// <summary>IPv4 address with optional port, e.g. 10.251.73.220:50010.</summary>
    public const string Ip = @"(?<![\w.])\d{1,3}(\.\d{1,3}){3}(:\d+)?(?![\w.])";
    /// <summary>0x-prefixed hex, e.g. 0x7fed806eb5d.</summary>
    public const string Hex = @"\b0[xX][0-9a-fA-F]+\b";
    /// <summary>A UUID or a long hex identifier (at least 8 hex digits, at least one a-f and one digit).</summary>
    public const string HexId = @"\b(?=[0-9a-fA-F-]*[a-fA-F])(?=[0-9a-fA-F-]*\d)[0-9a-fA-F]{8,}(-[0-9a-fA-F]{4,})*\b";
    /// <summary>An absolute path of at least two parts, e.g. /var/log/messages.</summary>
    public const string Path = @"(?<![\w/])(/[\w.\-@]+){2,}/?";
    /// <summary>Every run of digits (with a leading sign or decimal part), also inside a token: audit(1122.77:2) → audit(&lt;*&gt;.&lt;*&gt;:&lt;*&gt;).</summary>
    public const string Number = @"(?<![A-Za-z])[-+]?\d+";

    /// <summary>The generic masks: IP, hex, long hex ids, paths, numbers.</summary>
    public static IReadOnlyList<string> Default { get; } = [Ip, Hex, HexId, Path, Number];

    readonly Regex[] patterns;

    public Masking(IReadOnlyList<string> patterns)
    {
        this.patterns = new Regex[patterns.Count];
        for (int i = 0; i < patterns.Count; i++)
        {
            try { this.patterns[i] = new Regex(patterns[i], RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
            catch (ArgumentException e) { throw new ArgumentException($"TemplateMinerOptions.Masks[{i}] is not a valid regex ({e.Message.Split('\n')[0]}): {patterns[i]}"); }
        }
        Patterns = [.. patterns];
    }

    public IReadOnlyList<string> Patterns { get; }

    /// <summary><paramref name="content"/> with every match of every pattern replaced by the wildcard.</summary>
    public string Apply(string content)
    {
        foreach (var pattern in patterns)
        {
            try { content = pattern.Replace(content, Wildcard); }
            catch (RegexMatchTimeoutException) { }
        }
        return content;
    }
}
