namespace Loom.Text.Structured;

/// <summary>Limits of a compiled grammar; null means the default.</summary>
public sealed record GrammarOptions
{
    /// <summary>Rule calls that may be open at once ($ref recursion, JSON nesting of free-form values); default 32.</summary>
    public int? MaxDepth { get; init; }
}

/// <summary>
/// A byte-level language (from a JSON Schema or a regular expression) run as a lazily built DFA: a
/// DFA state is the set of pushdown configurations (an automaton state plus the stack of return
/// states below it) that the bytes so far can lead to, interned so that each set is met once and
/// its transitions are computed once. Every configuration kept can still reach the end within the
/// depth limit, so any prefix the grammar admits can be finished. Thread-safe.
/// </summary>
public sealed class Grammar
{
    const int StateLimit = 20_000;

    readonly ByteAutomaton automaton;
    readonly int[] need;
    readonly int maxDepth;
    readonly object gate = new();

    // Interned stacks: a stack id is its top state plus the id of the stack below (-1: none). A stack is also a configuration.
    readonly List<int> stackState = [];
    readonly List<int> stackParent = [];
    readonly List<int> stackDepth = [];
    readonly Dictionary<long, int> stackIds = [];

    readonly Dictionary<int[], GrammarState> states = new(ConfigSetComparer.Instance);
    readonly HashSet<int> closureSeen = [];
    readonly Stack<int> closureWork = new();
    readonly List<int> kernel = [];

    internal Grammar(ByteAutomaton automaton, int rootRule, GrammarOptions? options)
    {
        this.automaton = automaton;
        maxDepth = options?.MaxDepth ?? 32;
        if (maxDepth < 1) throw new ArgumentException($"GrammarOptions.MaxDepth must be positive, got {maxDepth}");
        automaton.Seal();
        need = automaton.Need;
        int start = automaton.RuleStart(rootRule);
        if (1 + need[start] > maxDepth)
            throw new SchemaNotSupportedException($"the grammar admits no complete value within {maxDepth} levels of nesting");
        lock (gate)
        {
            kernel.Add(StackId(start, -1, 1));
            Start = Close();
            kernel.Clear();
        }
    }

    /// <summary>Compiles a JSON Schema (the subset in <see cref="JsonSchemaCompiler"/>); throws <see cref="SchemaNotSupportedException"/> naming any keyword outside it.</summary>
    public static Grammar FromJsonSchema(System.Text.Json.JsonElement schema, GrammarOptions? options = null) => JsonSchemaCompiler.Compile(schema, options);

    /// <summary>Compiles a regular expression that the whole output must match.</summary>
    public static Grammar FromRegex(string pattern, GrammarOptions? options = null) => RegexCompiler.Compile(pattern, options);

    /// <summary>The state before any byte.</summary>
    internal GrammarState Start { get; }

    /// <summary>Whether the whole text is in the language.</summary>
    public bool Matches(ReadOnlySpan<byte> text)
    {
        var state = Start;
        foreach (byte b in text)
        {
            var next = Step(state, b);
            if (next is null) return false;
            state = next;
        }
        return state.Accepting;
    }

    /// <summary>The state after one more byte, or null when the byte leaves the language.</summary>
    internal GrammarState? Step(GrammarState state, byte value)
    {
        var known = state.Next[value];
        if (known is not null) return ReferenceEquals(known, GrammarState.Dead) ? null : known;
        lock (gate)
        {
            foreach (int config in state.Configs)
            {
                int depth = stackDepth[config], parent = stackParent[config];
                foreach (var (lo, hi, target) in automaton.BytesOf(stackState[config]))
                    if (value >= lo && value <= hi && depth + need[target] <= maxDepth) kernel.Add(StackId(target, parent, depth));
            }
            var next = kernel.Count == 0 ? GrammarState.Dead : Close();
            kernel.Clear();
            state.Next[value] = next;
            return ReferenceEquals(next, GrammarState.Dead) ? null : next;
        }
    }

    /// <summary>Closes <see cref="kernel"/> under epsilon moves, calls and returns, and interns the set of configurations that read a byte.</summary>
    GrammarState Close()
    {
        closureSeen.Clear();
        foreach (int config in kernel)
            if (closureSeen.Add(config)) closureWork.Push(config);
        bool accepting = false;
        var reading = new List<int>();
        while (closureWork.TryPop(out int config))
        {
            int state = stackState[config], parent = stackParent[config], depth = stackDepth[config];
            if (automaton.HasBytes(state)) reading.Add(config);
            if (automaton.IsFinal(state))
            {
                if (parent < 0) accepting = true;
                else if (closureSeen.Add(parent)) closureWork.Push(parent);
            }
            foreach (int target in automaton.EpsilonsOf(state))
                if (depth + need[target] <= maxDepth) Push(StackId(target, parent, depth));
            foreach (var (rule, ret) in automaton.CallsOf(state))
            {
                int start = automaton.RuleStart(rule);
                if (depth + need[ret] > maxDepth || depth + 1 + need[start] > maxDepth) continue;
                Push(StackId(start, StackId(ret, parent, depth), depth + 1));
            }
        }
        reading.Sort();
        int[] key = accepting ? [.. reading, -1] : [.. reading];
        if (states.TryGetValue(key, out var known)) return known;
        // Past the limit the table starts afresh; states already handed out stay valid (their transitions are pure).
        if (states.Count >= StateLimit) states.Clear();
        var created = new GrammarState([.. reading], accepting);
        states[key] = created;
        return created;

        void Push(int config)
        {
            if (closureSeen.Add(config)) closureWork.Push(config);
        }
    }

    int StackId(int state, int parent, int depth)
    {
        long key = ((long)state << 32) | (uint)(parent + 1);
        if (stackIds.TryGetValue(key, out int id)) return id;
        id = stackState.Count;
        stackState.Add(state);
        stackParent.Add(parent);
        stackDepth.Add(depth);
        stackIds[key] = id;
        return id;
    }

    sealed class ConfigSetComparer : IEqualityComparer<int[]>
    {
        public static readonly ConfigSetComparer Instance = new();
        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] set)
        {
            var hash = new HashCode();
            hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.AsSpan()));
            return hash.ToHashCode();
        }
    }
}

/// <summary>One state of a <see cref="Grammar"/>'s lazy DFA: configurations that read a byte, whether the text so far is complete, and cached transitions.</summary>
internal sealed class GrammarState(int[] configs, bool accepting)
{
    /// <summary>The transition target meaning "no way on".</summary>
    public static readonly GrammarState Dead = new([], false);

    public int[] Configs { get; } = configs;
    public bool Accepting { get; } = accepting;
    /// <summary>Whether some byte can follow (false: the text is complete and nothing may be added).</summary>
    public bool CanContinue => Configs.Length > 0;
    /// <summary>[256] the state after each byte: null not yet computed, <see cref="Dead"/> refused.</summary>
    public GrammarState?[] Next { get; } = new GrammarState?[256];
    /// <summary>[vocab / 64] allowed tokens of the vocabulary this grammar was compiled for; null until first asked.</summary>
    public ulong[]? Mask { get; set; }
}
