namespace Loom.Text;

/// <summary>
/// The merge table of a BPE vocabulary and the merge loop that applies it to one word: the
/// lowest-ranked adjacent pair first, leftmost among equal ranks (as Hugging Face tokenizers,
/// Microsoft.ML.Tokenizers and llama.cpp do). Immutable; safe from several threads.
/// </summary>
internal sealed class BpeMerges
{
    private readonly Dictionary<long, (int Rank, int Result)> table;

    /// <summary>
    /// Builds the table from merges in rank order (left id, right id, merged id). Where a pair is
    /// listed twice, <paramref name="lastWins"/> picks the later rank (Hugging Face builds a hash map
    /// from the list) or else the earlier one.
    /// </summary>
    public BpeMerges(IReadOnlyList<(int Left, int Right, int Result)> merges, bool lastWins)
    {
        table = new Dictionary<long, (int, int)>(merges.Count);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right, result) = merges[rank];
            var key = ByteLevelBpeTokenizer.PairKey(left, right);
            if (lastWins)
            {
                table[key] = (rank, result);
            }
            else
            {
                table.TryAdd(key, (rank, result));
            }
        }
    }

    public int Count => table.Count;

    /// <summary>
    /// Merges the symbols of one word in place and appends the resulting ids. A heap over
    /// (rank, position) and a linked list of symbols make it O(n log n) in the word's length.
    /// </summary>
    public void Apply(Span<int> symbols, List<int> ids)
    {
        var length = symbols.Length;
        if (length <= 1)
        {
            foreach (var symbol in symbols)
            {
                ids.Add(symbol);
            }
            return;
        }
        var next = new int[length];
        var previous = new int[length];
        var queue = new PriorityQueue<int, long>();
        for (var i = 0; i < length; i++)
        {
            next[i] = i + 1 < length ? i + 1 : -1;
            previous[i] = i - 1;
        }
        for (var i = 0; i + 1 < length; i++)
        {
            Enqueue(symbols, i, i + 1);
        }
        while (queue.TryDequeue(out var position, out var priority))
        {
            var rank = (int)(priority >> 32);
            var right = next[position];
            if (symbols[position] < 0 || right < 0
                || !table.TryGetValue(ByteLevelBpeTokenizer.PairKey(symbols[position], symbols[right]), out var current) || current.Rank != rank)
            {
                continue;
            }
            symbols[position] = current.Result;
            symbols[right] = -1;
            next[position] = next[right];
            if (next[right] >= 0)
            {
                previous[next[right]] = position;
            }
            if (previous[position] >= 0)
            {
                Enqueue(symbols, previous[position], position);
            }
            if (next[position] >= 0)
            {
                Enqueue(symbols, position, next[position]);
            }
        }
        for (var i = 0; i >= 0; i = next[i])
        {
            ids.Add(symbols[i]);
        }

        void Enqueue(Span<int> symbols, int left, int right)
        {
            if (table.TryGetValue(ByteLevelBpeTokenizer.PairKey(symbols[left], symbols[right]), out var merge))
            {
                queue.Enqueue(left, ((long)merge.Rank << 32) | (uint)left);
            }
        }
    }
}
