using System.Text;

namespace Loom.Text.Jinja;

/// <summary>
/// A parsed Jinja2 template: the subset that the chat templates in Hugging Face <c>tokenizer_config.json</c> files use
/// (output, <c>if/elif/else</c>, <c>for</c> with <c>loop</c>, <c>else</c> and an <c>if</c> filter, <c>break</c>/<c>continue</c>,
/// <c>set</c> incl. <c>namespace()</c> and block sets, macros, comments, whitespace control, filters, tests, Python
/// literals, operators, indexing, slicing and string/dict methods). It renders as Hugging Face does:
/// <c>trim_blocks</c> and <c>lstrip_blocks</c> on, no autoescaping, undefined values print as nothing.
/// Errors are one line with the template's line and column (<see cref="JinjaException"/>).
/// </summary>
public sealed class JinjaTemplate
{
    readonly List<Node> body;

    JinjaTemplate(List<Node> body) => this.body = body;

    /// <summary>Parses a template; a syntax error is a <see cref="JinjaException"/>.</summary>
    public static JinjaTemplate Parse(string source) => new(new JinjaParser(JinjaLexer.Tokenize(source)).ParseTemplate());

    /// <summary>
    /// Renders with the given variables (values as <see cref="JinjaValues"/> describes: use <see cref="FromJson"/> for
    /// structured ones). <c>raise_exception(message)</c>, <c>range</c>, <c>namespace</c> and <c>dict</c> are always there.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var renderer = new JinjaRenderer(variables);
        var output = new StringBuilder();
        renderer.Execute(body, output);
        return output.ToString();
    }

    /// <summary>A JSON value as a template value (objects become ordered dicts, whole numbers ints).</summary>
    public static object? FromJson(System.Text.Json.Nodes.JsonNode? node) => JinjaValues.FromJson(node);
}
