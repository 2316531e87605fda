using System.Text;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;
using Loom.Models;
using Loom.Models.Gguf;
using Loom.Text;

namespace Loom.LlamaCpp;

/// <summary>
/// A GGUF model run by llama.cpp as an <see cref="IBatchDecoder"/>: each slot is one llama.cpp
/// sequence of a shared KV cache, and a decode step sends one token per active slot in one batch.
/// So <see cref="Loom.Serving.GenerationEngine"/> serves GGUF files exactly as it serves Loom's own
/// checkpoints, and benchmarks compare the two engines through one interface. Not thread-safe.
/// </summary>
public sealed class LlamaCppDecoder : IBatchDecoder
{
    readonly LLamaWeights weights;
    readonly LLamaContext context;
    readonly LLamaBatch batch = new();
    readonly int batchSize;
    readonly int[] lengths; // [slots] tokens in each sequence

    LlamaCppDecoder(string path, LLamaWeights weights, LLamaContext context, int slots, int contextLength, int batchSize)
    {
        Path = path;
        this.weights = weights;
        this.context = context;
        this.batchSize = batchSize;
        lengths = new int[slots];
        ContextLength = contextLength;
        // llama.cpp gives a BPE vocabulary without bos/eos keys the default id 11 for both; trust only ids the file names.
        using var reader = GgufReader.Open(path);
        Tokenizer = new LlamaCppTokenizer(weights, reader.Contains(GgufVocabulary.BosKey), reader.Contains(GgufVocabulary.EosKey));
    }

    public string Path { get; }
    public int VocabSize => weights.Vocab.Count;
    public int ContextLength { get; }
    public int SlotCount => lengths.Length;

    /// <summary>The GGUF's own tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The model's context length from the GGUF metadata.</summary>
    public int TrainedContextLength => weights.ContextSize;

    /// <summary>
    /// Loads a GGUF file with <paramref name="slots"/> sequences of <see cref="LlamaCppOptions.ContextSize"/>
    /// tokens each (default: the model's context length, at most <see cref="LlamaCppOptions.DefaultContextSize"/>). The
    /// header is checked by <see cref="GgufPreflight"/> first: a <see cref="GgufException"/> names the file and the key.
    /// </summary>
    public static LlamaCppDecoder Load(string path, int slots = 1, LlamaCppOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        options ??= new LlamaCppOptions();
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        GgufPreflight.Check(path);
        LlamaCppRuntime.EnsureLoaded();
        var parameters = options.ToModelParams(path);
        parameters.SeqMax = (uint)slots;
        LLamaWeights? weights = null;
        try
        {
            LlamaCppRuntime.ClearErrors();
            weights = LLamaWeights.LoadFromFile(parameters);
            int perSlot = Math.Min(options.ContextSize ?? LlamaCppOptions.DefaultContextSize, weights.ContextSize);
            parameters.ContextSize = (uint)(perSlot * slots);
            var context = weights.CreateContext(parameters);
            return new LlamaCppDecoder(path, weights, context, slots, perSlot, options.BatchSize);
        }
        catch (Exception e) when (e is LoadWeightsFailedException or RuntimeError)
        {
            weights?.Dispose();
            throw new InvalidDataException($"{path}: llama.cpp could not load the model: {LlamaCppRuntime.LastError() ?? e.Message}");
        }
    }

    public void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        CheckSlot(slot);
        Release(slot);
        PrefillAt(slot, 0, tokens, logits);
    }

    public void Append(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        CheckSlot(slot);
        if (lengths[slot] == 0) throw new ArgumentException($"slot {slot} has no sequence (prefill it first)", nameof(slot));
        PrefillAt(slot, lengths[slot], tokens, logits);
    }

    /// <summary>Runs tokens at positions offset.. of slot in batches and writes the last one's logits.</summary>
    void PrefillAt(int slot, int offset, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (tokens.Length == 0) throw new ArgumentException("the prompt is empty", nameof(tokens));
        if (offset + tokens.Length > ContextLength)
            throw new ArgumentException($"the prompt has {offset + tokens.Length} tokens, more than the context of {ContextLength}", nameof(tokens));
        if (logits.Length != VocabSize) throw new ArgumentException($"logits have {logits.Length} entries, the vocabulary {VocabSize}", nameof(logits));
        CheckTokens(tokens);
        var sequence = (LLamaSeqId)slot;
        for (int start = 0; start < tokens.Length; start += batchSize)
        {
            int end = Math.Min(tokens.Length, start + batchSize);
            batch.Clear();
            for (int t = start; t < end; t++) batch.Add(tokens[t], offset + t, sequence, t == tokens.Length - 1);
            Run();
            if (end == tokens.Length) context.NativeHandle.GetLogitsIth(end - 1 - start).CopyTo(logits);
        }
        lengths[slot] = offset + tokens.Length;
    }

    public void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int rows = slots.Length;
        if (rows == 0) return;
        if (tokens.Length != rows) throw new ArgumentException($"decode got {tokens.Length} tokens for {rows} slots", nameof(tokens));
        if (logits.Length < (long)rows * VocabSize) throw new ArgumentException($"logits have {logits.Length} entries, {rows} rows need {rows}x{VocabSize}", nameof(logits));
        CheckTokens(tokens);
        batch.Clear();
        for (int i = 0; i < rows; i++)
        {
            int slot = slots[i];
            CheckSlot(slot);
            if (lengths[slot] == 0) throw new ArgumentException($"slot {slot} has no sequence (prefill it first)", nameof(slots));
            if (lengths[slot] >= ContextLength) throw new ArgumentException($"slot {slot} is full: its context of {ContextLength} tokens is used up", nameof(slots));
            batch.Add(tokens[i], lengths[slot], (LLamaSeqId)slot, true);
        }
        Run();
        int vocab = VocabSize;
        for (int i = 0; i < rows; i++)
        {
            context.NativeHandle.GetLogitsIth(i).CopyTo(logits.Slice(i * vocab, vocab));
            lengths[slots[i]]++;
        }
    }

    public void Release(int slot)
    {
        CheckSlot(slot);
        if (lengths[slot] > 0) context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
        lengths[slot] = 0;
    }

    void Run()
    {
        var result = context.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"{Path}: llama.cpp decode failed ({result})");
    }

    void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)lengths.Length) throw new ArgumentException($"slot {slot} is outside [0, {lengths.Length})");
    }

    void CheckTokens(ReadOnlySpan<int> tokens)
    {
        int vocab = VocabSize;
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw new ArgumentException($"token id {tokens[i]} at position {i} is outside the vocabulary [0, {vocab})");
    }

    public void Dispose()
    {
        context.Dispose();
        weights.Dispose();
    }
}

