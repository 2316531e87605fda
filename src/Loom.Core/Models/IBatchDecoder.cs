namespace Loom.Models;

/// <summary>
/// A causal language model that decodes several sequences together, each in its own KV-cache slot:
/// the prompt is run once (prefill), then one token per step for every active slot (decode).
/// </summary>
public interface IBatchDecoder : IDisposable
{
    int VocabSize { get; }

    /// <summary>Tokens one slot can hold: prompt plus generated tokens.</summary>
    int ContextLength { get; }

    /// <summary>How many sequences can be active at once.</summary>
    int SlotCount { get; }

    /// <summary>Starts a sequence in <paramref name="slot"/> from its prompt; writes the next-token logits [vocab].</summary>
    void Prefill(int slot, ReadOnlySpan<int> tokens, Span<float> logits);

    /// <summary>Appends tokens to the sequence in <paramref name="slot"/> (the next chunk of a prompt prefilled in slices); writes the last one's next-token logits [vocab].</summary>
    void Append(int slot, ReadOnlySpan<int> tokens, Span<float> logits);

    /// <summary>Appends tokens[i] to slots[i] for each i and writes their next-token logits [slots.Length, vocab].</summary>
    void Decode(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits);

    /// <summary>
    /// One step of the running sequences with a slice of a prompt riding along: appends tokens[i] to slots[i] for each
    /// i, writing their next-token logits [slots.Length, vocab] into <paramref name="logits"/>, and appends
    /// <paramref name="slice"/> to the sequence in <paramref name="sliceSlot"/> (which holds <paramref name="sliceStart"/>
    /// tokens; 0 starts it), writing the next-token logits of its last token [vocab] into <paramref name="sliceLogits"/>.
    /// A decoder that can run both in one pass over the weights does so; this default runs them one after the other.
    /// </summary>
    void DecodeWithSlice(ReadOnlySpan<int> slots, ReadOnlySpan<int> tokens, Span<float> logits,
        int sliceSlot, int sliceStart, ReadOnlySpan<int> slice, Span<float> sliceLogits)
    {
        if (sliceStart == 0) Prefill(sliceSlot, slice, sliceLogits);
        else Append(sliceSlot, slice, sliceLogits);
        Decode(slots, tokens, logits);
    }

    /// <summary>Forgets the sequence in <paramref name="slot"/> so the slot can be reused.</summary>
    void Release(int slot);
}
