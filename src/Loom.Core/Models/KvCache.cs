using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// Keys and values of every layer for several sequences (slots), kept so that a decode step attends
/// to the past without recomputing it. Keys are stored after RoPE. Sized once: layers × slots ×
/// maxTokens × kvDim floats for keys and as many for values.
/// </summary>
public sealed class KvCache
{
    readonly Tensor[] keys;   // per layer [slots, maxTokens, kvDim]
    readonly Tensor[] values; // per layer [slots, maxTokens, kvDim]
    readonly int[] lengths;   // [slots] tokens held by each slot

    public KvCache(int layers, int slotCount, int maxTokens, int kvDim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(slotCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvDim, 1);
        if ((long)slotCount * maxTokens * kvDim > Array.MaxLength)
            throw new ArgumentException($"a KV cache of {slotCount} slots × {maxTokens} tokens × {kvDim} channels is too large for one layer; use fewer slots");
        Layers = layers; SlotCount = slotCount; MaxTokens = maxTokens; KvDim = kvDim;
        keys = new Tensor[layers];
        values = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            keys[i] = new Tensor(slotCount, maxTokens, kvDim) { Name = $"kv_cache.{i}.keys" };
            values[i] = new Tensor(slotCount, maxTokens, kvDim) { Name = $"kv_cache.{i}.values" };
        }
        lengths = new int[slotCount];
    }

    public int Layers { get; }
    public int SlotCount { get; }
    /// <summary>Tokens one slot can hold.</summary>
    public int MaxTokens { get; }
    /// <summary>Channels of one key or value row: kvHeads · headDim.</summary>
    public int KvDim { get; }

    /// <summary>Bytes held by keys and values together.</summary>
    public long Bytes => 2L * Layers * SlotCount * MaxTokens * KvDim * sizeof(float);

    /// <summary>Tokens cached in <paramref name="slot"/>.</summary>
    public int Length(int slot) => lengths[slot];

    /// <summary>Sets the number of valid tokens in a slot (0 frees it); rows past it are ignored.</summary>
    public void SetLength(int slot, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxTokens);
        lengths[slot] = length;
    }

    /// <summary>Keys of one layer, [slots, maxTokens, kvDim].</summary>
    public Tensor Keys(int layer) => keys[layer];

    /// <summary>Values of one layer, [slots, maxTokens, kvDim].</summary>
    public Tensor Values(int layer) => values[layer];

    /// <summary>The key row of (layer, slot, position), [kvDim].</summary>
    internal unsafe float* KeyRow(int layer, int slot, int position) => keys[layer].Pointer + ((long)slot * MaxTokens + position) * KvDim;

    /// <summary>The value row of (layer, slot, position), [kvDim].</summary>
    internal unsafe float* ValueRow(int layer, int slot, int position) => values[layer].Pointer + ((long)slot * MaxTokens + position) * KvDim;
}
