using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Loom.Text.Structured;

/// <summary>
/// A grammar over one tokenizer's vocabulary: which tokens may come next in each grammar state (a
/// token is allowed iff all its bytes are accepted), computed once per state by walking the
/// vocabulary trie and cached on the state. End tokens (the tokenizer's end-of-text and the chat
/// end-of-turn <c>&lt;|end|&gt;</c>) are allowed only where the text so far is complete. Compiled
/// grammars are cached per (format text, tokenizer). Thread-safe; <see cref="Start"/> gives each
/// sequence its own <see cref="TokenMatcher"/>.
/// </summary>
public sealed class TokenGrammar
{
    const int CachedPerTokenizer = 64;

    static readonly ConditionalWeakTable<ITokenizer, Vocabulary> Vocabularies = [];

    readonly Grammar grammar;
    readonly Vocabulary vocabulary;
    readonly object gate = new();

    TokenGrammar(Grammar grammar, Vocabulary vocabulary)
    {
        this.grammar = grammar;
        this.vocabulary = vocabulary;
    }

    /// <summary>The grammar of a JSON Schema over the tokenizer's vocabulary (cached by the schema's text).</summary>
    public static TokenGrammar ForJsonSchema(JsonElement schema, ITokenizer tokenizer, GrammarOptions? options = null) =>
        Cached(tokenizer, "schema\n" + schema.GetRawText(), options, () => Grammar.FromJsonSchema(schema, options));

    /// <summary>The grammar of a regular expression (anchored at both ends) over the tokenizer's vocabulary.</summary>
    public static TokenGrammar ForRegex(string pattern, ITokenizer tokenizer, GrammarOptions? options = null) =>
        Cached(tokenizer, "regex\n" + pattern, options, () => Grammar.FromRegex(pattern, options));

    static TokenGrammar Cached(ITokenizer tokenizer, string text, GrammarOptions? options, Func<Grammar> compile)
    {
        var vocabulary = Vocabularies.GetValue(tokenizer, t => new Vocabulary(t));
        string key = $"{options?.MaxDepth}\n{text}";
        lock (vocabulary.Grammars)
        {
            if (vocabulary.Grammars.TryGetValue(key, out var known)) return known;
        }
        // Compiled outside the lock: a large schema must not stall other requests; a rare duplicate compile is harmless.
        var created = new TokenGrammar(compile(), vocabulary);
        lock (vocabulary.Grammars)
        {
            if (vocabulary.Grammars.TryGetValue(key, out var known)) return known;
            if (vocabulary.Grammars.Count >= CachedPerTokenizer) vocabulary.Grammars.Remove(vocabulary.Order.Dequeue());
            vocabulary.Grammars[key] = created;
            vocabulary.Order.Enqueue(key);
        }
        return created;
    }

    /// <summary>Tokens that end the output where it is complete.</summary>
    public IReadOnlyList<int> EndTokens => vocabulary.EndTokens;

    /// <summary>A matcher at the start of the output.</summary>
    public TokenMatcher Start() => new(this, grammar.Start);

    internal Grammar Grammar => grammar;
    internal int VocabSize => vocabulary.Trie.VocabSize;
    internal byte[] TokenBytes(int token) => vocabulary.TokenBytes[token];
    internal bool IsEnd(int token) => System.Array.IndexOf(vocabulary.EndTokens, token) >= 0;

    /// <summary>[vocab / 64] the ordinary tokens allowed in a state.</summary>
    internal ulong[] MaskOf(GrammarState state)
    {
        if (state.Mask is { } mask) return mask;
        lock (gate)
        {
            if (state.Mask is { } again) return again;
            var bits = new ulong[(VocabSize + 63) / 64];
            vocabulary.Trie.FillMask(grammar, state, bits);
            state.Mask = bits;
            return bits;
        }
    }

