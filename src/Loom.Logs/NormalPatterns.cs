namespace Loom.Logs;

/// <summary>A distinct event sequence of the normal training sessions, and how many training sessions had it.</summary>
public sealed record NormalPattern(IReadOnlyList<string> Events, int Count);

/// <summary>A normal pattern near a session: <see cref="Distance"/> is the edit distance over events (one insertion, deletion or substitution of an event each).</summary>
public sealed record SimilarSession(IReadOnlyList<string> Events, int Count, int Distance);

/// <summary>The normal sessions a log model keeps for explanations, and the nearest of them to a session.</summary>
public static class NormalPatterns
{
    /// <summary>The distinct sequences of <paramref name="sessions"/>, the most frequent first (ties in order of first appearance), at most <paramref name="keep"/>.</summary>
    public static List<NormalPattern> From(IEnumerable<LogSession> sessions, int keep)
    {
        if (keep < 0) throw new ArgumentException($"LogModelOptions.KeptNormalSessions must be >= 0, got {keep}");
        var counts = new Dictionary<string, (IReadOnlyList<string> Events, int Count, int First)>(StringComparer.Ordinal);
        foreach (var session in sessions)
        {
            // Event keys never hold a newline (template ids, or ids split on spaces), so it is a safe separator.
            string key = string.Join('\n', session.Events);
            counts[key] = counts.TryGetValue(key, out var entry) ? (entry.Events, entry.Count + 1, entry.First) : (session.Events, 1, counts.Count);
        }
        return [.. counts.Values.OrderByDescending(e => e.Count).ThenBy(e => e.First).Take(keep).Select(e => new NormalPattern([.. e.Events], e.Count))];
    }

    /// <summary>
    /// The <paramref name="count"/> patterns nearest to <paramref name="events"/> by edit distance, the nearest first and,
    /// at equal distance, the most frequent first.
    /// </summary>
    public static List<SimilarSession> Nearest(IReadOnlyList<NormalPattern> normal, IReadOnlyList<string> events, int count)
    {
        var best = new List<SimilarSession>(count + 1);
        if (count <= 0) return best;
        foreach (var pattern in normal)
        {
            // The length difference bounds the distance from below: skip what cannot enter the list.
            int bound = best.Count == count ? best[^1].Distance : int.MaxValue;
            if (Math.Abs(pattern.Events.Count - events.Count) > bound) continue;
            int distance = EditDistance(pattern.Events, events);
            if (distance > bound || (distance == bound && pattern.Count <= best[^1].Count)) continue;
            best.Add(new SimilarSession(pattern.Events, pattern.Count, distance));
            best.Sort((a, b) => a.Distance != b.Distance ? a.Distance.CompareTo(b.Distance) : b.Count.CompareTo(a.Count));
            if (best.Count > count) best.RemoveAt(best.Count - 1);
        }
        return best;
    }

    /// <summary>Levenshtein distance between two event sequences (events compared ordinally).</summary>
    public static int EditDistance(IReadOnlyList<string> first, IReadOnlyList<string> second)
    {
        var previous = new int[second.Count + 1];
        var current = new int[second.Count + 1];
        for (int j = 0; j <= second.Count; j++) previous[j] = j;
        for (int i = 1; i <= first.Count; i++)
        {
            current[0] = i;
            for (int j = 1; j <= second.Count; j++)
            {
                int substitute = previous[j - 1] + (string.Equals(first[i - 1], second[j - 1], StringComparison.Ordinal) ? 0 : 1);
                current[j] = Math.Min(substitute, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[second.Count];
    }
}
