using System.Net;
using System.Text;
using Loom.IO;

namespace Loom.Evaluation;

/// <summary>A self-contained HTML report (images inlined), built section by section and written atomically.</summary>
public sealed class HtmlReport(string title)
{
    readonly StringBuilder body = new();

    public HtmlReport Heading(string text)
    {
        body.Append("<h2>").Append(WebUtility.HtmlEncode(text)).Append("</h2>\n");
        return this;
    }

    public HtmlReport Paragraph(string text)
    {
        body.Append("<p>").Append(WebUtility.HtmlEncode(text)).Append("</p>\n");
        return this;
    }

    /// <summary>Preformatted text, e.g. a model's sample.</summary>
    public HtmlReport Preformatted(string text)
    {
        body.Append("<pre>").Append(WebUtility.HtmlEncode(text)).Append("</pre>\n");
        return this;
    }

    /// <summary>A table in a box of its own that scrolls sideways when it is wider than the page.</summary>
    public HtmlReport Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        body.Append("<div class=\"table\"><table>\n<tr>");
        foreach (var h in headers) body.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        body.Append("</tr>\n");
        foreach (var row in rows)
        {
            if (row.Count != headers.Count) throw new ArgumentException($"a table row has {row.Count} cells, the header {headers.Count}");
            body.Append("<tr>");
            foreach (var cell in row) body.Append("<td>").Append(WebUtility.HtmlEncode(cell)).Append("</td>");
            body.Append("</tr>\n");
        }
        body.Append("</table></div>\n");
        return this;
    }

    /// <summary>
    /// A table of metrics: each row's cells (already formatted) and, in a last column of class "explain", the metric's
    /// one-line explanation, so no number stands without its meaning.
    /// </summary>
    public HtmlReport MetricTable(IReadOnlyList<string> headers, IEnumerable<(IReadOnlyList<string> Cells, string Explanation)> rows)
    {
        body.Append("<div class=\"table\"><table class=\"metrics\">\n<tr>");
        foreach (var h in headers) body.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        body.Append("<th>meaning</th></tr>\n");
        foreach (var (cells, explanation) in rows)
        {
            if (cells.Count != headers.Count) throw new ArgumentException($"a table row has {cells.Count} cells, the header {headers.Count}");
            if (string.IsNullOrWhiteSpace(explanation)) throw new ArgumentException($"metric row \"{cells[0]}\" has no explanation");
            body.Append("<tr class=\"metric\">");
            foreach (var cell in cells) body.Append("<td>").Append(WebUtility.HtmlEncode(cell)).Append("</td>");
            body.Append("<td class=\"explain\">").Append(WebUtility.HtmlEncode(explanation)).Append("</td></tr>\n");
        }
        body.Append("</table></div>\n");
        return this;
    }

    /// <summary>A PNG image, inlined as a data URI so the report is one file.</summary>
    public HtmlReport Image(ReadOnlySpan<byte> png, string caption)
    {
        body.Append("<figure><img alt=\"").Append(WebUtility.HtmlEncode(caption)).Append("\" src=\"data:image/png;base64,")
            .Append(Convert.ToBase64String(png)).Append("\"><figcaption>").Append(WebUtility.HtmlEncode(caption)).Append("</figcaption></figure>\n");
        return this;
    }

    public string Render()
    {
        // Long unbroken ids (member ids, hashes, paths) wrap anywhere; a table wider than the page scrolls inside its box.
        const string style = "body{font-family:system-ui,sans-serif;max-width:76rem;margin:2rem auto;padding:0 1rem;color:#222;overflow-wrap:anywhere}"
            + ".table{max-width:100%;overflow-x:auto;margin:1rem 0}table{border-collapse:collapse}"
            + "td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top;overflow-wrap:break-word}"
            + "table.metrics td,table.metrics th{white-space:nowrap;font-variant-numeric:tabular-nums}"
            + "table.metrics td.explain{white-space:normal;color:#555;font-size:.9em;min-width:16rem}"
            + "pre{background:#f6f6f6;padding:.8rem;white-space:pre-wrap;overflow-wrap:anywhere}img{max-width:100%;height:auto}";
        string encodedTitle = WebUtility.HtmlEncode(title);
        return $"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{encodedTitle}</title><style>{style}</style></head>\n"
            + $"<body><h1>{encodedTitle}</h1>\n{body}</body></html>\n";
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, Render());
}
