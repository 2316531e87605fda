using Loom.Text;
using HfTokenizer = Tokenizers.DotNet.Tokenizer;

namespace Loom.Tests.Text;

/// <summary>Loads Loom's tokenizer.json into Hugging Face's own tokenizers library (Rust, through Tokenizers.DotNet).</summary>
public class HuggingFaceTokenizerTests(ShakespeareTokenizers shakespeare) : IClassFixture<ShakespeareTokenizers>
{
    [Fact]
    public void ByteLevelBpeGivesTheSameIdsAsHuggingFace()
    {
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            shakespeare.Bpe4096.Save(directory);
            var reference = new HfTokenizer(vocabPath: Path.Combine(directory, Tokenizer.FileName));
            foreach (var line in shakespeare.RandomLines(1000, seed: 17))
            {
                Assert.Equal(reference.Encode(line).Select(id => (int)id), shakespeare.Bpe4096.Encode(line));
            }
            // Hugging Face parses added tokens in text, as Loom does when special tokens are allowed.
            var chat = $"{SpecialTokens.User}Where is the king?{SpecialTokens.End}{SpecialTokens.Assistant}In the tower.{SpecialTokens.EndOfText}";
            Assert.Equal(reference.Encode(chat).Select(id => (int)id), shakespeare.Bpe4096.Encode(chat, allowSpecialTokens: true));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void CharTokenizerGivesTheSameIdsAsHuggingFace()
    {
        var tokenizer = CharTokenizer.Train([shakespeare.Text]);
        var directory = TestData.NewTemporaryDirectory();
        try
        {
            tokenizer.Save(directory);
            var reference = new HfTokenizer(vocabPath: Path.Combine(directory, Tokenizer.FileName));
            foreach (var line in shakespeare.RandomLines(1000, seed: 19))
            {
                var ids = tokenizer.Encode(line);
                Assert.Equal(reference.Encode(line).Select(id => (int)id), ids);
                Assert.Equal(line, reference.Decode([.. ids.Select(id => (uint)id)]));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
