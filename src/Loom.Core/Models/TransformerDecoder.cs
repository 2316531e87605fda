using Loom.Tensors;
using Tensor = Loom.Tensors.Tensor;

namespace Loom.Models;

/// <summary>
/// Inference over a <see cref="Transformer"/> with a <see cref="KvCache"/>, through the model's one forward
/// pass (<see cref="Transformer.ForwardHidden"/>, the tape in inference mode, LoRA adapters applied as in
/// training): a prompt runs once (prefill: one row of many tokens), then each step runs one new token for every
/// active sequence together (decode: one row per sequence). In a decode step each projection is one matrix
/// product with a row per sequence that streams each weight row once (<see cref="ProjectionOps"/>), RoPE turns
/// each row at its own position, and each row attends to its own slot of the cache. Decode steps have a tape of
/// their own, so once the widest step has been seen a step allocates nothing.
/// Not thread-safe: one caller (the generation loop) at a time.
/// </summary>
public sealed unsafe class TransformerDecoder : IBatchDecoder
{
    readonly Transformer model;
    readonly LlamaConfig config;
    readonly Tape prefillTape;
    readonly Tape decodeTape;
    readonly KvCacheView view;
    readonly int[][] stepIds; // [slots + MaxSliceTokens][rows] token ids of a step of rows + 1 rows (the embedding takes exactly batch·tokens ids)
    readonly int[] stepOf;    // [slots] last step that used the slot (duplicate check without allocating)
    int step;

