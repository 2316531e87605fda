using System.Text.Json.Nodes;
using Loom.Text.Jinja;

namespace Loom.Tests.Text;

/// <summary>
/// Loom's Jinja interpreter against Python's jinja2 (the environment of transformers' apply_chat_template): each
/// feature chat templates use, then the real templates of SmolLM2, Qwen2.5, Llama 3.1, Llama 3.2, Llama 2 and Mistral
/// on several conversations. The output must be equal byte for byte, and where jinja2 raises Loom must fail too.
/// </summary>
public class JinjaTemplateTests
{
    static JsonObject Vars(string json) => JsonNode.Parse(json)!.AsObject();

    static readonly (string Template, string Variables)[] Features =
    [
        ("Hello {{ name }}!", """{"name": "Loom"}"""),
        ("{{ missing }}|{{ missing is defined }}|{{ missing is undefined }}", "{}"),
        ("{{ none_value }}|{{ none_value is none }}|{{ 1 is none }}", """{"none_value": null}"""),
        ("{{ 'a' ~ 1 ~ none ~ true }}", "{}"),
        ("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }}", "{}"),
        ("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.0 }} {{ 3 / 3 }} {{ 2.5e-7 }}", "{}"),
        ("{{ [1, 'two', none, true, 2.5] }} {{ {'a': 1, 'b': [1, 2]} }} {{ (1, 'x') }}", "{}"),
        ("{{ \"it's\" }} {{ ['it\\'s', \"say \\\"hi\\\"\"] }}", "{}"),
        ("{% if x > 1 %}big{% elif x == 1 %}one{% else %}small{% endif %}", """{"x": 1}"""),
        ("{% if not x and y or z %}yes{% else %}no{% endif %}", """{"x": false, "y": true, "z": false}"""),
        ("{{ x or 'fallback' }} {{ y and 'both' }} {{ 'a' if x else 'b' }} {{ 'c' if y }}", """{"x": "", "y": 1}"""),
        ("{% for m in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}:{{ m }};{% endfor %}", """{"xs": ["a", "b", "c"]}"""),
        ("{% for m in xs %}{{ m }}{% else %}empty{% endfor %}", """{"xs": []}"""),
        ("{% for m in xs if m.keep %}{{ loop.index }}={{ m.v }} {% endfor %}", """{"xs": [{"keep": true, "v": 1}, {"keep": false, "v": 2}, {"keep": true, "v": 3}]}"""),
        ("{% for k, v in d | items %}{{ k }}={{ v }},{% endfor %}|{% for k, v in d.items() %}{{ k }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %}", """{"d": {"z": 1, "a": 2, "m": 3}}"""),
        ("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", """{"xs": [1, 2, 3, 4, 5]}"""),
        ("{% for x in xs %}{% for y in ys %}{{ loop.index }}{{ x }}{{ y }} {% endfor %}{{ loop.index }}|{% endfor %}", """{"xs": [1, 2], "ys": ["a", "b"]}"""),
        ("{% set x = 1 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }}", """{"xs": [5, 6]}"""),
        ("{% set ns = namespace(found=false, n=0) %}{% for i in xs %}{% if i > 1 %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.found }} {{ ns.n }}", """{"xs": [1, 2, 3]}"""),
        ("{% set greeting %}Hi {{ name }}{% endset %}[{{ greeting }}]", """{"name": "there"}"""),
        ("{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[1:-1] }} {{ s[1:3] }} {{ s[-1] }} {{ xs[9] }}", """{"xs": [1, 2, 3, 4], "s": "hello"}"""),
        ("{{ m['role'] }} {{ m.role }} {{ m.missing }} {{ m.get('role') }} {{ m.get('nope', 'dflt') }} {{ 'role' in m }} {{ 'x' in m }}", """{"m": {"role": "user"}}"""),
        ("{{ '  pad  ' | trim }}|{{ s | length }}|{{ xs | length }}|{{ s | upper }}|{{ s | lower }}|{{ xs | join(', ') }}|{{ xs | join }}", """{"s": "MiXed", "xs": [1, "b", 3]}"""),
        ("{{ missing | default('d') }} {{ '' | default('e', true) }} {{ '' | default('e') }} {{ none | default('n') }}", "{}"),
        ("{{ x | tojson }}", """{"x": {"b": 1, "a": [1.5, "é ✓ \"q\" <tag> & 'x'", null, true], "n": {"deep": "x\ny\tz"}}}"""),
        ("{{ x | tojson(indent=4) }}", """{"x": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "empty": {}, "none": []}}}"""),
        ("{{ x | tojson(indent=2, separators=(',', ':')) }}|{{ x | tojson(sort_keys=true) }}", """{"x": {"b": [1, 2], "a": 1}}"""),
        ("{{ 'abc' is string }} {{ x is mapping }} {{ xs is mapping }} {{ xs is iterable }} {{ 'a' is iterable }} {{ 3 is number }} {{ xs is sequence }} {{ 4 is even }} {{ 3 is odd }} {{ 6 is divisibleby 3 }}", """{"x": {}, "xs": []}"""),
        ("{{ xs | select('equalto', 2) | list }} {{ xs | reject('equalto', 2) | list }} {{ ms | selectattr('role', 'equalto', 'user') | list | length }} {{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", """{"xs": [1, 2, 3, 2], "ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}"""),
        ("{{ xs | first }} {{ xs | last }} {{ xs | reverse | list }} {{ xs | unique | list }} {{ '5' | int + 1 }} {{ '2.5' | float }} {{ 3 | string }} {{ xs | sum }} {{ xs | min }} {{ xs | max }}", """{"xs": [3, 1, 3, 2]}"""),
        ("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.strip(' x') }}|{{ t.startswith('<think>') }}|{{ t.endswith('end') }}|{{ t.split('</think>') }}|{{ t.split('</think>')[-1] }}|{{ 'a b  c'.split() }}|{{ t.replace('<think>', '') }}|{{ 'hello world'.title() }}|{{ 'HeLLo'.capitalize() }}|{{ 'x'.upper() }}", """{"s": " x padded x ", "t": "<think>hmm</think>answer end"}"""),
        ("{% if 'tool_calls' in m %}calls{% else %}none{% endif %} {% if m.tool_calls %}t{% else %}f{% endif %} {% if m.content %}c{% endif %}", """{"m": {"role": "assistant", "content": ""}}"""),
        ("{% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 7, 2) %}{{ i }}{% endfor %}", "{}"),
        ("{%- if true -%}   \n  A  \n  {%- endif -%}  B  {{- ' C ' -}}  D", "{}"),
        ("line1\n  {% if true %}\n  kept\n  {% endif %}\nline2\n    {# a comment #}\nafter", "{}"),
        ("  {%+ if true %}x{% endif %}\n{% for i in xs %}\n  - {{ i }}\n{% endfor %}\nend", """{"xs": [1, 2]}"""),
        ("{{ 'a' }}  {% if true %}b{% endif %}   {{- 'c' }}\n{{ 'd' -}}\n\n  e", "{}"),
        ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C') }}", "{}"),
        ("{{ (1 == 1.0) ~ (true == 1) ~ ([1, 2] == [1, 2]) ~ ({'a': 1} == {'a': 1}) ~ ('a' < 'b') ~ (none == none) ~ (missing == none) }}", "{}"),
        ("{{ d | dictsort }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'x' in 'xyz' }} {{ 3 not in [1, 2] }}", """{"d": {"b": 1, "A": 2}}"""),
        ("{{ loop_msgs[0].content }}{% set loop_msgs = msgs[1:] %}", """{"msgs": [{"content": "a"}, {"content": "b"}], "loop_msgs": [{"content": "first"}]}"""),
        ("{{ raise_exception('Bad: ' ~ x) }}", """{"x": 1}"""),
        ("{{ missing.attribute }}", "{}"),
        ("{{ 'a' + 1 }}", "{}"),
        ("{% for x in 5 %}{% endfor %}", "{}"),
        ("{{ x | nosuchfilter }}", "{}"),
        ("{{ xs[0].content | trim }}", """{"xs": [{"content": "  hi \n"}]}"""),
        ("{{ 5 | abs }} {{ -5 | abs }} {{ -x }} {{ 'abc' | reverse }} {{ 'a,b' | replace(',', ';') }} {{ 'one two' | wordcount }} {{ 'x\ny' | indent(2, true) }}", """{"x": 3}"""),
    ];

