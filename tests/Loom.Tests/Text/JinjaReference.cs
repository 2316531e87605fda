using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Loom.Text;
using Loom.Text.Jinja;

namespace Loom.Tests.Text;

/// <summary>One template rendering: the template text, its variables as JSON, and the date <c>strftime_now</c> sees (null: not defined).</summary>
internal sealed record JinjaCase(string Name, string Template, JsonObject Variables, DateTime? Now = null);

/// <summary>
/// Python's jinja2 in the environment Hugging Face's apply_chat_template uses (Text/ChatTemplates/jinja_reference.py): the
/// outside implementation Loom's interpreter is compared with. Without python3 and jinja2 the tests skip, except under
/// CI=true, where that is a failure (.ci/run installs python3-jinja2).
/// </summary>
internal static class JinjaReference
{
    public static string TemplatesFolder => Path.Combine(TestData.RepositoryRoot, "tests", "Loom.Tests", "Text", "ChatTemplates");

    public static string Template(string file) => File.ReadAllText(Path.Combine(TemplatesFolder, file));

    /// <summary>Each case's output, or "error: …" when jinja2 raised.</summary>
    public static IReadOnlyList<string> Render(IReadOnlyList<JinjaCase> cases)
    {
        string? missing = Missing();
        if (missing is not null)
        {
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", $"the jinja2 reference cannot run under CI: {missing}");
            Skip.If(true, $"jinja2 reference tests skipped: {missing}");
        }
        var request = new JsonObject
        {
            ["cases"] = new JsonArray([.. cases.Select(c => (JsonNode)new JsonObject
            {
                ["template"] = c.Template,
                ["variables"] = c.Variables.DeepClone(),
                ["now"] = c.Now?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            })]),
        };
        var start = new ProcessStartInfo("python3") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(TemplatesFolder, "jinja_reference.py"));
        start.StandardOutputEncoding = System.Text.Encoding.UTF8;
        start.StandardInputEncoding = new System.Text.UTF8Encoding(false);
        using var process = Process.Start(start)!;
        process.StandardInput.Write(request.ToJsonString());
        process.StandardInput.Close();
        var errors = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"jinja_reference.py exited {process.ExitCode}: {errors.Result}");
        return [.. JsonNode.Parse(output)!.AsArray().Select(r => r!["output"] is { } o ? o.GetValue<string>() : "error: " + r["error"]!.GetValue<string>())];
    }

    /// <summary>Loom's rendering of a case, or "error: …" with the one-line message.</summary>
    public static string RenderWithLoom(JinjaCase c)
    {
        try
        {
            var variables = new Dictionary<string, object?>();
            foreach (var (key, value) in c.Variables) variables[key] = JinjaTemplate.FromJson(value);
            if (c.Now is DateTime now) variables["strftime_now"] = JinjaChatFormat.StrftimeFunction(() => now);
            return JinjaTemplate.Parse(c.Template).Render(variables);
        }
        catch (JinjaException e)
        {
            return "error: " + e.Message;
        }
    }

    /// <summary>Asserts Loom renders every case byte for byte as jinja2 does, and fails where jinja2 fails; lists every mismatch.</summary>
    public static void AssertSame(IReadOnlyList<JinjaCase> cases)
    {
        var expected = Render(cases);
        var mismatches = new List<string>();
        for (int i = 0; i < cases.Count; i++)
        {
            string actual = RenderWithLoom(cases[i]);
            bool bothFailed = expected[i].StartsWith("error: ", StringComparison.Ordinal) && actual.StartsWith("error: ", StringComparison.Ordinal);
            if (!bothFailed && actual != expected[i])
                mismatches.Add($"{cases[i].Name}:\n  jinja2: {Show(expected[i])}\n  loom:   {Show(actual)}");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {cases.Count} renderings differ from jinja2:\n" + string.Join("\n", mismatches));
    }

    static string Show(string text) => System.Text.Json.JsonSerializer.Serialize(text);

    static string? Missing()
    {
        try
        {
            var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("import jinja2");
            using var process = Process.Start(start)!;
            process.WaitForExit();
            return process.ExitCode == 0 ? null : "python3 cannot import jinja2 (apt-get install python3-jinja2)";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "python3 is not installed";
        }
    }
}
