using System.Diagnostics;
using System.Text;
using Loom.Text;
using Xunit.Abstractions;
using MlTokenizers = Microsoft.ML.Tokenizers;

namespace Loom.Tests.Text;

/// <summary>Trains the tinyshakespeare vocabularies once for all tokenizer tests.</summary>
public sealed class ShakespeareTokenizers
{
    public string Text { get; } = File.ReadAllText(TestData.TinyShakespeare);

    public ByteLevelBpeTokenizer Bpe512 { get; }

    public ByteLevelBpeTokenizer Bpe4096 { get; }

    public TimeSpan Train4096Time { get; }

    public ShakespeareTokenizers()
    {
        Bpe512 = BpeTrainer.Train([Text], 512);
        var stopwatch = Stopwatch.StartNew();
        Bpe4096 = BpeTrainer.Train([Text], 4096);
        Train4096Time = stopwatch.Elapsed;
    }

    public IReadOnlyList<string> RandomLines(int count, int seed)
    {
        var lines = Text.Split('\n');
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => lines[random.Next(lines.Length)] + (random.Next(2) == 0 ? "\n" : ""))];
    }
}

public class TokenizerTests(ShakespeareTokenizers shakespeare, ITestOutputHelper output) : IClassFixture<ShakespeareTokenizers>
{
    [Fact]
    public void ByteAlphabetIsGpt2s()
    {
        Assert.Equal('Ġ', ByteLevel.ByteToChar((byte)' '));
        Assert.Equal('Ċ', ByteLevel.ByteToChar((byte)'\n'));
        Assert.Equal('A', ByteLevel.ByteToChar((byte)'A'));
        Assert.Equal('ÿ', ByteLevel.ByteToChar(0xFF));
        var all = Enumerable.Range(0, 256).Select(b => ByteLevel.ByteToChar((byte)b)).ToHashSet();
        Assert.Equal(256, all.Count);
    }

    [Fact]
    public void TextEncodingIsUtf8ForValidTextAndKeepsLoneSurrogates()
    {
        var random = new Random(1);
        for (var trial = 0; trial < 500; trial++)
        {
            var text = RandomString(random, random.Next(0, 40), allowInvalid: trial % 2 == 0);
            var bytes = new byte[ByteLevel.MaxByteCount(text.Length)];
            var count = ByteLevel.EncodeText(text, bytes);
            if (trial % 2 == 1)
            {
                Assert.Equal(Encoding.UTF8.GetBytes(text), bytes[..count]);
            }
            var decoded = new StringBuilder();
            ByteLevel.DecodeText(bytes.AsSpan(0, count), decoded);
            Assert.Equal(text, decoded.ToString());
        }
    }