    [SkippableFact]
    public void FeaturesRenderAsJinja2Does() =>
        JinjaReference.AssertSame([.. Features.Select((f, i) => new JinjaCase($"feature {i}: {f.Template}", f.Template, Vars(f.Variables)))]);

    const string Tools = """
        [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.",
          "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "City name, e.g. Paris"},
          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}}]
        """;

    static readonly (string Name, string Messages)[] Conversations =
    [
        ("one user turn", """[{"role": "user", "content": "Hello, how are you?"}]"""),
        ("system and two exchanges", """[{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Arr, hello!"}, {"role": "user", "content": "Where is the treasure?"}]"""),
        ("whitespace to trim", """[{"role": "user", "content": "  spaced question  \n"}, {"role": "assistant", "content": "  answer with spaces \n"}, {"role": "user", "content": "thanks"}]"""),
        ("unicode and quotes", """[{"role": "system", "content": "Réponds en français. \"Quotes\" and 'apostrophes' <tags> & ampersands {{ not jinja }}"}, {"role": "user", "content": "naïve café ✓ 日本語 😀"}]"""),
        ("ends with assistant", """[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]"""),
        ("tool call and result", """[{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius", "days": 3, "ratio": 0.5, "exact": true, "note": null}}}]}, {"role": "tool", "content": "{\"temperature\": 21}"}, {"role": "tool", "content": "second result"}]"""),
        ("bad alternation", """[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]"""),
        ("system only", """[{"role": "system", "content": "Just a system turn."}]"""),
    ];