    sealed class Vocabulary
    {
        public Vocabulary(ITokenizer tokenizer)
        {
            Trie = new VocabularyTrie(tokenizer);
            TokenBytes = new byte[tokenizer.VocabSize][];
            for (int id = 0; id < TokenBytes.Length; id++) TokenBytes[id] = tokenizer.IsSpecial(id) ? [] : tokenizer.TokenBytes(id);
            var ends = new List<int>();
            for (int id = 0; id < tokenizer.VocabSize; id++)
                if (tokenizer.IsEndOfGeneration(id)) ends.Add(id);
            EndTokens = [.. ends];
        }

        public VocabularyTrie Trie { get; }
        public int[] EndTokens { get; }
        /// <summary>[vocab] each token's bytes (empty for special tokens).</summary>
        public byte[][] TokenBytes { get; }
        public Dictionary<string, TokenGrammar> Grammars { get; } = new(StringComparer.Ordinal);
        public Queue<string> Order { get; } = new();
    }
}

/// <summary>
/// One sequence's position in a <see cref="TokenGrammar"/>: masks the logits before each sample and
/// advances over each chosen token. Not thread-safe; one per sequence.
/// </summary>
public sealed class TokenMatcher
{
    readonly TokenGrammar grammar;
    GrammarState state;

    internal TokenMatcher(TokenGrammar grammar, GrammarState start)
    {
        this.grammar = grammar;
        state = start;
    }

    /// <summary>Whether the output so far is complete (an end token may follow).</summary>
    public bool IsAccepting => state.Accepting;

    /// <summary>Whether the output is complete and nothing may be added to it.</summary>
    public bool IsFinished => state.Accepting && !state.CanContinue;

    /// <summary>Whether the token is one of the end tokens (which end the output rather than add to it).</summary>
    public bool IsEndToken(int token) => grammar.IsEnd(token);

    public bool IsAllowed(int token)
    {
        if (grammar.IsEnd(token)) return state.Accepting;
        if ((uint)token >= (uint)grammar.VocabSize) return false;
        return (grammar.MaskOf(state)[token >> 6] & (1UL << token)) != 0;
    }

    /// <summary>
    /// Sets the logit of every token that may not come next to negative infinity; entries past the
    /// tokenizer's vocabulary are refused too. Returns false when no token at all is allowed (the
    /// vocabulary cannot spell what the grammar needs next).
    /// </summary>
    public bool ApplyMask(Span<float> logits)
    {
        var mask = grammar.MaskOf(state);
        int vocab = Math.Min(logits.Length, grammar.VocabSize);
        var ends = grammar.EndTokens;
        Span<float> endLogits = stackalloc float[ends.Count];
        for (int e = 0; e < ends.Count; e++) endLogits[e] = (uint)ends[e] < (uint)logits.Length ? logits[ends[e]] : 0f;
        bool any = false;
        for (int word = 0; word * 64 < vocab; word++)
        {
            ulong bits = mask[word];
            int begin = word * 64, end = Math.Min(vocab, begin + 64);
            if (bits == 0) { logits[begin..end].Fill(float.NegativeInfinity); continue; }
            any = true;
            // Visit only the refused tokens of the word (its zero bits).
            for (ulong refused = ~bits; refused != 0; refused &= refused - 1)
            {
                int i = begin + System.Numerics.BitOperations.TrailingZeroCount(refused);
                if (i >= end) break;
                logits[i] = float.NegativeInfinity;
            }
        }
        logits[vocab..].Fill(float.NegativeInfinity);
        for (int e = 0; e < ends.Count; e++)
        {
            if ((uint)ends[e] >= (uint)logits.Length) continue;
            logits[ends[e]] = state.Accepting ? endLogits[e] : float.NegativeInfinity;
            any |= state.Accepting;
        }
        return any;
    }

    /// <summary>Advances over a token's bytes; end tokens leave the state as it is. Throws if the token is not allowed.</summary>
    public void Accept(int token)
    {
        if (!IsAllowed(token)) throw new InvalidOperationException($"token {token} is not allowed by the output format here");
        if (grammar.IsEnd(token)) return;
        foreach (byte b in grammar.TokenBytes(token))
            state = grammar.Grammar.Step(state, b) ?? throw new InvalidOperationException($"token {token} left the output format");
    }
}
