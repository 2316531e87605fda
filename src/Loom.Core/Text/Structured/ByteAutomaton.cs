namespace Loom.Text.Structured;

/// <summary>A piece of automaton with one entry and one exit state (Thompson construction).</summary>
internal readonly record struct Fragment(int Start, int End);

/// <summary>
/// A byte-level pushdown automaton as it is built: states with byte-range edges, epsilon edges and
/// call edges (enter a rule, come back to a return state when the rule reaches its end). Rules are
/// the recursive parts of a grammar ($ref targets, any JSON value); everything else is inlined.
/// After <see cref="Seal"/>, <see cref="Need"/> says how many stack frames each state still needs
/// to finish its rule, so a runner can refuse every move that could not finish within a depth limit.
/// </summary>
internal sealed class ByteAutomaton
{
    internal const int Unreachable = int.MaxValue / 4;

    readonly List<List<(byte Lo, byte Hi, int Target)>> byteEdges = [];
    readonly List<List<int>> epsilonEdges = [];
    readonly List<List<(int Rule, int Return)>> callEdges = [];
    readonly List<bool> final = [];
    readonly List<int> ruleStarts = [];

    public int StateCount => final.Count;

    /// <summary>[states] extra stack frames each state needs to reach its rule's end (Unreachable if it never can).</summary>
    public int[] Need { get; private set; } = [];

    public IReadOnlyList<(byte Lo, byte Hi, int Target)> BytesOf(int state) => byteEdges[state];
    public IReadOnlyList<int> EpsilonsOf(int state) => epsilonEdges[state];
    public IReadOnlyList<(int Rule, int Return)> CallsOf(int state) => callEdges[state];
    public bool IsFinal(int state) => final[state];
    public int RuleStart(int rule) => ruleStarts[rule];
    public bool HasBytes(int state) => byteEdges[state].Count > 0;

    public int NewState()
    {
        byteEdges.Add([]);
        epsilonEdges.Add([]);
        callEdges.Add([]);
        final.Add(false);
        return final.Count - 1;
    }

    /// <summary>Reserves a rule (so that its body may call it) and returns its id; <see cref="DefineRule"/> gives the body.</summary>
    public int NewRule()
    {
        ruleStarts.Add(-1);
        return ruleStarts.Count - 1;
    }

    public void DefineRule(int rule, Fragment body)
    {
        ruleStarts[rule] = body.Start;
        final[body.End] = true;
    }

    public Fragment Empty()
    {
        int s = NewState();
        return new Fragment(s, s);
    }

    /// <summary>One byte in [lo, hi].</summary>
    public Fragment Range(byte lo, byte hi)
    {
        int s = NewState(), e = NewState();
        byteEdges[s].Add((lo, hi, e));
        return new Fragment(s, e);
    }

    /// <summary>One byte in any of the ranges.</summary>
    public Fragment Ranges(IEnumerable<(byte Lo, byte Hi)> ranges)
    {
        int s = NewState(), e = NewState();
        foreach (var (lo, hi) in ranges) byteEdges[s].Add((lo, hi, e));
        return new Fragment(s, e);
    }

    public Fragment Literal(ReadOnlySpan<byte> bytes)
    {
        int s = NewState(), at = s;
        foreach (byte b in bytes)
        {
            int next = NewState();
            byteEdges[at].Add((b, b, next));
            at = next;
        }
        return new Fragment(s, at);
    }

    public Fragment Literal(string text) => Literal(System.Text.Encoding.UTF8.GetBytes(text));

    public Fragment Call(int rule)
    {
        int s = NewState(), e = NewState();
        callEdges[s].Add((rule, e));
        return new Fragment(s, e);
    }

    public void Epsilon(int from, int to) => epsilonEdges[from].Add(to);

    public Fragment Sequence(params ReadOnlySpan<Fragment> parts)
    {
        if (parts.Length == 0) return Empty();
        for (int i = 1; i < parts.Length; i++) Epsilon(parts[i - 1].End, parts[i].Start);
        return new Fragment(parts[0].Start, parts[^1].End);
    }

    public Fragment Choice(IEnumerable<Fragment> alternatives)
    {
        int s = NewState(), e = NewState();
        foreach (var alternative in alternatives)
        {
            Epsilon(s, alternative.Start);
            Epsilon(alternative.End, e);
        }
        return new Fragment(s, e);
    }

    public Fragment Optional(Fragment inner)
    {
        Epsilon(inner.Start, inner.End);
        return inner;
    }

    /// <summary>Between <paramref name="min"/> and <paramref name="max"/> (null: no limit) copies of what <paramref name="make"/> builds.</summary>
    public Fragment Repeat(Func<Fragment> make, int min, int? max)
    {
        int start = NewState(), at = start;
        for (int i = 0; i < min; i++)
        {
            var part = make();
            Epsilon(at, part.Start);
            at = part.End;
        }
        if (max is null)
        {
            var loop = make();
            int hub = NewState();
            Epsilon(at, hub);
            Epsilon(hub, loop.Start);
            Epsilon(loop.End, hub);
            return new Fragment(start, hub);
        }
        int end = NewState();
        for (int i = min; i < max; i++)
        {
            Epsilon(at, end);
            var part = make();
            Epsilon(at, part.Start);
            at = part.End;
        }
        Epsilon(at, end);
        return new Fragment(start, end);
    }

    /// <summary>
    /// Computes <see cref="Need"/>: need(q) = 0 at a rule's end, else the least over q's edges (a byte or
    /// epsilon edge: the target's need; a call: the larger of 1 + the callee's need and the return state's).
    /// Needs only fall, so a worklist from the final states over reverse edges reaches the fixpoint.
    /// </summary>
    public void Seal()
    {
        int n = StateCount;
        var need = new int[n];
        Array.Fill(need, Unreachable);
        var predecessors = new List<int>[n];
        for (int q = 0; q < n; q++) predecessors[q] = [];
        for (int q = 0; q < n; q++)
        {
            foreach (var (_, _, target) in byteEdges[q]) predecessors[target].Add(q);
            foreach (int target in epsilonEdges[q]) predecessors[target].Add(q);
            foreach (var (rule, ret) in callEdges[q])
            {
                predecessors[ret].Add(q);
                predecessors[ruleStarts[rule]].Add(q);
            }
        }
        var work = new Stack<int>();
        for (int q = 0; q < n; q++)
            if (final[q]) { need[q] = 0; work.Push(q); }
        while (work.TryPop(out int changed))
        {
            foreach (int q in predecessors[changed])
            {
                int best = Evaluate(q, need);
                if (best < need[q]) { need[q] = best; work.Push(q); }
            }
        }
        Need = need;
    }

    int Evaluate(int q, int[] need)
    {
        int best = need[q];
        foreach (var (_, _, target) in byteEdges[q]) best = Math.Min(best, need[target]);
        foreach (int target in epsilonEdges[q]) best = Math.Min(best, need[target]);
        foreach (var (rule, ret) in callEdges[q])
            best = Math.Min(best, Math.Max(1 + need[ruleStarts[rule]], need[ret]));
        return best;
    }
}
