using Loom.Evaluation;
using Loom.Models;
using Loom.Serving;
using Loom.Text;

namespace Loom.Tests.Evaluation;

public class ChatJudgeTests
{
    const string Context = "String.Trim removes all leading and trailing white-space characters from the current string. It returns a new string.";

    [Fact]
    public async Task FaithfulnessCountsTheSentencesTheJudgeFindsSupported()
    {
        using var judge = new OverlapJudgeChatClient();
        Assert.Equal(1.0, await ChatJudge.FaithfulnessAsync(judge, Context, "Trim removes leading and trailing white-space characters. It returns a new string."));
        Assert.Equal(0.5, await ChatJudge.FaithfulnessAsync(judge, Context, "Trim removes leading and trailing white-space characters. It also encrypts the disk quickly."));
        Assert.Equal(0.0, await ChatJudge.FaithfulnessAsync(judge, Context, "Bananas grow on tropical plants!"));
        Assert.Equal(["One.", "Two?", "Three"], ChatJudge.Sentences("One. Two?  Three"));
    }

    [Fact]
    public async Task AJudgeWithoutVerdictsScoresZeroNotOne()
    {
        // A real (untrained) Loom model as the judge: whatever it writes, sentences without a parsable verdict are unsupported.
        var tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(32, 95).Select(c => (char)c), '\n'])]);
        var config = new LlamaConfig { VocabSize = tokenizer.VocabSize, Dim = 16, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 32, MaxSeq = 512 };
        await using var model = LoomModel.Create("judge", new Transformer(config, 4), tokenizer);
        double score = await ChatJudge.FaithfulnessAsync(model.AsIChatClient(), "Paris is in France.", "Paris is in France. It has a tower.");
        Assert.Equal(0, score); // greedy and seeded: the untrained model writes no "N: SUPPORTED" line
    }
}