    /// <param name="model">The weights (shared, read-only).</param>
    /// <param name="slotCount">Sequences that can be decoded together.</param>
    /// <param name="contextLength">Tokens per slot; null (or more than the model's MaxSeq) means MaxSeq.</param>
    /// <param name="compute">The threads the kernels run on; null means <see cref="ComputeContext.Default"/>.</param>
    public TransformerDecoder(Transformer model, int slotCount = 1, int? contextLength = null, ComputeContext? compute = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slotCount, 1);
        if (contextLength is < 1) throw new ArgumentException($"the context length must be at least 1, got {contextLength}");
        this.model = model;
        config = model.Config;
        Compute = compute ?? ComputeContext.Default;
        prefillTape = new Tape(Compute) { Recording = false };
        decodeTape = new Tape(Compute) { Recording = false };
        ContextLength = Math.Min(contextLength ?? config.MaxSeq, config.MaxSeq);
        Cache = new KvCache(config.Layers, slotCount, ContextLength, config.KvDim);
        view = new KvCacheView(Cache, slotCount + MaxSliceTokens);
        stepIds = [.. Enumerable.Range(1, slotCount + MaxSliceTokens).Select(rows => new int[rows])];
        stepOf = new int[slotCount];
        stepOf.AsSpan().Fill(-1);
    }

    /// <summary>The longest prompt slice <see cref="DecodeWithSlice"/> takes along a decode step.</summary>
    public const int MaxSliceTokens = 64;

    public Transformer Model => model;
    /// <summary>The threads the kernels run on.</summary>
    public ComputeContext Compute { get; }
    public KvCache Cache { get; }
    public int VocabSize => config.VocabSize;
    public int ContextLength { get; }
    public int SlotCount => Cache.SlotCount;

    /// <summary>Token rows run through the blocks so far (prefill rows plus one per sequence per decode step).</summary>
    public long ProcessedRows { get; private set; }

    /// <summary>Query·key dot products computed so far, over all layers and heads: a measure of attention work.</summary>
    public long AttentionDotProducts { get; private set; }

    /// <summary>Tokens cached in <paramref name="slot"/> (0 when free).</summary>
    public int Length(int slot) => Cache.Length(slot);

    public void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        CheckSlot(slot);
        Cache.SetLength(slot, 0);
        PrefillAt(slot, 0, tokens, logits);
    }

    /// <summary>
    /// Appends tokens to the sequence in <paramref name="slot"/> in one pass. A prompt prefilled in chunks that
    /// start on multiples of 64 tokens (the attention's query block), each of more than
    /// <see cref="ProjectionOps.GemvRows"/> tokens, gets the very logits and cache of the whole prompt prefilled at once.
    /// </summary>
    public void Append(int slot, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        CheckSlot(slot);
        int start = Cache.Length(slot);
        if (start == 0) throw new ArgumentException($"slot {slot} has no sequence (prefill it first)", nameof(slot));
        PrefillAt(slot, start, tokens, logits);
    }

    /// <summary>Runs tokens at positions start.. of slot, caches their keys and values, and writes the last one's logits.</summary>
    void PrefillAt(int slot, int start, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int count = tokens.Length;
        if (count == 0) throw new ArgumentException("the prompt is empty", nameof(tokens));
        if (start + count > ContextLength)
            throw new ArgumentException($"the prompt has {start + count} tokens, more than the context of {ContextLength}", nameof(tokens));
        if (logits.Length != config.VocabSize) throw new ArgumentException($"logits have {logits.Length} entries, the vocabulary {config.VocabSize}", nameof(logits));
        CheckTokens(tokens);

        view.Set(0, slot, start);
        prefillTape.Reset();
        var hidden = model.ForwardHidden(prefillTape, tokens.ToArray(), 1, count, view); // [1, tokens, dim]
        // Only the last position's logits are needed: the LM head on one row.
        Head(hidden.Pointer + (long)(count - 1) * config.Dim, 1, logits);
        Cache.SetLength(slot, start + count);
        ProcessedRows += count;
        AttentionDotProducts += (long)config.Layers * config.Heads * ((long)count * start + (long)count * (count + 1) / 2);
    }

    public void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int rows = slots.Length;
        if (rows == 0) return;
        long attendedPositions = SetDecodeRows(slots, tokens, logits);
        var ids = stepIds[rows - 1]; // [rows]
        tokens.CopyTo(ids);
        decodeTape.Reset();
        var hidden = model.ForwardHidden(decodeTape, ids, rows, 1, view); // [rows, 1, dim]
        Head(hidden.Pointer, rows, logits);

        for (int i = 0; i < rows; i++) Cache.SetLength(slots[i], Cache.Length(slots[i]) + 1);
        ProcessedRows += rows;
        AttentionDotProducts += (long)config.Layers * config.Heads * attendedPositions;
    }

    /// <summary>
    /// The decode step and the prompt slice in one pass over the weights: each slice token is a batch row of its own at
    /// its position in <paramref name="sliceSlot"/> (every row's key and value is cached before any row attends, so the
    /// slice attends causally to itself), the projections run once over all rows, and the LM head runs on the decode rows
    /// and the slice's last row. The slice's logits agree with <see cref="Append"/>'s to rounding (other kernels sum them),
    /// not bit for bit; a step costs about what the decode step alone costs plus the slice's arithmetic.
    /// </summary>
    public void DecodeWithSlice(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits,
        int sliceSlot, int sliceStart, ReadOnlySpan<int> slice, Span<float> sliceLogits)
    {
        int decodeRows = slots.Length, count = slice.Length;
        if (count == 0) throw new ArgumentException("the prompt slice is empty", nameof(slice));
        if (count > MaxSliceTokens) throw new ArgumentException($"a slice taken along a decode step has at most {MaxSliceTokens} tokens, got {count}", nameof(slice));
        CheckSlot(sliceSlot);
        if (sliceStart != Cache.Length(sliceSlot) && sliceStart != 0)
            throw new ArgumentException($"slot {sliceSlot} holds {Cache.Length(sliceSlot)} tokens, the slice starts at {sliceStart}", nameof(sliceStart));
        if (sliceStart + count > ContextLength)
            throw new ArgumentException($"the prompt has {sliceStart + count} tokens, more than the context of {ContextLength}", nameof(slice));
        if (sliceLogits.Length != config.VocabSize) throw new ArgumentException($"slice logits have {sliceLogits.Length} entries, the vocabulary {config.VocabSize}", nameof(sliceLogits));
        CheckTokens(slice);
        long attendedPositions = decodeRows == 0 ? 0 : SetDecodeRows(slots, tokens, logits);
        if (decodeRows > 0 && stepOf[sliceSlot] == step) throw new ArgumentException($"slot {sliceSlot} is both decoded and prefilled in one step", nameof(sliceSlot));
        for (int j = 0; j < count; j++) view.Set(decodeRows + j, sliceSlot, sliceStart + j);

        int rows = decodeRows + count;
        var ids = stepIds[rows - 1]; // [rows]
        tokens.CopyTo(ids);
        slice.CopyTo(ids.AsSpan(decodeRows));
        decodeTape.Reset();
        var hidden = model.ForwardHidden(decodeTape, ids, rows, 1, view); // [rows, 1, dim]
        if (decodeRows > 0) Head(hidden.Pointer, decodeRows, logits);
        Head(hidden.Pointer + (long)(rows - 1) * config.Dim, 1, sliceLogits);

        for (int i = 0; i < decodeRows; i++) Cache.SetLength(slots[i], Cache.Length(slots[i]) + 1);
        Cache.SetLength(sliceSlot, sliceStart + count);
        ProcessedRows += rows;
        attendedPositions += (long)count * sliceStart + (long)count * (count + 1) / 2;
        AttentionDotProducts += (long)config.Layers * config.Heads * attendedPositions;
    }

    /// <summary>Checks a decode step's rows and points the view's first rows at them; returns the positions they attend to.</summary>
    long SetDecodeRows(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int rows = slots.Length;
        if (tokens.Length != rows) throw new ArgumentException($"decode got {tokens.Length} tokens for {rows} slots", nameof(tokens));
        if (rows > SlotCount) throw new ArgumentException($"decode got {rows} slots, the decoder has {SlotCount}", nameof(slots));
        if (logits.Length < (long)rows * config.VocabSize)
            throw new ArgumentException($"logits have {logits.Length} entries, {rows} rows need {rows}x{config.VocabSize}", nameof(logits));
        CheckTokens(tokens);
        step++;
        long attendedPositions = 0;
        for (int i = 0; i < rows; i++)
        {
            int slot = slots[i];
            CheckSlot(slot);
            if (stepOf[slot] == step) throw new ArgumentException($"slot {slot} appears twice in one decode step", nameof(slots));
            stepOf[slot] = step;
            int length = Cache.Length(slot);
            if (length == 0) throw new ArgumentException($"slot {slot} has no sequence (prefill it first)", nameof(slots));
            if (length >= ContextLength) throw new ArgumentException($"slot {slot} is full: its context of {ContextLength} tokens is used up", nameof(slots));
            view.Set(i, slot, length);
            attendedPositions += length + 1;
        }
        return attendedPositions;
    }

    public void Release(int slot)
    {
        CheckSlot(slot);
        Cache.SetLength(slot, 0);
    }

    public void Dispose() { }

    /// <summary>
    /// The LM head on <paramref name="rows"/> final hidden states [rows, dim], written straight into logits [rows, vocab]
    /// (int8 dot products when the head is held quantised).
    /// </summary>
    void Head(float* hidden, int rows, Span<float> logits)
    {
        fixed (float* output = logits)
        {
            if (model.LmHead.Quantized is { } head)
                QuantizedGemv.Multiply(hidden, rows, config.Dim, head, output, null, null, null, null, Compute);
            else
                Gemv.Multiply(hidden, rows, config.Dim, model.LmHead.Pointer, config.VocabSize, output, Compute);
        }
    }

    void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)SlotCount) throw new ArgumentException($"slot {slot} is outside [0, {SlotCount})");
    }

    void CheckTokens(ReadOnlySpan<int> tokens)
    {
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)config.VocabSize)
                throw new ArgumentException($"token id {tokens[i]} at position {i} is outside the vocabulary [0, {config.VocabSize})");
    }
}
