namespace Loom.Models;

/// <summary>
/// Finds stop strings in streamed text. Text that could be the start of a stop string is held
/// back until it is decided, so a caller never emits part of a stop string.
/// </summary>
public sealed class StopSequenceMatcher
{
    readonly string[] stops;
    readonly System.Text.StringBuilder pending = new();

    public StopSequenceMatcher(IEnumerable<string>? stops)
    {
        this.stops = stops?.Where(s => s.Length > 0).Distinct().ToArray() ?? [];
    }

    /// <summary>True once a stop string has appeared; later input is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text and returns the part that is safe to emit now.</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        if (stops.Length == 0) return piece;
        pending.Append(piece);
        string text = pending.ToString();
        int first = -1;
        foreach (var stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0)
        {
            Stopped = true;
            pending.Clear();
            return text[..first];
        }
        int hold = LongestPartialStop(text);
        pending.Clear().Append(text, text.Length - hold, hold);
        return text[..^hold];
    }

    /// <summary>At the end of generation: whatever was held back, since no stop string completed.</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : pending.ToString();
        pending.Clear();
        return rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of some stop string.</summary>
    int LongestPartialStop(string text)
    {
        int best = 0;
        foreach (var stop in stops)
            for (int length = Math.Min(stop.Length - 1, text.Length); length > best; length--)
                if (string.CompareOrdinal(text, text.Length - length, stop, 0, length) == 0) { best = length; break; }
        return best;
    }
}
