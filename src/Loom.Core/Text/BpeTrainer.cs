using System.Buffers;
using System.Runtime.InteropServices;

namespace Loom.Text;

/// <summary>Options for <see cref="BpeTrainer"/>.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>Special tokens appended after the merges, in id order; null means <see cref="SpecialTokens.Default"/>.</summary>
    public IReadOnlyList<string>? SpecialTokens { get; init; }

    /// <summary>A pair seen fewer times than this is never merged.</summary>
    public int MinPairCount { get; init; } = 2;
}

/// <summary>
/// Learns a byte-level BPE vocabulary: pre-tokenizes the corpus with GPT-2's regex and counts each
/// distinct piece once, then repeatedly merges the most frequent adjacent pair (ties: the smaller
/// left id, then the smaller right id), updating pair counts only in the pieces that contain the pair.
/// Vocabulary = 256 byte tokens (id = byte value) + merged tokens + special tokens.
/// </summary>
public sealed class BpeTrainer
{
    private readonly Dictionary<string, long> pieceCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> pieceLookup;

    public BpeTrainer()
    {
        pieceLookup = pieceCounts.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Characters added so far.</summary>
    public long CharacterCount { get; private set; }

    /// <summary>Counts the pre-tokenized pieces of a stretch of text (call once per document or chunk).</summary>
    public void Add(ReadOnlySpan<char> text)
    {
        CharacterCount += text.Length;
        foreach (var match in ByteLevel.PreTokenizer().EnumerateMatches(text))
        {
            var piece = text.Slice(match.Index, match.Length);
            ref var count = ref CollectionsMarshal.GetValueRefOrAddDefault(pieceLookup, piece, out _);
            count++;
        }
    }

    /// <summary>Trains on a whole sequence of texts.</summary>
    public static ByteLevelBpeTokenizer Train(IEnumerable<string> texts, int vocabSize, BpeTrainerOptions? options = null, CancellationToken cancellationToken = default)
    {
        var trainer = new BpeTrainer();
        foreach (var text in texts)
        {
            cancellationToken.ThrowIfCancellationRequested();
            trainer.Add(text);
        }
        return trainer.Build(vocabSize, options, cancellationToken);
    }

    /// <summary>Learns merges until the vocabulary (special tokens included) has <paramref name="vocabSize"/> ids, or no pair is frequent enough.</summary>
    public ByteLevelBpeTokenizer Build(int vocabSize, BpeTrainerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new BpeTrainerOptions();
        var specials = options.SpecialTokens ?? SpecialTokens.Default;
        var minimum = 256 + specials.Count;
        if (vocabSize < minimum)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabulary size {vocabSize} is below {minimum} (256 bytes + {specials.Count} special tokens)");
        }

        // Pieces as byte-id sequences (byte b has id b), with their counts.
        var words = new List<int[]>(pieceCounts.Count);
        var lengths = new List<int>(pieceCounts.Count);
        var counts = new List<long>(pieceCounts.Count);
        foreach (var (piece, count) in pieceCounts)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(ByteLevel.MaxByteCount(piece.Length));
            var byteCount = ByteLevel.EncodeText(piece, buffer);
            if (byteCount >= 2)
            {
                var symbols = new int[byteCount];
                for (var i = 0; i < byteCount; i++)
                {
                    symbols[i] = buffer[i];
                }
                words.Add(symbols);
                lengths.Add(byteCount);
                counts.Add(count);
            }
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (var w = 0; w < words.Count; w++)
        {
            var symbols = words[w];
            for (var i = 0; i + 1 < lengths[w]; i++)
            {
                var key = ByteLevelBpeTokenizer.PairKey(symbols[i], symbols[i + 1]);
                CollectionsMarshal.GetValueRefOrAddDefault(pairCounts, key, out _) += counts[w];
                GetWords(key).Add(w);
            }
        }
        // Max-heap by count through the priority (-count, pair): ties go to the smaller pair.
        var heap = new PriorityQueue<long, (long NegativeCount, long Pair)>();
        foreach (var (key, count) in pairCounts)
        {
            heap.Enqueue(key, (-count, key));
        }

        var tokenBytes = new List<byte[]>(vocabSize);
        var tokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var b = 0; b < 256; b++)
        {
            tokenBytes.Add([(byte)b]);
            tokenIds[ByteLevel.ByteToChar((byte)b).ToString()] = b;
        }
        var merges = new List<(string Left, string Right)>();
        var deltas = new Dictionary<long, long>();
        var targetTokens = vocabSize - specials.Count;
        while (tokenBytes.Count < targetTokens && heap.TryDequeue(out var pair, out var priority))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var current = pairCounts.GetValueOrDefault(pair);
            if (current != -priority.NegativeCount)
            {
                if (current > 0 && current < -priority.NegativeCount)
                {
                    heap.Enqueue(pair, (-current, pair));
                }
                continue;
            }
            if (current < options.MinPairCount)
            {
                break;
            }
            var left = (int)(pair >> 32);
            var right = (int)(uint)pair;
            var leftText = ByteLevel.BytesToTokenString(tokenBytes[left]);
            var rightText = ByteLevel.BytesToTokenString(tokenBytes[right]);
            var mergedText = leftText + rightText;
            if (!tokenIds.TryGetValue(mergedText, out var merged))
            {
                merged = tokenBytes.Count;
                tokenBytes.Add([.. tokenBytes[left], .. tokenBytes[right]]);
                tokenIds[mergedText] = merged;
            }
            merges.Add((leftText, rightText));

