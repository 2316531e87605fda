namespace Loom.Text.Structured;

/// <summary>
/// The byte strings of a vocabulary's ordinary tokens as a trie, flattened into arrays, so that a
/// token mask is one depth-first walk that drops a whole subtree at its first refused byte.
/// Special tokens and tokens with no bytes are left out (never allowed inside structured output).
/// </summary>
internal sealed class VocabularyTrie
{
    readonly int[] childStart;  // [nodes + 1] first edge of each node in childByte/childNode
    readonly byte[] childByte;  // [edges]
    readonly int[] childNode;   // [edges]
    readonly int[] tokenStart;  // [nodes + 1] first token ending at each node in tokenIds
    readonly int[] tokenIds;    // [tokens]

    public VocabularyTrie(ITokenizer tokenizer)
    {
        VocabSize = tokenizer.VocabSize;
        var children = new List<SortedDictionary<byte, int>> { new() };
        var ends = new List<List<int>> { new() };
        int depth = 0;
        for (int id = 0; id < tokenizer.VocabSize; id++)
        {
            if (tokenizer.IsSpecial(id)) continue;
            var bytes = tokenizer.TokenBytes(id);
            if (bytes.Length == 0) continue;
            depth = Math.Max(depth, bytes.Length);
            int node = 0;
            foreach (byte b in bytes)
            {
                if (!children[node].TryGetValue(b, out int child))
                {
                    child = children.Count;
                    children.Add(new());
                    ends.Add([]);
                    children[node][b] = child;
                }
                node = child;
            }
            ends[node].Add(id);
        }
        MaxDepth = depth;
        NodeCount = children.Count;
        childStart = new int[NodeCount + 1];
        tokenStart = new int[NodeCount + 1];
        var edgeBytes = new List<byte>();
        var edgeNodes = new List<int>();
        var tokens = new List<int>();
        for (int node = 0; node < NodeCount; node++)
        {
            childStart[node] = edgeBytes.Count;
            foreach (var (b, child) in children[node]) { edgeBytes.Add(b); edgeNodes.Add(child); }
            tokenStart[node] = tokens.Count;
            tokens.AddRange(ends[node]);
        }
        childStart[NodeCount] = edgeBytes.Count;
        tokenStart[NodeCount] = tokens.Count;
        childByte = [.. edgeBytes];
        childNode = [.. edgeNodes];
        tokenIds = [.. tokens];
    }

    public int VocabSize { get; }
    public int NodeCount { get; }
    /// <summary>The longest token, in bytes.</summary>
    public int MaxDepth { get; }

    /// <summary>Sets the bit of every token whose bytes <paramref name="grammar"/> accepts from <paramref name="state"/>.</summary>
    internal void FillMask(Grammar grammar, GrammarState state, Span<ulong> bits)
    {
        var nodes = new int[MaxDepth + 1];
        var edges = new int[MaxDepth + 1];
        var states = new GrammarState[MaxDepth + 1];
        int top = 0;
        nodes[0] = 0;
        edges[0] = childStart[0];
        states[0] = state;
        while (top >= 0)
        {
            int node = nodes[top];
            int edge = edges[top];
            if (edge == childStart[node + 1]) { top--; continue; }
            edges[top] = edge + 1;
            var next = grammar.Step(states[top], childByte[edge]);
            if (next is null) continue;
            int child = childNode[edge];
            for (int t = tokenStart[child]; t < tokenStart[child + 1]; t++)
            {
                int id = tokenIds[t];
                bits[id >> 6] |= 1UL << id;
            }
            top++;
            nodes[top] = child;
            edges[top] = childStart[child];
            states[top] = next;
        }
    }
}
