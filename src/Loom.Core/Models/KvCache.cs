using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// Keys and values of every layer for several sequences (slots), kept so that a decode step attends
/// to the past without recomputing it. Keys are stored after RoPE. Sized once: layers × slots ×
/// maxTokens × kvDim floats for keys and as many for values. A forward pass reads and extends it
/// through a <see cref="KvCacheView"/>.
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
        // Checked before allocating: a corrupt max_position_embeddings (2e7) would otherwise grow memory until the process dies.
        long bytes = 2L * layers * slotCount * maxTokens * kvDim * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > available / 2)
            throw new ArgumentException($"a KV cache of {layers} layers × {slotCount} slots × {maxTokens} tokens × {kvDim} channels needs {bytes / 1e9:F1} GB, " +
                $"more than half of the {available / 1e9:F1} GB available; use a shorter context or fewer slots");
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
}

/// <summary>
/// The slots of a <see cref="KvCache"/> that one forward pass reads and extends: batch row b of the pass is the
/// sequence in slot <c>slots[b]</c>, and its tokens go to positions <c>starts[b]</c>, <c>starts[b]</c> + 1, ….
/// A prompt is one row at start 0 (prefill); a decode step is one token per row, each at its slot's length. Several
/// rows of one token may continue one slot at consecutive positions (a prompt's slice riding along a decode step):
/// every row's key and value is cached before any row attends, so each attends to the rows before it.
/// The rows are sized once, so setting them allocates nothing.
/// </summary>
public sealed class KvCacheView
{
    readonly int[] slots;  // [rows] cache slot of each batch row
    readonly int[] starts; // [rows] position of each batch row's first new token

    /// <param name="cache">The cache read and extended.</param>
    /// <param name="rows">Batch rows a pass may have; null means one per slot.</param>
    public KvCacheView(KvCache cache, int? rows = null)
    {
        Cache = cache;
        slots = new int[rows ?? cache.SlotCount];
        starts = new int[rows ?? cache.SlotCount];
    }


    public KvCache Cache { get; }

    /// <summary>Makes batch row <paramref name="row"/> the sequence in <paramref name="slot"/>, its first new token at <paramref name="start"/>.</summary>
    public void Set(int row, int slot, int start)
    {
        if ((uint)slot >= (uint)Cache.SlotCount) throw new ArgumentException($"slot {slot} is outside [0, {Cache.SlotCount})", nameof(slot));
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        slots[row] = slot;
        starts[row] = start;
    }

    /// <summary>The position of each batch row's first new token, [rows] (the first batch entries are used).</summary>
    internal int[] Starts => starts;

    /// <summary>
    /// Layer <paramref name="layer"/>'s attention over the cache: appends k and v, then each query of q attends
    /// to its own sequence up to its position (the last <paramref name="slidingWindow"/> positions when above 0).
    /// q [batch, tokens, heads·headDim] → [batch, tokens, heads·headDim].
    /// </summary>
    internal Tensor Attend(Tape tape, int layer, Tensor q, Tensor k, Tensor v, int heads, int kvHeads, int slidingWindow = 0) =>
        tape.CachedAttention(q, k, v, Cache.Keys(layer), Cache.Values(layer), slots, starts, heads, kvHeads, slidingWindow); // [batch, tokens, heads·headDim]
}
