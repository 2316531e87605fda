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

    /// <summary>Forgets the sequence in <paramref name="slot"/> so the slot can be reused.</summary>
    void Release(int slot);
}