    static readonly (string File, string Bos, string Eos)[] Templates =
    [
        ("smollm2.jinja", "<|im_start|>", "<|im_end|>"),
        ("qwen2.5.jinja", "", "<|im_end|>"),
        ("llama-3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"),
        ("llama-3.2.jinja", "<|begin_of_text|>", "<|eot_id|>"),
        ("llama-2.jinja", "<s>", "</s>"),
        ("mistral-instruct.jinja", "<s>", "</s>"),
    ];

    [SkippableFact]
    public void RealChatTemplatesRenderAsJinja2Does()
    {
        var cases = new List<JinjaCase>();
        foreach (var (file, bos, eos) in Templates)
        {
            string template = JinjaReference.Template(file);
            foreach (var (name, messages) in Conversations)
                foreach (bool prompt in new[] { true, false })
                {
                    JsonObject Variables() => new()
                    {
                        ["messages"] = JsonNode.Parse(messages), ["add_generation_prompt"] = prompt, ["bos_token"] = bos, ["eos_token"] = eos,
                    };
                    cases.Add(new JinjaCase($"{file}, {name}, prompt={prompt}", template, Variables()));
                    var withTools = Variables();
                    withTools["tools"] = JsonNode.Parse(Tools);
                    cases.Add(new JinjaCase($"{file}, {name}, tools, prompt={prompt}", template, withTools));
                }
        }
        // Llama 3.x specifics: the date from strftime_now or date_string, tools in the system turn, built-in tools.
        string llama32 = JinjaReference.Template("llama-3.2.jinja"), llama31 = JinjaReference.Template("llama-3.1.jinja");
        string two = Conversations[1].Messages;
        cases.Add(new JinjaCase("llama-3.2, strftime_now", llama32, Vars($$"""{"messages": {{two}}, "add_generation_prompt": true, "bos_token": "<|begin_of_text|>"}"""), new DateTime(2026, 12, 2)));
        cases.Add(new JinjaCase("llama-3.2, date_string", llama32, Vars($$"""{"messages": {{two}}, "add_generation_prompt": true, "date_string": "01 Jan 2025"}"""), new DateTime(2026, 12, 2)));
        cases.Add(new JinjaCase("llama-3.1, tools in system", llama31, Vars($$"""{"messages": {{two}}, "tools": {{Tools}}, "tools_in_user_message": false, "add_generation_prompt": true}""")));
        cases.Add(new JinjaCase("llama-3.2, tools in system", llama32, Vars($$"""{"messages": {{two}}, "tools": {{Tools}}, "tools_in_user_message": false, "add_generation_prompt": true}""")));
        cases.Add(new JinjaCase("llama-3.1, built-in tools", llama31, Vars("""
            {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"], "add_generation_prompt": true, "messages": [
              {"role": "user", "content": "Search the news"},
              {"role": "assistant", "tool_calls": [{"function": {"name": "brave_search", "arguments": {"query": "news today"}}}]},
              {"role": "ipython", "content": {"results": ["a", "b"]}}]}
            """)));
        cases.Add(new JinjaCase("llama-3.1, two tool calls", llama31, Vars("""
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]}]}
            """)));
        JinjaReference.AssertSame(cases);
    }

    [Fact]
    public void RaiseExceptionIsAOneLineErrorWithTheTemplatePosition()
    {
        var template = JinjaTemplate.Parse(JinjaReference.Template("llama-2.jinja"));
        var messages = JinjaTemplate.FromJson(JsonNode.Parse(Conversations[6].Messages));
        var error = Assert.Throws<JinjaException>(() => template.Render(new Dictionary<string, object?> { ["messages"] = messages, ["bos_token"] = "<s>" }));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Reason);
        Assert.Equal(1, error.Line);
        Assert.Equal(314, error.Column);
        Assert.StartsWith("chat template line 1, column 314: Conversation roles must alternate", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("{% if x %}open", "missing {% endif %}", 1, 15)]
    [InlineData("a\n  {{ x + }}", "expected an expression", 2, 10)]
    [InlineData("{{ x | nosuch }}", "unknown filter 'nosuch'", 1, 6)]
    [InlineData("line\n{% frobnicate %}", "unknown statement 'frobnicate'", 2, 4)]
    [InlineData("{{ 'unclosed }}", "string literal not closed", 1, 4)]
    [InlineData("{% for x in xs %}{{ x.y.z }}{% endfor %}", "cannot read 'z' of an undefined value", 1, 24)]
    public void SyntaxAndRuntimeErrorsNameLineAndColumn(string source, string reason, int line, int column)
    {
        var error = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse(source).Render(new Dictionary<string, object?>
        {
            ["xs"] = new List<object?> { new OrderedDictionary<string, object?>() },
        }));
        Assert.Equal(reason, error.Reason);
        Assert.Equal((line, column), (error.Line, error.Column));
    }
}
