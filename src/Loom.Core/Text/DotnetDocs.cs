using System.Runtime.InteropServices;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Loom.Text;

/// <summary>One documented API member from the .NET SDK's XML documentation.</summary>
/// <param name="Id">The documentation id, e.g. <c>M:System.String.Trim(System.Char[])</c>; the natural source id for citations.</param>
/// <param name="Title">A readable name, e.g. <c>System.String.Trim(Char[])</c>.</param>
/// <param name="Text">Summary, type parameters, parameters, return value, exceptions and remarks as plain text.</param>
/// <param name="SourceFile">The XML file the member was read from.</param>
public sealed record DocMember(string Id, string Title, string Text, string SourceFile);

/// <summary>
/// The built-in corpus <c>dotnet-docs</c>: the XML documentation inside the installed .NET SDK's
/// reference packs (<c>packs/*.Ref/*/ref/net*/*.xml</c>), rendered as plain text. The XML files also document
/// internal types compiled from shared sources (MessagePack formatters, generated regex classes, resource strings,
/// Win32 interop); <see cref="ReadAll"/> with <c>publicSurfaceOnly</c> leaves them out (what retrieval ingests). Cross references
/// (<c>&lt;see cref&gt;</c>, <c>&lt;paramref&gt;</c>, <c>&lt;see langword&gt;</c>) become names, so no sentence has holes.
/// </summary>
public static class DotnetDocs
{
    /// <summary>The name that selects this corpus on the command line.</summary>
    public const string CorpusName = "dotnet-docs";

    /// <summary>The newest net* reference folder of the newest version of every pack, and its *.xml files, sorted by path.</summary>
    public static IReadOnlyList<string> FindFiles(string? sdkRoot = null)
    {
        var roots = sdkRoot is null ? CandidateRoots().ToList() : [sdkRoot];
        foreach (var root in roots)
        {
            var files = FilesUnder(root);
            if (files.Count > 0)
            {
                return files;
            }
        }
        throw new FileNotFoundException(
            $"no .NET SDK reference-pack documentation (packs/*.Ref/*/ref/net*/*.xml) found under {string.Join(", ", roots)}");
    }