/// <summary>A GGUF's own tokenizer (as llama.cpp implements it) behind Loom's <see cref="ITokenizer"/>.</summary>
public sealed class LlamaCppTokenizer : ITokenizer
{
    readonly LLamaWeights weights;

    internal LlamaCppTokenizer(LLamaWeights weights, bool fileNamesBos, bool fileNamesEos)
    {
        this.weights = weights;
        var vocab = weights.NativeHandle.Vocab;
        BosId = fileNamesBos && vocab.ShouldAddBOS && vocab.BOS is LLamaToken bos ? (int)bos : null;
        EosId = fileNamesEos && vocab.EOS is LLamaToken eos ? (int)eos : null;
        PadId = vocab.Pad is LLamaToken pad ? (int)pad : null;
        EndOfTurnId = vocab.EOT is LLamaToken eot ? (int)eot : null;
    }

    public int VocabSize => weights.Vocab.Count;
    /// <summary>The BOS token when the model wants one prepended (tokenizer.ggml.add_bos_token), else null.</summary>
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }
    /// <summary>The end-of-turn token of chat models, or null.</summary>
    public int? EndOfTurnId { get; }

    public int[] Encode(string text, bool allowSpecialTokens = false)
    {
        if (text.Length == 0) return [];
        var tokens = weights.NativeHandle.Tokenize(text, false, allowSpecialTokens, Encoding.UTF8);
        var ids = new int[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)tokens[i];
        return ids;
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false) =>
        ids.AddRange(Encode(text.ToString(), allowSpecialTokens));

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        Span<byte> piece = stackalloc byte[256];
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)VocabSize) { bytes.AddRange("\uFFFD"u8); continue; }
            if (skipSpecialTokens && IsSpecial(id)) continue;
            int n = (int)weights.NativeHandle.TokenToSpan(id, piece, 0, !skipSpecialTokens);
            if (n > piece.Length) n = piece.Length;
            for (int i = 0; i < n; i++) bytes.Add(piece[i]);
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public int? TokenToId(string token)
    {
        var ids = Encode(token, allowSpecialTokens: true);
        return ids.Length == 1 ? ids[0] : null;
    }

    public string? IdToToken(int id) => (uint)id < (uint)VocabSize ? Decode([id]) : null;

    public bool IsSpecial(int id) => id == BosId || id == EosId || id == PadId || id == EndOfTurnId
        || ((uint)id < (uint)VocabSize && ((LLamaToken)id).IsControl(weights.NativeHandle.Vocab));

    /// <summary>llama.cpp's end-of-generation tokens of the GGUF (end of text, end of turn, and the like).</summary>
    public bool IsEndOfGeneration(int id) => (uint)id < (uint)VocabSize && ((LLamaToken)id).IsEndOfGeneration(weights.NativeHandle.Vocab);

    /// <summary>The token's piece as llama.cpp renders it (control tokens render as nothing).</summary>
    public byte[] TokenBytes(int id)
    {
        if ((uint)id >= (uint)VocabSize || IsSpecial(id)) return [];
        Span<byte> piece = stackalloc byte[256];
        int n = (int)weights.NativeHandle.TokenToSpan(id, piece, 0, false);
        return n <= 0 ? [] : piece[..Math.Min(n, piece.Length)].ToArray();
    }

    public void Save(string directory) =>
        throw new InvalidOperationException("a GGUF's tokenizer lives inside the GGUF file; it cannot be saved as tokenizer.json");
}
