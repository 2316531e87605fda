namespace Loom.Text;

/// <summary>
/// Decodes a stream of ids one at a time, for streaming generation: a character split over several
/// byte-level tokens is held back until it is complete, so the pieces joined equal
/// <see cref="ITokenizer.Decode"/> of all the ids. Not thread-safe; one per generation.
/// </summary>
public sealed class IncrementalDecoder(ITokenizer tokenizer, bool skipSpecialTokens = false)
{
    // A UTF-8 character has at most 4 bytes, so at most 4 byte tokens can be pending.
    private const int MaxPending = 4;

    private readonly List<int> pending = [];

    /// <summary>Adds one id and returns the text it completes (possibly empty).</summary>
    public string Append(int id)
    {
        pending.Add(id);
        var text = tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending), skipSpecialTokens);
        if (text.EndsWith('\uFFFD') && pending.Count < MaxPending && !tokenizer.IsSpecial(id))
        {
            return "";
        }
        pending.Clear();
        return text;
    }

    /// <summary>Returns whatever is still held back (replacement characters for an incomplete character).</summary>
    public string Flush()
    {
        var text = tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending), skipSpecialTokens);
        pending.Clear();
        return text;
    }
}