    /// <summary>
    /// All members of all documentation files, each id once (the same member appears in several packs). With
    /// <paramref name="publicSurfaceOnly"/> a member is kept only when its type is public (or a public/protected nested
    /// type) in the reference assembly beside the XML file and declares a member of its name; a file with no assembly
    /// beside it is read whole.
    /// </summary>
    public static IEnumerable<DocMember> ReadAll(string? sdkRoot = null, bool publicSurfaceOnly = false)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in FindFiles(sdkRoot))
        {
            var surface = publicSurfaceOnly ? PublicSurface.Of(Path.ChangeExtension(file, ".dll")) : PublicSurface.Everything;
            foreach (var member in ReadMembers(file))
            {
                if (surface.Contains(member.Id) && seen.Add(member.Id))
                {
                    yield return member;
                }
            }
        }
    }

    /// <summary>
    /// Streams the members of one documentation file. Members with no text of their own
    /// (only <c>&lt;inheritdoc/&gt;</c>) are skipped.
    /// </summary>
    public static IEnumerable<DocMember> ReadMembers(string xmlFile)
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, IgnoreComments = true, IgnoreProcessingInstructions = true };
        using var reader = XmlReader.Create(xmlFile, settings);
        var names = new GenericNames();
        reader.MoveToContent();
        while (!reader.EOF)
        {
            if (reader.NodeType == XmlNodeType.Element && reader.Name == "member")
            {
                // One member at a time is materialised; the file itself is never held in memory.
                var element = (XElement)XNode.ReadFrom(reader);
                var id = (string?)element.Attribute("name");
                if (string.IsNullOrEmpty(id))
                {
                    continue;
                }
                var typeParameters = element.Elements("typeparam").Select(e => (string?)e.Attribute("name") ?? "T").ToArray();
                if (id.StartsWith("T:", StringComparison.Ordinal) && typeParameters.Length > 0)
                {
                    names.Types[id[2..]] = typeParameters;
                }
                names.Method = id.StartsWith("M:", StringComparison.Ordinal) && typeParameters.Length > 0 ? typeParameters : null;
                var text = RenderMember(element, names);
                if (text.Length > 0)
                {
                    yield return new DocMember(id, TitleOf(id, names), text, xmlFile);
                }
            }
            else
            {
                reader.Read();
            }
        }
    }

    /// <summary>
    /// Writes the plain-text pretraining corpus: for every member its title on one line, then its
    /// text, then a blank line. Returns the number of members written.
    /// </summary>
    public static long WriteCorpusText(TextWriter writer, string? sdkRoot = null, CancellationToken cancellationToken = default)
    {
        long count = 0;
        foreach (var member in ReadAll(sdkRoot))
        {
            cancellationToken.ThrowIfCancellationRequested();
            writer.Write(FormatDocument(member));
            count++;
        }
        return count;
    }

    /// <summary>The corpus text of one member: its title, its text, and a blank line.</summary>
    public static string FormatDocument(DocMember member) => member.Title + "\n" + member.Text + "\n\n";

    private static List<string> FilesUnder(string root)
    {
        var packs = Path.Combine(root, "packs");
        var files = new List<string>();
        if (!Directory.Exists(packs))
        {
            return files;
        }
        foreach (var pack in Directory.GetDirectories(packs, "*.Ref").Order(StringComparer.Ordinal))
        {
            var versions = Directory.GetDirectories(pack)
                .Where(version => Directory.Exists(Path.Combine(version, "ref")))
                .ToList();
            if (versions.Count == 0)
            {
                continue;
            }
            var newestVersion = versions.MaxBy(version => VersionKey(Path.GetFileName(version)), VersionKeyComparer.Instance)!;
            var frameworks = Directory.GetDirectories(Path.Combine(newestVersion, "ref"), "net*")
                .Where(framework => Directory.EnumerateFiles(framework, "*.xml").Any())
                .ToList();
            if (frameworks.Count == 0)
            {
                continue;
            }
            var newestFramework = frameworks.MaxBy(framework => FrameworkKey(Path.GetFileName(framework)), VersionKeyComparer.Instance)!;
            files.AddRange(Directory.GetFiles(newestFramework, "*.xml").Order(StringComparer.Ordinal));
        }
        return files;
    }

    private static IEnumerable<string> CandidateRoots()
    {
        var environmentRoot = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(environmentRoot))
        {
            yield return environmentRoot;
        }
        var processPath = Environment.ProcessPath;
        if (processPath is not null && Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            var resolved = new FileInfo(processPath).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? processPath;
            yield return Path.GetDirectoryName(resolved)!;
        }
        // The running runtime lives in <root>/shared/Microsoft.NETCore.App/<version>/.
        var runtimeDirectory = RuntimeEnvironment.GetRuntimeDirectory().TrimEnd(Path.DirectorySeparatorChar);
        var runtimeRoot = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(runtimeDirectory)));
        if (!string.IsNullOrEmpty(runtimeRoot))
        {
            yield return runtimeRoot;
        }
        yield return "/usr/share/dotnet";
        yield return "/usr/lib/dotnet";
        yield return "/usr/local/share/dotnet";
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(home))
        {
            yield return Path.Combine(home, ".dotnet");
        }
    }

    // "10.0.12" -> [10, 0, 12, 1]; "10.0.0-preview.3" -> [10, 0, 0, 0]: a release sorts after its previews.
    private static int[] VersionKey(string name)
    {
        var dash = name.IndexOf('-');
        var core = dash < 0 ? name : name[..dash];
        var parts = core.Split('.').Select(part => int.TryParse(part, out var number) ? number : -1).ToList();
        parts.Add(dash < 0 ? 1 : 0);
        return [.. parts];
    }

    // "net10.0" -> [10, 0]; "netcoreapp3.1" -> [3, 1]; "netstandard2.0" -> [2, 0] after every netX.
    private static int[] FrameworkKey(string name)
    {
        var digits = name.SkipWhile(c => !char.IsAsciiDigit(c)).ToArray();
        var key = VersionKey(new string(digits));
        return name.StartsWith("netstandard", StringComparison.Ordinal) ? [-1, .. key] : key;
    }

    private sealed class VersionKeyComparer : IComparer<int[]>
    {
        public static readonly VersionKeyComparer Instance = new();

        public int Compare(int[]? x, int[]? y)
        {
            x ??= [];
            y ??= [];
            for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
            {
                if (x[i] != y[i])
                {
                    return x[i].CompareTo(y[i]);
                }
            }
            return x.Length.CompareTo(y.Length);
        }
    }

    // ---- Rendering a member ----

    private static string RenderMember(XElement member, GenericNames names)
    {
        var text = new PlainTextBuilder();
        foreach (var section in member.Elements().Where(e => e.Name == "summary"))
        {
            text.Paragraph();
            RenderNodes(section, text, names);
        }
        foreach (var typeParameter in member.Elements("typeparam"))
        {
            RenderLabelled(text, $"Type parameter {(string?)typeParameter.Attribute("name")}: ", typeParameter, names);
        }
        foreach (var parameter in member.Elements("param"))
        {
            RenderLabelled(text, $"Parameter {(string?)parameter.Attribute("name")}: ", parameter, names);
        }
        foreach (var returns in member.Elements("returns"))
        {
            RenderLabelled(text, "Returns: ", returns, names);
        }
        foreach (var value in member.Elements("value"))
        {
            RenderLabelled(text, "Value: ", value, names);
        }
        foreach (var exception in member.Elements("exception"))
        {
            var cref = (string?)exception.Attribute("cref");
            RenderLabelled(text, cref is null ? "Exception: " : $"Exception {CrefName(cref, names)}: ", exception, names);
        }
        foreach (var remarks in member.Elements("remarks"))
        {
            RenderLabelled(text, "Remarks: ", remarks, names);
        }
        foreach (var example in member.Elements("example"))
        {
            RenderLabelled(text, "Example: ", example, names);
        }
        return text.ToString();
    }

    private static void RenderLabelled(PlainTextBuilder text, string label, XElement section, GenericNames names)
    {
        var body = new PlainTextBuilder();
        RenderNodes(section, body, names);
        var rendered = body.ToString();
        if (rendered.Length == 0)
        {
            return;
        }
        text.Paragraph();
        text.AppendRaw(label);
        text.AppendRaw(rendered);
    }

    private static void RenderNodes(XElement parent, PlainTextBuilder text, GenericNames names)
    {
        foreach (var node in parent.Nodes())
        {
            switch (node)
            {
                case XText textNode:
                    text.AppendFlowing(textNode.Value);
                    break;
                case XElement element:
                    RenderElement(element, text, names);
                    break;
            }
        }
    }

    private static void RenderElement(XElement element, PlainTextBuilder text, GenericNames names)
    {
        switch (element.Name.LocalName)
        {
            case "see":
            case "seealso":
                if (element.Nodes().Any())
                {
                    RenderNodes(element, text, names);
                }
                else if ((string?)element.Attribute("cref") is { } cref)
                {
                    text.AppendWord(CrefName(cref, names));
                }
                else if (((string?)element.Attribute("langword") ?? (string?)element.Attribute("langref") ?? (string?)element.Attribute("name")) is { } word)
                {
                    text.AppendWord(word);
                }
                else if ((string?)element.Attribute("href") is { } href)
                {
                    text.AppendWord(href);
                }
                break;
            case "paramref":
            case "typeparamref":
                text.AppendWord((string?)element.Attribute("name") ?? "");
                break;
            case "xref":
                if (element.Nodes().Any())
                {
                    RenderNodes(element, text, names);
                }
                else if ((string?)element.Attribute("uid") is { } uid)
                {
                    text.AppendWord(CrefName(uid, names));
                }
                break;
            case "a":
                if (element.Nodes().Any())
                {
                    RenderNodes(element, text, names);
                }
                else if ((string?)element.Attribute("href") is { } link)
                {
                    text.AppendWord(link);
                }
                break;
            case "code":
                RenderCode(element.Value, text);
                break;
            case "para":
            case "p":
            case "div":
            case "ul":
            case "ol":
                text.Paragraph();
                RenderNodes(element, text, names);
                text.Paragraph();
                break;
            case "br":
                text.LineBreak();
                break;
            case "list":
                text.Paragraph();
                foreach (var row in element.Elements())
                {
                    text.LineBreak();
                    text.AppendRaw("- ");
                    RenderListRow(row, text, names);
                }
                text.Paragraph();
                break;
            case "li":
                text.LineBreak();
                text.AppendRaw("- ");
                RenderNodes(element, text, names);
                break;
            case "inheritdoc":
                break;
            default:
                RenderNodes(element, text, names);
                break;
        }
    }

    private static void RenderListRow(XElement row, PlainTextBuilder text, GenericNames names)
    {
        var term = row.Element("term");
        var description = row.Element("description");
        if (term is null && description is null)
        {
            RenderNodes(row, text, names);
            return;
        }
        if (term is not null)
        {
            RenderNodes(term, text, names);
        }
        if (term is not null && description is not null)
        {
            text.AppendRaw(text.EndsWithPunctuation ? " " : ": ");
        }
        if (description is not null)
        {
            RenderNodes(description, text, names);
        }
    }

    private static void RenderCode(string code, PlainTextBuilder text)
    {
        var lines = code.Replace("\r\n", "\n").Split('\n').Select(line => line.TrimEnd()).ToList();
        while (lines.Count > 0 && lines[0].Length == 0)
        {
            lines.RemoveAt(0);
        }
        while (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }
        if (lines.Count == 0)
        {
            return;
        }
        if (lines.Count == 1)
        {
            text.AppendWord(lines[0].Trim());
            return;
        }
        var indent = lines.Where(line => line.Length > 0).Min(line => line.Length - line.TrimStart().Length);
        text.Paragraph();
        text.AppendRaw(string.Join('\n', lines.Select(line => line.Length >= indent ? line[indent..] : line)));
        text.Paragraph();
    }

    // ---- Names ----

    /// <summary>Generic parameter names known while reading a file: types seen so far, and the current method's.</summary>
    private sealed class GenericNames
    {
        public Dictionary<string, string[]> Types { get; } = new(StringComparer.Ordinal);

        public string[]? Method { get; set; }
    }

    /// <summary>
    /// The short readable name of a cref: <c>T:System.Threading.CancellationToken</c> becomes
    /// <c>CancellationToken</c>, <c>M:System.String.Trim(System.Char[])</c> becomes <c>String.Trim</c>,
    /// <c>T:System.Collections.Generic.List`1</c> becomes <c>List&lt;T&gt;</c> (or the declared names,
    /// such as <c>Dictionary&lt;TKey, TValue&gt;</c>, when the type was read earlier in the same file).
    /// </summary>
    public static string CrefName(string cref) => CrefName(cref, null);

    /// <summary>The readable title of a member id: namespace-qualified, with short parameter types.</summary>
    public static string TitleOf(string id) => TitleOf(id, null);

    private static string CrefName(string cref, GenericNames? names)
    {
        var (kind, name) = SplitKind(cref);
        var parenthesis = name.IndexOf('(');
        if (parenthesis >= 0)
        {
            name = name[..parenthesis];
        }
        var segments = SplitSegments(name);
        if (segments.Count == 0)
        {
            return cref;
        }
        switch (kind)
        {
            case 'N':
                return name;
            case 'T':
                return TypeSegment(segments, segments.Count - 1, names);
            default:
                if (segments.Count == 1)
                {
                    return MemberSegment(segments[0], null, null);
                }
                var typeName = TypeSegment(segments, segments.Count - 2, names);
                return segments[^1] is "#ctor" or "#cctor" ? typeName : typeName + "." + MemberSegment(segments[^1], null, null);
        }
    }

    private static string TitleOf(string id, GenericNames? names)
    {
        var (kind, name) = SplitKind(id);
        string? parameters = null;
        var parenthesis = name.IndexOf('(');
        if (parenthesis >= 0)
        {
            var close = name.LastIndexOf(')');
            parameters = name[(parenthesis + 1)..(close > parenthesis ? close : name.Length)];
            name = name[..parenthesis];
        }
        var segments = SplitSegments(name);
        if (segments.Count == 0)
        {
            return id;
        }
        if (kind is 'N')
        {
            return name;
        }
        var title = new StringBuilder();
        var typeSegments = kind is 'T' ? segments.Count : segments.Count - 1;
        for (var i = 0; i < typeSegments; i++)
        {
            if (i > 0)
            {
                title.Append('.');
            }
            title.Append(TypeSegment(segments, i, names));
        }
        if (kind is not 'T')
        {
            if (title.Length > 0)
            {
                title.Append('.');
            }
            var declaringType = typeSegments > 0 ? segments[typeSegments - 1] : null;
            title.Append(MemberSegment(segments[^1], declaringType, names?.Method));
            var methodArity = segments[^1].IndexOf("``", StringComparison.Ordinal) is var backticks and >= 0
                && int.TryParse(segments[^1].AsSpan(backticks + 2), out var arity) ? arity : 0;
            var methodNames = names?.Method is { } declared && declared.Length == methodArity
                ? declared
                : methodArity > 0 ? GenericParameterNames(methodArity).Split(", ") : null;
            var context = new ParameterContext(TypeParameterNames(segments, typeSegments, names), methodNames);
            if (kind is 'M')
            {
                title.Append('(').Append(parameters is null ? "" : ParameterList(parameters, context)).Append(')');
            }
            else if (parameters is not null)
            {
                title.Append('[').Append(ParameterList(parameters, context)).Append(']');
            }
        }
        return title.ToString();
    }

    private static (char Kind, string Name) SplitKind(string cref)
    {
        var colon = cref.IndexOf(':');
        if (colon <= 0 || colon > "Overload".Length)
        {
            return ('T', cref);
        }
        var prefix = cref[..colon];
        var kind = prefix.Equals("Overload", StringComparison.OrdinalIgnoreCase) || prefix is "O" or "o" ? 'M' : char.ToUpperInvariant(prefix[0]);
        if (kind is '!')
        {
            kind = 'T';
        }
        return (kind, cref[(colon + 1)..]);
    }

    // Splits "System.Collections.Generic.List`1.Add" at the dots that separate names (never inside {} or []).
    private static List<string> SplitSegments(string name)
    {
        var segments = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < name.Length; i++)
        {
            switch (name[i])
            {
                case '{' or '[' or '<':
                    depth++;
                    break;
                case '}' or ']' or '>':
                    depth--;
                    break;
                case '.' when depth == 0:
                    if (i > start)
                    {
                        segments.Add(name[start..i]);
                    }
                    start = i + 1;
                    break;
            }
        }
        if (start < name.Length)
        {
            segments.Add(name[start..]);
        }
        return segments;
    }

    // segments[index] "List`1" -> "List<T>" (declared names when known); "Dictionary`2" -> "Dictionary<T1, T2>".
    private static string TypeSegment(IReadOnlyList<string> segments, int index, GenericNames? names)
    {
        var segment = segments[index];
        var backtick = segment.IndexOf('`');
        if (backtick < 0)
        {
            return segment;
        }
        var name = segment[..backtick];
        if (!int.TryParse(segment.AsSpan(backtick + 1), out var arity) || arity <= 0)
        {
            return name;
        }
        var key = string.Join('.', segments.Take(index + 1));
        // A nested type's documentation lists the enclosing types' parameters first, then its own.
        if (names is not null && names.Types.TryGetValue(key, out var declared) && declared.Length >= arity)
        {
            return name + "<" + string.Join(", ", declared[^arity..]) + ">";
        }
        return name + "<" + GenericParameterNames(arity) + ">";
    }

    private static string GenericParameterNames(int arity) =>
        arity == 1 ? "T" : string.Join(", ", Enumerable.Range(1, arity).Select(i => "T" + i));

    // The generic parameter names of a type and the types enclosing it, outermost first, as `N indexes them.
    private static string[]? TypeParameterNames(IReadOnlyList<string> segments, int typeSegments, GenericNames? names)
    {
        var total = 0;
        var innermost = -1;
        for (var i = 0; i < typeSegments; i++)
        {
            var backtick = segments[i].IndexOf('`');
            if (backtick >= 0 && int.TryParse(segments[i].AsSpan(backtick + 1), out var arity))
            {
                total += arity;
                innermost = i;
            }
        }
        if (innermost < 0)
        {
            return null;
        }
        // The innermost generic type's documentation lists every parameter, the enclosing types' first.
        return names is not null && names.Types.TryGetValue(string.Join('.', segments.Take(innermost + 1)), out var declared) && declared.Length == total
            ? declared
            : GenericParameterNames(total).Split(", ");
    }

    // "#ctor" -> the type's name; "System#IDisposable#Dispose" -> "Dispose"; "Select``2" -> "Select<TSource, TResult>".
    private static string MemberSegment(string segment, string? typeSegment, string[]? methodTypeParameters)
    {
        if (segment is "#ctor" or "#cctor")
        {
            var typeName = typeSegment ?? "ctor";
            var backtick = typeName.IndexOf('`');
            return backtick < 0 ? typeName : typeName[..backtick];
        }
        var hash = segment.LastIndexOf('#');
        if (hash >= 0)
        {
            segment = segment[(hash + 1)..];
        }
        var backticks = segment.IndexOf("``", StringComparison.Ordinal);
        if (backticks >= 0 && int.TryParse(segment.AsSpan(backticks + 2), out var arity) && arity > 0)
        {
            var parameterNames = methodTypeParameters is { } declared && declared.Length == arity
                ? string.Join(", ", declared)
                : GenericParameterNames(arity);
            return segment[..backticks] + "<" + parameterNames + ">";
        }
        return segment;
    }

    private sealed record ParameterContext(string[]? TypeParameters, string[]? MethodTypeParameters);

    // "System.Collections.Generic.IEnumerable{System.String},System.Int32@" -> "IEnumerable<String>, ref Int32".
    private static string ParameterList(string parameters, ParameterContext context)
    {
        var list = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i <= parameters.Length; i++)
        {
            if (i == parameters.Length || (parameters[i] == ',' && depth == 0))
            {
                if (i > start)
                {
                    list.Add(ParameterType(parameters[start..i], context));
                }
                start = i + 1;
            }
            else if (parameters[i] is '{' or '[')
            {
                depth++;
            }
            else if (parameters[i] is '}' or ']')
            {
                depth--;
            }
        }
        return string.Join(", ", list);
    }

    private static string ParameterType(string type, ParameterContext context)
    {
        var byReference = type.EndsWith('@');
        if (byReference)
        {
            type = type[..^1];
        }
        var result = new StringBuilder();
        if (byReference)
        {
            result.Append("ref ");
        }
        var i = 0;
        AppendType(type, ref i, result, context);
        return result.ToString();
    }

    // Reads one type name (with generic arguments in {}) starting at index i.
    private static void AppendType(string type, ref int i, StringBuilder result, ParameterContext context)
    {
        var nameStart = i;
        SkipName(type, ref i);
        var fullName = type[nameStart..i];
        var suffixStart = fullName.IndexOfAny(['[', '*']);
        var suffix = suffixStart < 0 ? "" : fullName[suffixStart..];
        if (suffixStart >= 0)
        {
            fullName = fullName[..suffixStart];
        }
        if (fullName.StartsWith("``", StringComparison.Ordinal))
        {
            result.Append(GenericReference(fullName[2..], context.MethodTypeParameters, "TMethod"));
        }
        else if (fullName.StartsWith('`'))
        {
            result.Append(GenericReference(fullName[1..], context.TypeParameters, "TType"));
        }
        else
        {
            var segments = SplitSegments(fullName);
            result.Append(segments.Count == 0 ? fullName : TypeSegment(segments, segments.Count - 1, null));
        }
        if (i < type.Length && type[i] == '{')
        {
            i++;
            result.Append('<');
            var first = true;
            while (i < type.Length && type[i] != '}')
            {
                if (type[i] == ',')
                {
                    i++;
                    continue;
                }
                if (!first)
                {
                    result.Append(", ");
                }
                first = false;
                AppendType(type, ref i, result, context);
            }
            i++;
            result.Append('>');
            var arrayStart = i;
            SkipName(type, ref i);
            suffix += type[arrayStart..i];
        }
        result.Append(RenderArraySuffix(suffix));
    }

    // "0" with names [TSource, TResult] -> "TSource"; unknown names -> "TMethod0".
    private static string GenericReference(string index, string[]? names, string fallbackPrefix) =>
        int.TryParse(index, out var position) && names is not null && position < names.Length ? names[position] : fallbackPrefix + index;

    // Moves past a name and any array suffix; commas inside [] belong to the suffix.
    private static void SkipName(string type, ref int i)
    {
        var inBracket = false;
        while (i < type.Length && (inBracket || type[i] is not ('{' or '}' or ',')))
        {
            inBracket = type[i] == '[' || (inBracket && type[i] != ']');
            i++;
        }
    }

    // "[0:,0:]" -> "[,]"; "[]" and "*" stay.
    private static string RenderArraySuffix(string suffix)
    {
        if (suffix.Length == 0)
        {
            return suffix;
        }
        var result = new StringBuilder();
        var inBracket = false;
        foreach (var c in suffix)
        {
            if (c == '[')
            {
                inBracket = true;
                result.Append(c);
            }
            else if (c == ']')
            {
                inBracket = false;
                result.Append(c);
            }
            else if (!inBracket || c == ',')
            {
                result.Append(c);
            }
        }
        return result.ToString();
    }

    /// <summary>Builds flowing text: whitespace runs collapse to one space, blank lines become paragraph breaks.</summary>
    private sealed class PlainTextBuilder
    {
        private readonly StringBuilder builder = new();
        private int pendingBreak; // 0 none, 1 space, 2 line break, 3 paragraph break

        public void AppendFlowing(string text)
        {
            var newlines = 0;
            var inWhitespace = false;
            foreach (var c in text)
            {
                if (char.IsWhiteSpace(c))
                {
                    if (!inWhitespace)
                    {
                        newlines = 0;
                        inWhitespace = true;
                    }
                    if (c == '\n')
                    {
                        newlines++;
                    }
                    Pending(newlines >= 2 ? 3 : 1);
                    continue;
                }
                inWhitespace = false;
                FlushPending();
                builder.Append(c);
            }
        }

        public void AppendWord(string word)
        {
            if (word.Length == 0)
            {
                return;
            }
            FlushPending();
            builder.Append(word);
        }

        public void AppendRaw(string text)
        {
            FlushPending();
            builder.Append(text);
        }

        public void LineBreak() => Pending(2);

        public void Paragraph() => Pending(3);

        private void Pending(int kind)
        {
            // A space right after raw text that already ends in whitespace ("- ", "Returns: ") would double it.
            if (kind == 1 && builder.Length > 0 && char.IsWhiteSpace(builder[^1]))
            {
                return;
            }
            pendingBreak = Math.Max(pendingBreak, kind);
        }

        private void FlushPending()
        {
            if (builder.Length > 0)
            {
                switch (pendingBreak)
                {
                    case 1:
                        builder.Append(' ');
                        break;
                    case 2:
                        builder.Append('\n');
                        break;
                    case 3:
                        builder.Append("\n\n");
                        break;
                }
            }
            pendingBreak = 0;
        }

        public bool EndsWithPunctuation => builder.Length > 0 && char.IsPunctuation(builder[^1]);

        public override string ToString() => builder.ToString();
    }
}
