using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace Loom.Text;

/// <summary>
/// GPT-2-style byte-level BPE: text is split by the GPT-2 pre-tokenizer regex (see <see cref="CodePointRegex"/>), each piece is encoded as
/// bytes (WTF-8, so every .NET string round-trips), and merges are applied lowest rank first, leftmost
/// first among equal ranks (as Hugging Face tokenizers and Microsoft.ML.Tokenizers do).
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private const int CacheLimit = 200_000;
    private const int CacheableLength = 64;

    // GPT-2's pattern with Oniguruma's code-point semantics, as Hugging Face runs it.
    internal static readonly CodePointRegex PreTokenizer = new(ByteLevel.PreTokenizer());

    private readonly string[] idToToken;
    private readonly byte[]?[] idToBytes; // null for special tokens
    private readonly bool[] special;
    private readonly Dictionary<string, int> tokenToId;
    private readonly int[] byteToId = new int[256];
    private readonly BpeMerges mergeTable;
    private readonly (int Left, int Right)[] merges;
    private readonly SpecialTokenSplitter specialSplitter;
    private readonly ConcurrentDictionary<string, int[]> cache = new();
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> cacheLookup;

    /// <summary>
    /// Builds a tokenizer from a vocabulary (token spelled in the byte-level alphabet, id), merges (pairs
    /// of tokens, in rank order) and special tokens (content, id). Every byte must have a token.
    /// </summary>
    public ByteLevelBpeTokenizer(
        IReadOnlyDictionary<string, int> vocabulary,
        IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyDictionary<string, int> specialTokens)
    {
        // Ids are 0..size-1 with no gaps, so an id at or past the token count is an error, found before the tables are allocated.
        var largest = Math.Max(vocabulary.Count == 0 ? -1L : vocabulary.Values.Max(), specialTokens.Count == 0 ? -1L : specialTokens.Values.Max());
        if (largest >= vocabulary.Count + specialTokens.Count)
        {
            throw new InvalidDataException($"vocabulary: id {largest} is beyond the {vocabulary.Count + specialTokens.Count} tokens (ids must be 0..{vocabulary.Count + specialTokens.Count - 1} with no gaps)");
        }
        var size = (int)largest + 1;
        idToToken = new string[size];
        idToBytes = new byte[size][];
        special = new bool[size];
        tokenToId = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in vocabulary)
        {
            if (id < 0)
            {
                throw new InvalidDataException($"vocabulary: token '{token}' has negative id {id}");
            }
            idToToken[id] = token;
            idToBytes[id] = ByteLevel.TokenStringToBytes(token)
                ?? throw new InvalidDataException($"vocabulary: token '{token}' is not spelled in the byte-level alphabet");
            tokenToId[token] = id;
        }
        foreach (var (token, id) in specialTokens)
        {
            if (id < 0)
            {
                throw new InvalidDataException($"added_tokens: token '{token}' has negative id {id}");
            }
            idToToken[id] = token;
            idToBytes[id] = null;
            special[id] = true;
            tokenToId[token] = id;
        }
        for (var id = 0; id < size; id++)
        {
            if (idToToken[id] is null)
            {
                throw new InvalidDataException($"vocabulary: id {id} has no token (ids must be 0..{size - 1} with no gaps)");
            }
        }
        for (var b = 0; b < 256; b++)
        {
            var token = ByteLevel.ByteToChar((byte)b).ToString();
            if (!vocabulary.TryGetValue(token, out byteToId[b]))
            {
                throw new InvalidDataException($"vocabulary: byte 0x{b:X2} ('{token}') has no token");
            }
        }
        var mergeIds = new (int, int, int)[merges.Count];
        this.merges = new (int, int)[merges.Count];
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocabulary.TryGetValue(left, out var leftId) || !vocabulary.TryGetValue(right, out var rightId)
                || !vocabulary.TryGetValue(left + right, out var mergedId))
            {
                throw new InvalidDataException($"merges[{rank}]: '{left} {right}' uses a token that is not in the vocabulary");
            }
            this.merges[rank] = (leftId, rightId);
            mergeIds[rank] = (leftId, rightId, mergedId);
        }
        mergeTable = new BpeMerges(mergeIds, lastWins: false);
        SpecialTokenIds = new Dictionary<string, int>(specialTokens);
        specialSplitter = new SpecialTokenSplitter(specialTokens);
        cacheLookup = cache.GetAlternateLookup<ReadOnlySpan<char>>();
        BosId = FirstPresent(SpecialTokens.BosNames);
        EosId = FirstPresent(SpecialTokens.EosNames);
        PadId = FirstPresent(SpecialTokens.PadNames);
    }

    public int VocabSize => idToToken.Length;

    public int? BosId { get; }

    public int? EosId { get; }

    public int? PadId { get; }

    /// <summary>Special tokens by content.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokenIds { get; }

    /// <summary>Merges in rank order, as token ids.</summary>
    public IReadOnlyList<(int Left, int Right)> Merges => merges;

    public int[] Encode(string text, bool allowSpecialTokens = false)
    {
        var ids = new List<int>(text.Length / 3 + 1);
        Encode(text, ids, allowSpecialTokens);
        return [.. ids];
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false)
    {
        if (allowSpecialTokens && !specialSplitter.IsEmpty)
        {
            specialSplitter.Split(text, ids, this, static (piece, list, self) => self.EncodeOrdinary(piece, list));
        }
        else
        {
            EncodeOrdinary(text, ids);
        }
    }

    /// <summary>Encodes raw bytes (any bytes, valid UTF-8 or not) as one piece, with no pre-tokenization; <see cref="DecodeBytes"/> gives them back.</summary>
    public int[] EncodeBytes(ReadOnlySpan<byte> bytes)
    {
        var ids = new List<int>(bytes.Length / 3 + 1);
        EncodeWord(bytes, ids);
        return [.. ids];
    }

    /// <summary>The bytes the ids stand for; special tokens contribute their UTF-8 text unless skipped.</summary>
    public byte[] DecodeBytes(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var output = new List<byte>(ids.Length * 4);
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)idToToken.Length)
            {
                output.AddRange("\uFFFD"u8);
            }
            else if (idToBytes[id] is { } bytes)
            {
                output.AddRange(bytes);
            }
            else if (!skipSpecialTokens)
            {
                output.AddRange(Encoding.UTF8.GetBytes(idToToken[id]));
            }
        }
        return [.. output];
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var output = new StringBuilder(ids.Length * 4);
        var pending = new List<byte>(64);
        foreach (var id in ids)
        {
            if ((uint)id < (uint)idToToken.Length && idToBytes[id] is { } bytes)
            {
                pending.AddRange(bytes);
                continue;
            }
            Flush();
            if ((uint)id >= (uint)idToToken.Length)
            {
                output.Append('\uFFFD');
            }
            else if (!skipSpecialTokens)
            {
                output.Append(idToToken[id]);
            }
        }
        Flush();
        return output.ToString();

        void Flush()
        {
            ByteLevel.DecodeText(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending), output);
            pending.Clear();
        }
    }

    public int? TokenToId(string token) => tokenToId.TryGetValue(token, out var id) ? id : null;

    public string? IdToToken(int id) => (uint)id < (uint)idToToken.Length ? idToToken[id] : null;

    public bool IsSpecial(int id) => (uint)id < (uint)special.Length && special[id];

    public byte[] TokenBytes(int id) => (uint)id < (uint)idToBytes.Length && idToBytes[id] is { } bytes ? [.. bytes] : [];

    public void Save(string directory) => TokenizerJson.WriteByteLevelBpe(this, directory);

    /// <summary>The vocabulary in id order, each token spelled in the byte-level alphabet.</summary>
    internal IReadOnlyList<string> Tokens => idToToken;

    private void EncodeOrdinary(ReadOnlySpan<char> text, List<int> ids)
    {
        byte[]? rented = null;
        Span<byte> buffer = stackalloc byte[256];
        var matches = new List<(int Start, int End)>(text.Length / 4 + 1);
        PreTokenizer.Matches(text, matches);
        foreach (var (pieceStart, pieceEnd) in matches)
        {
            var piece = text[pieceStart..pieceEnd];
            if (piece.Length <= CacheableLength && cacheLookup.TryGetValue(piece, out var cached))
            {
                ids.AddRange(cached);
                continue;
            }
            var maxBytes = ByteLevel.MaxByteCount(piece.Length);
            if (maxBytes > buffer.Length)
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
                rented = ArrayPool<byte>.Shared.Rent(maxBytes);
                buffer = rented;
            }
            var byteCount = ByteLevel.EncodeText(piece, buffer);
            var start = ids.Count;
            EncodeWord(buffer[..byteCount], ids);
            if (piece.Length <= CacheableLength)
            {
                if (cache.Count >= CacheLimit)
                {
                    cache.Clear();
                }
                cache.TryAdd(piece.ToString(), ids.GetRange(start, ids.Count - start).ToArray());
            }
        }
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    // Applies merges to one pre-tokenized piece, starting from one symbol per byte.
    private void EncodeWord(ReadOnlySpan<byte> bytes, List<int> ids)
    {
        var symbols = bytes.Length <= 256 ? stackalloc int[bytes.Length] : new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            symbols[i] = byteToId[bytes[i]];
        }
        mergeTable.Apply(symbols, ids);
    }

    private int? FirstPresent(string[] names)
    {
        foreach (var name in names)
        {
            if (SpecialTokenIds.TryGetValue(name, out var id))
            {
                return id;
            }
        }
        return null;
    }

    internal static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;
}
