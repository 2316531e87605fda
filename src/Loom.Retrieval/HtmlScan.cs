using System.Net;
using System.Text;

namespace Loom.Retrieval;

/// <summary>
/// One linear pass over HTML without building a tree: how deep its elements nest, and its text with the tags taken out.
/// A tree parser spends time proportional to the depth on every tag (100,000 nested elements took 44 s), so
/// <see cref="FileReader"/> measures the depth here first and reads a document nested past
/// <see cref="FileReader.MaxHtmlDepth"/> as this pass's plain text. Elements that never hold others (void ones) and those
/// whose end tag may be left out (p, li, td, ...) do not count as nesting, so a page of unclosed paragraphs stays flat.
/// </summary>
static class HtmlScan
{
    static readonly HashSet<string> Flat = new(StringComparer.OrdinalIgnoreCase)
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
        "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp",
    };

    /// <summary>Elements whose content is not document text (the title is the document's name, not its text).</summary>
    static readonly HashSet<string> Hidden = new(StringComparer.OrdinalIgnoreCase) { "script", "style", "noscript", "template", "title", "textarea" };

    /// <summary>
    /// The deepest nesting of elements; with <paramref name="text"/> given, the text between tags (each tag a space,
    /// entities decoded) is appended to it and the title returned in <paramref name="title"/>.
    /// </summary>
    public static int Scan(string html, StringBuilder? text, out string? title)
    {
        title = null;
        int depth = 0, deepest = 0, at = 0;
        var segment = new StringBuilder();
        void Flush()
        {
            if (text is null || segment.Length == 0) return;
            text.Append(WebUtility.HtmlDecode(segment.ToString())).Append(' ');
            segment.Clear();
        }
        while (at < html.Length)
        {
            int open = html.IndexOf('<', at);
            if (open < 0) open = html.Length;
            segment.Append(html, at, open - at);
            if (open == html.Length) break;
            if (string.CompareOrdinal(html, open, "<!--", 0, 4) == 0)
            {
                int end = html.IndexOf("-->", open + 4, StringComparison.Ordinal);
                at = end < 0 ? html.Length : end + 3;
                continue;
            }
            bool closing = open + 1 < html.Length && html[open + 1] == '/';
            int nameStart = open + (closing ? 2 : 1);
            if (nameStart >= html.Length || !char.IsAsciiLetter(html[nameStart]))
            {
                // "<!DOCTYPE", "<?xml" and a lone '<' in text: declarations are skipped, a '<' in text kept.
                if (nameStart < html.Length && html[nameStart] is '!' or '?')
                {
                    int end = html.IndexOf('>', nameStart);
                    at = end < 0 ? html.Length : end + 1;
                }
                else
                {
                    segment.Append('<');
                    at = open + 1;
                }
                continue;
            }
            int nameEnd = nameStart;
            while (nameEnd < html.Length && (char.IsAsciiLetterOrDigit(html[nameEnd]) || html[nameEnd] is '-' or ':')) nameEnd++;
            int close = html.IndexOf('>', nameEnd);
            if (close < 0) break;
            string name = html[nameStart..nameEnd];
            Flush();
            at = close + 1;
            if (closing)
            {
                if (!Flat.Contains(name)) depth = Math.Max(0, depth - 1);
                continue;
            }
            bool selfClosing = html[close - 1] == '/';
            if (selfClosing || Flat.Contains(name)) continue;
            deepest = Math.Max(deepest, ++depth);
            if (Hidden.Contains(name))
            {
                int end = html.IndexOf("</" + name, at, StringComparison.OrdinalIgnoreCase);
                if (end < 0) end = html.Length;
                if (name.Equals("title", StringComparison.OrdinalIgnoreCase) && title is null)
                    title = WebUtility.HtmlDecode(html[at..end]).Trim();
                at = end;
            }
        }
        Flush();
        return deepest;
    }
}