            deltas.Clear();
            foreach (var w in pairWords[pair])
            {
                var symbols = words[w];
                var length = lengths[w];
                var count = counts[w];
                var found = false;
                for (var i = 0; i + 1 < length; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        found = true;
                        break;
                    }
                }
                if (!found)
                {
                    continue;
                }
                for (var i = 0; i + 1 < length; i++)
                {
                    CollectionsMarshal.GetValueRefOrAddDefault(deltas, ByteLevelBpeTokenizer.PairKey(symbols[i], symbols[i + 1]), out _) -= count;
                }
                var write = 0;
                for (var read = 0; read < length; read++)
                {
                    if (read + 1 < length && symbols[read] == left && symbols[read + 1] == right)
                    {
                        symbols[write++] = merged;
                        read++;
                    }
                    else
                    {
                        symbols[write++] = symbols[read];
                    }
                }
                lengths[w] = write;
                for (var i = 0; i + 1 < write; i++)
                {
                    var key = ByteLevelBpeTokenizer.PairKey(symbols[i], symbols[i + 1]);
                    CollectionsMarshal.GetValueRefOrAddDefault(deltas, key, out _) += count;
                    if (symbols[i] == merged || symbols[i + 1] == merged)
                    {
                        GetWords(key).Add(w);
                    }
                }
            }
            pairWords.Remove(pair);
            foreach (var (key, delta) in deltas)
            {
                if (delta == 0)
                {
                    continue;
                }
                ref var count = ref CollectionsMarshal.GetValueRefOrAddDefault(pairCounts, key, out _);
                count += delta;
                if (count <= 0)
                {
                    pairCounts.Remove(key);
                    pairWords.Remove(key);
                }
                else if (delta > 0)
                {
                    heap.Enqueue(key, (-count, key));
                }
            }
        }

        var specialIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in specials)
        {
            specialIds[token] = tokenBytes.Count + specialIds.Count;
        }
        return new ByteLevelBpeTokenizer(tokenIds, merges, specialIds);

        HashSet<int> GetWords(long key)
        {
            ref var set = ref CollectionsMarshal.GetValueRefOrAddDefault(pairWords, key, out var exists);
            if (!exists)
            {
                set = [];
            }
            return set!;
        }
    }
}