    [Fact]
    public void TrainingMatchesANaiveReferenceTrainer()
    {
        var text = shakespeare.Text[..20_000];
        var fast = BpeTrainer.Train([text], 256 + 120 + SpecialTokens.Default.Count);
        var expected = NaiveTrain(text, 120);
        Assert.Equal(expected.Count, fast.Merges.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i], (fast.IdToToken(fast.Merges[i].Left), fast.IdToToken(fast.Merges[i].Right)));
        }
    }

    [Fact]
    public void EncodingMatchesANaiveReferenceEncoder()
    {
        var tokenizer = shakespeare.Bpe512;
        foreach (var line in shakespeare.RandomLines(200, seed: 3))
        {
            Assert.Equal(NaiveEncode(tokenizer, line), tokenizer.Encode(line));
        }
    }

    [Fact]
    public void VocabularyHasBytesMergesAndSpecialTokens()
    {
        var tokenizer = shakespeare.Bpe4096;
        Assert.Equal(4096, tokenizer.VocabSize);
        Assert.Equal(4096 - 256 - SpecialTokens.Default.Count, tokenizer.Merges.Count);
        Assert.Equal(4096 - SpecialTokens.Default.Count, tokenizer.TokenToId(SpecialTokens.Bos));
        Assert.Equal(tokenizer.BosId + 1, tokenizer.EosId);
        Assert.Equal(tokenizer.TokenToId(SpecialTokens.Pad), tokenizer.PadId);
        Assert.True(tokenizer.IsSpecial(tokenizer.TokenToId(SpecialTokens.Assistant)!.Value));
        Assert.False(tokenizer.IsSpecial(300));
        Assert.Equal(65, tokenizer.TokenToId("A")); // byte b has id b
        output.WriteLine($"BPE vocab 4096 on tinyshakespeare ({shakespeare.Text.Length:N0} chars): trained in {shakespeare.Train4096Time.TotalSeconds:F2} s");
        var ids = tokenizer.Encode(shakespeare.Text[..10_000]);
        Assert.InRange(10_000.0 / ids.Length, 2.5, 6.0);
    }

    [Fact]
    public void AnyStringRoundTrips()
    {
        var random = new Random(7);
        foreach (var tokenizer in new[] { shakespeare.Bpe512, shakespeare.Bpe4096 })
        {
            for (var trial = 0; trial < 300; trial++)
            {
                var text = RandomString(random, random.Next(0, 60), allowInvalid: true);
                Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
            }
            foreach (var line in shakespeare.RandomLines(100, seed: 11))
            {
                Assert.Equal(line, tokenizer.Decode(tokenizer.Encode(line)));
            }
            var special = $"{SpecialTokens.User}Hello{SpecialTokens.End}";
            Assert.Equal(special, tokenizer.Decode(tokenizer.Encode(special)));
            var withSpecial = tokenizer.Encode(special, allowSpecialTokens: true);
            Assert.Equal(tokenizer.TokenToId(SpecialTokens.User), withSpecial[0]);
            Assert.Equal(tokenizer.TokenToId(SpecialTokens.End), withSpecial[^1]);
            Assert.DoesNotContain(withSpecial[1..^1], tokenizer.IsSpecial);
            Assert.Equal(special, tokenizer.Decode(withSpecial));
            Assert.Equal("Hello", tokenizer.Decode(withSpecial, skipSpecialTokens: true));
            Assert.DoesNotContain(tokenizer.Encode(special), tokenizer.IsSpecial);
        }
    }

    [Fact]
    public void ArbitraryBytesRoundTripAndArbitraryIdsDecode()
    {
        var tokenizer = shakespeare.Bpe4096;
        var random = new Random(5);
        for (var trial = 0; trial < 200; trial++)
        {
            var bytes = new byte[random.Next(0, 100)];
            random.NextBytes(bytes);
            Assert.Equal(bytes, tokenizer.DecodeBytes(tokenizer.EncodeBytes(bytes)));
            var ids = Enumerable.Range(0, random.Next(0, 50)).Select(_ => random.Next(-5, tokenizer.VocabSize + 5)).ToArray();
            var text = tokenizer.Decode(ids);
            Assert.NotNull(text);
        }
        Assert.Equal("\uFFFD", tokenizer.Decode([tokenizer.TokenToId(ByteLevel.ByteToChar(0xFF).ToString())!.Value]));
    }

    [Fact]
    public void SaveAndLoadGiveTheSameTokenizer()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            shakespeare.Bpe512.Save(directory);
            Assert.Equal([Tokenizer.FileName], Directory.GetFiles(directory).Select(Path.GetFileName));
            var loaded = Assert.IsType<ByteLevelBpeTokenizer>(Tokenizer.Load(directory));
            Assert.Equal(shakespeare.Bpe512.VocabSize, loaded.VocabSize);
            Assert.Equal(shakespeare.Bpe512.EosId, loaded.EosId);
            for (var id = 0; id < loaded.VocabSize; id++)
            {
                Assert.Equal(shakespeare.Bpe512.IdToToken(id), loaded.IdToToken(id));
            }
            foreach (var line in shakespeare.RandomLines(100, seed: 2))
            {
                Assert.Equal(shakespeare.Bpe512.Encode(line), loaded.Encode(line));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public void MicrosoftMlTokenizersGivesTheSameIds(int vocabSize)
    {
        var tokenizer = vocabSize == 512 ? shakespeare.Bpe512 : shakespeare.Bpe4096;
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            tokenizer.Save(directory);
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory, Tokenizer.FileName)));
            var model = json.RootElement.GetProperty("model");
            var vocabulary = model.GetProperty("vocab").EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.GetInt32())).ToList();
            var merges = model.GetProperty("merges").EnumerateArray().Select(m => m.GetString()!).ToList();
            var reference = MlTokenizers.BpeTokenizer.Create(new MlTokenizers.BpeOptions(vocabulary)
            {
                Merges = merges,
                ByteLevel = true,
                PreTokenizer = new MlTokenizers.RegexPreTokenizer(ByteLevel.PreTokenizer(), null),
            });
            var lines = shakespeare.RandomLines(1000, seed: vocabSize);
            var tokens = 0;
            foreach (var line in lines)
            {
                var expected = reference.EncodeToIds(line);
                Assert.Equal(expected, tokenizer.Encode(line));
                tokens += expected.Count;
            }
            Assert.True(tokens > 1000);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void CharTokenizerMatchesNanoGptShakespeareChar()
    {
        var tokenizer = CharTokenizer.Train([shakespeare.Text]);
        Assert.Equal(65, tokenizer.VocabSize);
        Assert.Equal("\n", tokenizer.IdToToken(0));
        Assert.Equal(" ", tokenizer.IdToToken(1));
        Assert.Equal("z", tokenizer.IdToToken(64));
        Assert.Equal([46, 47, 47, 1, 58, 46, 43, 56, 43], tokenizer.Encode("hii there"));
        Assert.Equal("hii there", tokenizer.Decode(tokenizer.Encode("hii there")));
        Assert.Null(tokenizer.EosId);
        Assert.Throws<ArgumentException>(() => tokenizer.Encode("€"));

        var directory = TestData.NewTemporaryDirectory();
        try
        {
            tokenizer.Save(directory);
            var loaded = Assert.IsType<CharTokenizer>(Tokenizer.Load(directory));
            Assert.Equal(65, loaded.VocabSize);
            var sample = shakespeare.Text[..5000];
            Assert.Equal(tokenizer.Encode(sample), loaded.Encode(sample));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void CharTokenizerKeepsCharactersOutsideTheBasicPlane()
    {
        var tokenizer = CharTokenizer.Train(["a😀b\u00e9"]);
        Assert.Equal(4, tokenizer.VocabSize);
        Assert.Equal("a😀b\u00e9", tokenizer.Decode(tokenizer.Encode("a😀b\u00e9")));
        Assert.Equal(3, tokenizer.TokenToId("😀"));
    }

    [Fact]
    public void LoadRejectsBadFilesWithOneLineErrors()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            var missing = Assert.Throws<FileNotFoundException>(() => Tokenizer.Load(directory));
            Assert.Contains(directory, missing.Message);
            File.WriteAllText(Path.Combine(directory, Tokenizer.FileName), "{ not json");
            var bad = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(directory));
            Assert.Contains(Tokenizer.FileName, bad.Message);
            Assert.DoesNotContain('\n', bad.Message);
            File.WriteAllText(Path.Combine(directory, Tokenizer.FileName), """{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a c"]},"pre_tokenizer":{"type":"ByteLevel"}}""");
            var incomplete = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(directory));
            Assert.Contains("has no token", incomplete.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string RandomString(Random random, int length, bool allowInvalid)
    {
        var builder = new StringBuilder();
        while (builder.Length < length)
        {
            switch (random.Next(8))
            {
                case 0:
                    builder.Append((char)random.Next(0, 128));
                    break;
                case 1:
                    builder.Append(' ');
                    break;
                case 2:
                    builder.Append((char)random.Next(0x80, 0x800));
                    break;
                case 3:
                    builder.Append((char)random.Next(0x800, 0xD800));
                    break;
                case 4:
                    builder.Append(char.ConvertFromUtf32(random.Next(0x10000, 0x110000)));
                    break;
                case 5:
                    if (allowInvalid)
                    {
                        builder.Append((char)random.Next(0xD800, 0xE000));
                    }
                    break;
                case 6:
                    builder.Append("the ");
                    break;
                default:
                    builder.Append((char)random.Next('a', 'z' + 1));
                    break;
            }
        }
        return builder.ToString();
    }

    // Recounts every pair over the pre-tokenized pieces before each merge.
    private static List<(string, string)> NaiveTrain(string text, int mergeCount)
    {
        var words = new List<(List<string> Symbols, int Count)>();
        foreach (var group in ByteLevel.PreTokenizer().Matches(text).GroupBy(m => m.Value))
        {
            words.Add(([.. Encoding.UTF8.GetBytes(group.Key).Select(b => ByteLevel.ByteToChar(b).ToString())], group.Count()));
        }
        var ids = new Dictionary<string, int>();
        for (var b = 0; b < 256; b++)
        {
            ids[ByteLevel.ByteToChar((byte)b).ToString()] = b;
        }
        var merges = new List<(string, string)>();
        for (var step = 0; step < mergeCount; step++)
        {
            var counts = new Dictionary<(string, string), long>();
            foreach (var (symbols, count) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    counts[(symbols[i], symbols[i + 1])] = counts.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
                }
            }
            var best = counts.OrderByDescending(p => p.Value).ThenBy(p => ids[p.Key.Item1]).ThenBy(p => ids[p.Key.Item2]).First().Key;
            merges.Add(best);
            ids.TryAdd(best.Item1 + best.Item2, ids.Count);
            foreach (var (symbols, _) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = best.Item1 + best.Item2;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }
        return merges;
    }

    // GPT-2's encoder: merge every occurrence of the lowest-ranked pair, repeat.
    private static int[] NaiveEncode(ByteLevelBpeTokenizer tokenizer, string text)
    {
        var ranks = new Dictionary<(int, int), int>();
        for (var rank = 0; rank < tokenizer.Merges.Count; rank++)
        {
            ranks.TryAdd(tokenizer.Merges[rank], rank);
        }
        var result = new List<int>();
        foreach (var match in ByteLevel.PreTokenizer().Matches(text).Cast<System.Text.RegularExpressions.Match>())
        {
            var symbols = Encoding.UTF8.GetBytes(match.Value).Select(b => (int)b).ToList();
            while (true)
            {
                var bestRank = int.MaxValue;
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out var rank) && rank < bestRank)
                    {
                        bestRank = rank;
                    }
                }
                if (bestRank == int.MaxValue)
                {
                    break;
                }
                var (left, right) = tokenizer.Merges[bestRank];
                var merged = tokenizer.TokenToId(tokenizer.IdToToken(left) + tokenizer.IdToToken(right))!.Value;
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
            result.AddRange(symbols);
        }
        return [.. result];
    }
}

public class IncrementalDecoderTests(ShakespeareTokenizers shakespeare) : IClassFixture<ShakespeareTokenizers>
{
    [Theory]
    [InlineData("plain ascii text, with punctuation!\n")]
    [InlineData("héllo wörld — 日本語のテキスト 😀👍🏽 done")]
    [InlineData("<|user|>hi<|end|>")]
    public void PiecesJoinToTheFullDecode(string text)
    {
        foreach (var tokenizer in new ITokenizer[] { shakespeare.Bpe512, CharTokenizer.Train([text]) })
        {
            var ids = tokenizer.Encode(text, allowSpecialTokens: true);
            var decoder = new IncrementalDecoder(tokenizer);
            var pieces = ids.Select(decoder.Append).ToList();
            pieces.Add(decoder.Flush());
            Assert.Equal(tokenizer.Decode(ids), string.Concat(pieces));
            Assert.DoesNotContain(pieces, piece => piece.Contains('\uFFFD'));
        }
    }
}
