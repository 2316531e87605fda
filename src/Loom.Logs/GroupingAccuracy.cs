using System.Text;

namespace Loom.Logs;

/// <summary>
/// Grouping accuracy as in logparser's evaluator (Zhu et al., ICSE-SEIP'19): a line counts as right when the set of
/// lines the parser put in its group equals the set of lines that share its ground-truth event.
/// </summary>
public static class GroupingAccuracy
{
    /// <summary>The share of lines whose parsed group equals their true group; the two lists are aligned by line.</summary>
    public static double Compute(IReadOnlyList<string> truth, IReadOnlyList<int> parsed)
    {
        if (truth.Count != parsed.Count) throw new ArgumentException($"{truth.Count} ground-truth events for {parsed.Count} parsed lines");
        if (truth.Count == 0) return 1;
        var truthGroups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var parsedGroups = new Dictionary<int, List<int>>();
        for (int i = 0; i < truth.Count; i++)
        {
            if (!truthGroups.TryGetValue(truth[i], out var t)) truthGroups[truth[i]] = t = [];
            t.Add(i);
            if (!parsedGroups.TryGetValue(parsed[i], out var p)) parsedGroups[parsed[i]] = p = [];
            p.Add(i);
        }
        long right = 0;
        foreach (var group in parsedGroups.Values)
        {
            var members = truthGroups[truth[group[0]]];
            if (members.Count == group.Count && group.All(i => truth[i] == truth[group[0]])) right += group.Count;
        }
        return (double)right / truth.Count;
    }

    /// <summary>The EventId column of a Loghub <c>*_structured.csv</c>, one entry per line.</summary>
    public static IReadOnlyList<string> ReadLoghubTruth(string structuredCsv)
    {
        if (!File.Exists(structuredCsv)) throw new FileNotFoundException($"{structuredCsv}: file not found", structuredCsv);
        using var reader = new StreamReader(structuredCsv, Encoding.UTF8);
        var header = Csv.ReadRecord(reader) ?? throw new InvalidDataException($"{structuredCsv}: empty file");
        int column = header.IndexOf("EventId");
        if (column < 0) throw new InvalidDataException($"{structuredCsv}: no EventId column");
        var events = new List<string>();
        while (Csv.ReadRecord(reader) is { } record)
        {
            if (record.Count <= column) throw new InvalidDataException($"{structuredCsv}: record {events.Count + 2} has {record.Count} fields, EventId is field {column + 1}");
            events.Add(record[column]);
        }
        return events;
    }
}

/// <summary>A small RFC 4180 reader: quoted fields may hold commas, doubled quotes and newlines.</summary>
internal static class Csv
{
    public static List<string>? ReadRecord(TextReader reader)
    {
        int c = reader.Read();
        if (c < 0) return null;
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        while (true)
        {
            if (c < 0) { fields.Add(field.ToString()); return fields; }
            char ch = (char)c;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else quoted = false;
                }
                else field.Append(ch);
            }
            else if (ch == '"') quoted = true;
            else if (ch == ',') { fields.Add(field.ToString()); field.Clear(); }
            else if (ch == '\n') { fields.Add(field.ToString()); return fields; }
            else if (ch != '\r') field.Append(ch);
            c = reader.Read();
        }
    }
}
