using System.Text;
using System.Text.Json;
using System.Xml;
using System.Xml.Linq;

namespace Loom.Tests.Retrieval;

/// <summary>
/// Checks bench/Loom.Bench/data/retrieval-questions.jsonl against the XML documentation in the
/// installed SDK's reference packs: every labelled member exists, and no question copies a run of
/// five words from its member's documentation.
/// </summary>
public sealed class RetrievalQuestionSetTests
{
    private const int MinimumQuestionCount = 300;
    private const int OverlapWordCount = 5;

    private sealed record Question(int Line, string Id, string Text, string Member);

    private static readonly Lazy<IReadOnlyList<Question>> Questions = new(LoadQuestions);
    private static readonly Lazy<IReadOnlyDictionary<string, List<string>>> Documentation =
        new(() => LoadDocumentation(Questions.Value.Select(question => question.Member).ToHashSet(StringComparer.Ordinal)));

    [Fact]
    public void SetHasEnoughQuestions()
    {
        Assert.True(
            Questions.Value.Count >= MinimumQuestionCount,
            $"expected at least {MinimumQuestionCount} questions, found {Questions.Value.Count}");
    }

    [Fact]
    public void IdsQuestionsAndMembersAreUnique()
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var texts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var members = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var question in Questions.Value)
        {
            Assert.True(ids.TryAdd(question.Id, question.Line), $"line {question.Line}: id '{question.Id}' already used on line {ids.GetValueOrDefault(question.Id)}");
            Assert.True(texts.TryAdd(question.Text, question.Line), $"line {question.Line}: question repeats line {texts.GetValueOrDefault(question.Text)}");
            Assert.True(members.TryAdd(question.Member, question.Line), $"line {question.Line}: member '{question.Member}' already answers line {members.GetValueOrDefault(question.Member)}");
        }
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void EveryMemberIsDocumentedInTheSdk()
    {
        var missing = Questions.Value
            .Where(question => !Documentation.Value.ContainsKey(question.Member))
            .Select(question => $"line {question.Line}: {question.Member}")
            .ToList();
        Assert.True(missing.Count == 0, "members not found in the SDK's XML docs: " + string.Join("; ", missing));
    }

    [Fact]
    public void NoQuestionCopiesFiveWordsFromItsDocumentation()
    {
        var offenders = new List<string>();
        foreach (var question in Questions.Value)
        {
            if (!Documentation.Value.TryGetValue(question.Member, out var texts))
            {
                continue;
            }

            var questionRuns = WordRuns(Words(question.Text));
            foreach (var text in texts)
            {
                var shared = WordRuns(Words(text)).FirstOrDefault(questionRuns.Contains);
                if (shared is not null)
                {
                    offenders.Add($"line {question.Line} ({question.Id}): \"{shared}\"");
                    break;
                }
            }
        }

        Assert.True(offenders.Count == 0, "questions sharing five consecutive words with their documentation: " + string.Join("; ", offenders));
    }

    [Fact]
    public void WordRunsFindACopiedPhraseAndIgnorePunctuation()
    {
        var documentation = Words("Removes all leading and trailing white-space characters from the current string.");
        var copied = WordRuns(Words("How do I remove ALL leading, and trailing white space?"));
        var paraphrased = WordRuns(Words("How do I drop spaces from both ends of some text?"));

        Assert.Contains("all leading and trailing white", WordRuns(documentation));
        Assert.Contains("all leading and trailing white", copied);
        Assert.DoesNotContain(WordRuns(documentation), paraphrased.Contains);
    }

    [Fact]
    public void RenderingKeepsReferencesAsNames()
    {
        var member = XElement.Parse(
            "<member name=\"M:X.Cancel\"><summary>Signals to a <see cref=\"T:System.Threading.CancellationToken\" /> that <see cref=\"M:System.Collections.Generic.List`1.Add(`0)\" /> fails when <paramref name=\"value\" /> is <see langword=\"null\" />.</summary></member>");

        var texts = Render(member);

        Assert.Equal(
            [
                "Signals to a System.Threading.CancellationToken that System.Collections.Generic.List`1.Add(`0) fails when value is null.",
                "Signals to a CancellationToken that Add fails when value is null.",
                "Signals to a CancellationToken that List<T>.Add fails when value is null.",
            ],
            texts);
    }

    private static IReadOnlyList<Question> LoadQuestions()
    {
        var path = Path.Combine(FindRepositoryRoot(), "bench", "Loom.Bench", "data", "retrieval-questions.jsonl");
        var questions = new List<Question>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: empty line");
            }

            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            questions.Add(new Question(
                lineNumber,
                RequiredString(root, "id", path, lineNumber),
                RequiredString(root, "question", path, lineNumber),
                RequiredString(root, "member", path, lineNumber)));
        }

        return questions;
    }

    private static string RequiredString(JsonElement root, string field, string path, int lineNumber)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(value.GetString()))
        {
            throw new InvalidDataException($"{path}:{lineNumber}: field '{field}' must be a non-empty string");
        }

        return value.GetString()!;
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Loom.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no folder above {AppContext.BaseDirectory} holds Loom.sln");
    }

    /// <summary>The XML doc files of the newest version of each reference pack under the SDK's root.</summary>
    private static List<string> FindDocumentationFiles()
    {
        // The runtime lives in <dotnet>/shared/Microsoft.NETCore.App/<version>/.
        var runtimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var dotnetRoot = Path.GetFullPath(Path.Combine(runtimeDirectory, "..", "..", ".."));
        var packs = Path.Combine(dotnetRoot, "packs");
        if (!Directory.Exists(packs))
        {
            throw new DirectoryNotFoundException($"no reference packs at {packs}");
        }

        var files = new List<string>();
        foreach (var pack in Directory.GetDirectories(packs))
        {
            var newest = Directory.GetDirectories(pack)
                .Where(version => Directory.Exists(Path.Combine(version, "ref")))
                .MaxBy(version => Version.TryParse(Path.GetFileName(version).Split('-')[0], out var parsed) ? parsed : new Version(0, 0));
            if (newest is null)
            {
                continue;
            }

            var framework = Directory.GetDirectories(Path.Combine(newest, "ref"), "net*")
                .MaxBy(folder => Version.TryParse(Path.GetFileName(folder)[3..], out var parsed) ? parsed : new Version(0, 0));
            if (framework is not null)
            {
                files.AddRange(Directory.GetFiles(framework, "*.xml"));
            }
        }

        if (files.Count == 0)
        {
            throw new FileNotFoundException($"no XML documentation files under {packs}/*/*/ref/net*/");
        }

        return files;
    }

    /// <summary>Every member id in the SDK docs; for the wanted ones, their rendered texts (see <see cref="Render"/>).</summary>
    private static IReadOnlyDictionary<string, List<string>> LoadDocumentation(HashSet<string> wanted)
    {
        var documentation = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, IgnoreComments = true };
        foreach (var file in FindDocumentationFiles())
        {
            using var reader = XmlReader.Create(file, settings);
            reader.MoveToContent();
            while (!reader.EOF)
            {
                if (reader.NodeType != XmlNodeType.Element || reader.Name != "member")
                {
                    reader.Read();
                    continue;
                }

                var name = reader.GetAttribute("name");
                if (name is null)
                {
                    reader.Read();
                    continue;
                }

                if (!documentation.TryGetValue(name, out var texts))
                {
                    texts = [];
                    documentation[name] = texts;
                }

                if (!wanted.Contains(name))
                {
                    reader.Skip();
                    continue;
                }

                texts.AddRange(Render((XElement)XNode.ReadFrom(reader)));
            }
        }

        return documentation;
    }

    /// <summary>How a cross reference is written in a rendering of the documentation.</summary>
    private enum ReferenceStyle
    {
        /// <summary><c>System.Collections.Generic.List`1.Add(`0)</c>: the id without its kind prefix.</summary>
        Full,

        /// <summary><c>Add</c>: the last name only.</summary>
        LastName,

        /// <summary><c>List&lt;T&gt;.Add</c>: declaring type and member, as the dotnet-docs corpus writes it.</summary>
        TypeAndMember,
    }

    /// <summary>
    /// Plain text of a member's documentation (all its sections), once per <see cref="ReferenceStyle"/>:
    /// references become names, langwords their word, parameter references the parameter's name.
    /// </summary>
    private static List<string> Render(XElement member)
    {
        var texts = new List<string>();
        foreach (var style in Enum.GetValues<ReferenceStyle>())
        {
            var text = new StringBuilder();
            foreach (var section in member.Elements())
            {
                Append(section, style, text);
                text.Append(' ');
            }

            texts.Add(Collapse(text.ToString()));
        }

        return texts;
    }

    private static void Append(XElement element, ReferenceStyle style, StringBuilder text)
    {
        var hasText = !string.IsNullOrWhiteSpace(element.Value);
        var name = element.Name.LocalName;
        var replacement = name switch
        {
            "see" or "seealso" when !hasText && element.Attribute("cref") is { } cref => ReferenceName(cref.Value, style),
            "see" when element.Attribute("langword") is { } langword => langword.Value,
            "paramref" or "typeparamref" => element.Attribute("name")?.Value ?? string.Empty,
            "see" when !hasText && element.Attribute("href") is { } href => href.Value,
            _ => null,
        };
        if (replacement is not null)
        {
            text.Append(replacement);
            return;
        }

        foreach (var node in element.Nodes())
        {
            switch (node)
            {
                case XText textNode:
                    text.Append(textNode.Value);
                    break;
                case XElement child:
                    Append(child, style, text);
                    break;
            }
        }
    }

    private static string ReferenceName(string cref, ReferenceStyle style)
    {
        var isType = cref.StartsWith("T:", StringComparison.Ordinal);
        var reference = cref.Length > 2 && cref[1] == ':' ? cref[2..] : cref;
        if (style == ReferenceStyle.Full)
        {
            return reference;
        }

        var names = reference.Split('(')[0].Split('.');
        if (style == ReferenceStyle.LastName || names.Length == 1)
        {
            return GenericName(names[^1]);
        }

        return isType ? GenericName(names[^1]) : GenericName(names[^2]) + "." + names[^1].Split('`')[0];
    }

    /// <summary><c>List`1</c> becomes <c>List&lt;T&gt;</c>, <c>Dictionary`2</c> becomes <c>Dictionary&lt;T,T&gt;</c>.</summary>
    private static string GenericName(string name)
    {
        var tick = name.IndexOf('`');
        if (tick < 0)
        {
            return name;
        }

        var arity = int.TryParse(name[(tick + 1)..], out var count) ? count : 0;
        return arity == 0 ? name[..tick] : name[..tick] + "<" + string.Join(',', Enumerable.Repeat("T", arity)) + ">";
    }

    private static string Collapse(string text) =>
        string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>Lower-case ASCII words; every other character separates words.</summary>
    private static List<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        foreach (var character in text)
        {
            if (char.IsAsciiLetterOrDigit(character))
            {
                word.Append(char.ToLowerInvariant(character));
            }
            else if (word.Length > 0)
            {
                words.Add(word.ToString());
                word.Clear();
            }
        }

        if (word.Length > 0)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    private static HashSet<string> WordRuns(List<string> words)
    {
        var runs = new HashSet<string>(StringComparer.Ordinal);
        for (var start = 0; start + OverlapWordCount <= words.Count; start++)
        {
            runs.Add(string.Join(' ', words.GetRange(start, OverlapWordCount)));
        }

        return runs;
    }
}
