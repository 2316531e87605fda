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

    public HtmlReport Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        body.Append("<table>\n<tr>");
        foreach (var h in headers) body.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        body.Append("</tr>\n");
        foreach (var row in rows)
        {
            if (row.Count != headers.Count) throw new ArgumentException($"a table row has {row.Count} cells, the header {headers.Count}");
            body.Append("<tr>");
            foreach (var cell in row) body.Append("<td>").Append(WebUtility.HtmlEncode(cell)).Append("</td>");
            body.Append("</tr>\n");
        }
        body.Append("</table>\n");
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
        const string style = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
            + "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
            + "pre{background:#f6f6f6;padding:.8rem;white-space:pre-wrap}img{max-width:100%}";
        string encodedTitle = WebUtility.HtmlEncode(title);
        return $"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{encodedTitle}</title><style>{style}</style></head>\n"
            + $"<body><h1>{encodedTitle}</h1>\n{body}</body></html>\n";
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, Render());
}
