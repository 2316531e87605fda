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
            "<member name=\"M:X.Cancel\"><summary>Signals to a <see cref=\"T:System.Threading.CancellationToken\" /> that it should be canceled when <paramref name=\"value\" /> is <see langword=\"null\" />.</summary></member>");

        var (full, shortNames) = Render(member);

        Assert.Equal("Signals to a System.Threading.CancellationToken that it should be canceled when value is null.", full);
        Assert.Equal("Signals to a CancellationToken that it should be canceled when value is null.", shortNames);
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

    /// <summary>Every member id in the SDK docs; for the wanted ones, their rendered texts (full and short reference names).</summary>
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

                var (full, shortNames) = Render((XElement)XNode.ReadFrom(reader));
                texts.Add(full);
                texts.Add(shortNames);
            }
        }

        return documentation;
    }

    /// <summary>
    /// Plain text of a member's documentation: references become their names (with and without the
    /// namespace), langwords their word, parameter references the parameter's name.
    /// </summary>
    private static (string Full, string ShortNames) Render(XElement member)
    {
        var full = new StringBuilder();
        var shortNames = new StringBuilder();
        foreach (var child in member.Elements())
        {
            Append(child, full, shortNames);
            full.Append(' ');
            shortNames.Append(' ');
        }

        return (Collapse(full.ToString()), Collapse(shortNames.ToString()));
    }

    private static void Append(XElement element, StringBuilder full, StringBuilder shortNames)
    {
        var hasText = !string.IsNullOrWhiteSpace(element.Value);
        var name = element.Name.LocalName;
        if ((name == "see" || name == "seealso") && !hasText && element.Attribute("cref") is { } cref)
        {
            var reference = cref.Value.Length > 2 && cref.Value[1] == ':' ? cref.Value[2..] : cref.Value;
            full.Append(reference);
            var withoutParameters = reference.Split('(')[0];
            shortNames.Append(withoutParameters[(withoutParameters.LastIndexOf('.') + 1)..]);
            return;
        }

        var replacement = name switch
        {
            "see" when element.Attribute("langword") is { } langword => langword.Value,
            "paramref" or "typeparamref" => element.Attribute("name")?.Value ?? string.Empty,
            "see" when !hasText && element.Attribute("href") is { } href => href.Value,
            _ => null,
        };
        if (replacement is not null)
        {
            full.Append(replacement);
            shortNames.Append(replacement);
            return;
        }

        foreach (var node in element.Nodes())
        {
            switch (node)
            {
                case XText text:
                    full.Append(text.Value);
                    shortNames.Append(text.Value);
                    break;
                case XElement child:
                    Append(child, full, shortNames);
                    break;
            }
        }
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
