using System.Globalization;
using System.Text;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Bench;

/// <summary>
/// The product-review task the tuning and loop benchmarks share: prompts such as "Write a review of the kettle."
/// (24 products × 5 phrasings, 40 held out), mixed-sentiment synthetic reviews for SFT, and a program judge that
/// scores a response by #positive − #negative words from fixed lists (−4..4, few ties).
/// </summary>
public sealed class ReviewTask
{
    static readonly string[] Products =
    [
        "blender", "lamp", "kettle", "backpack", "headphones", "toaster", "chair", "jacket", "keyboard", "mouse", "tent", "watch",
        "camera", "speaker", "mug", "pillow", "drill", "bicycle", "charger", "umbrella", "desk", "scarf", "printer", "stove",
    ];
    static readonly string[] Openers =
    [
        "Write a review of the {0}.", "Review the {0} you bought.", "How was the {0}?", "Tell me about the {0}.", "Share your thoughts on the {0}.",
    ];
    static readonly string[] Aspects = ["the price", "the design", "the finish", "the delivery", "the packaging", "the size", "the quality", "the color"];
    static readonly string[] Positive = ["great", "excellent", "sturdy", "lovely", "reliable", "superb", "solid", "perfect"];
    static readonly string[] Negative = ["awful", "flimsy", "poor", "terrible", "cheap", "broken", "useless", "disappointing"];
    static readonly string[] Neutral = ["okay", "average", "plain", "normal"];
    static readonly HashSet<string> PositiveWords = [.. Positive, "recommend"];
    static readonly HashSet<string> NegativeWords = [.. Negative, "return"];

    /// <summary>Most tokens a response may have.</summary>
    public const int MaxNewTokens = 40;

    public required List<string> TrainPrompts { get; init; }
    public required List<string> HeldOutPrompts { get; init; }
    /// <summary>3,000 mixed reviews for the train prompts.</summary>
    public required List<SupervisedExample> SftExamples { get; init; }
    /// <summary>A 420-token BPE vocabulary trained on the reviews.</summary>
    public required ITokenizer Tokenizer { get; init; }

    /// <summary>The seeded task: prompt split, SFT corpus and tokenizer (the same every run).</summary>
    public static ReviewTask Create()
    {
        var random = new DeterministicRandom(20261129);
        var allPrompts = Products.SelectMany(p => Openers.Select(o => string.Format(CultureInfo.InvariantCulture, o, p))).ToList();
        var order = TuningLoop.Shuffle(allPrompts.Count, random);
        var heldOut = order.Take(40).Select(i => allPrompts[i]).ToList();
        var trainPrompts = order.Skip(40).Select(i => allPrompts[i]).ToList();
        var examples = new List<SupervisedExample>();
        for (int i = 0; i < 3000; i++)
        {
            string prompt = trainPrompts[(int)random.NextInt64(trainPrompts.Count)];
            examples.Add(new SupervisedExample([new ChatTurn("user", prompt), new ChatTurn("assistant", Review(random))], $"synthetic:{i}"));
        }
        var tokenizer = BpeTrainer.Train(examples.SelectMany(e => e.Turns.Select(turn => turn.Content)), 420);
        return new ReviewTask { TrainPrompts = trainPrompts, HeldOutPrompts = heldOut, SftExamples = examples, Tokenizer = tokenizer };
    }

    /// <summary>The model the benchmarks tune: 2 layers, 64 dims, context 96 (about 134k parameters).</summary>
    public LlamaConfig ModelConfig() => new()
    {
        VocabSize = Tokenizer.VocabSize, Dim = 64, Layers = 2, Heads = 4, KvHeads = 4, HiddenDim = 192, MaxSeq = 96,
        BosId = Tokenizer.BosId ?? -1, EosId = Tokenizer.EosId ?? -1,
    };

    /// <summary>The judge: #positive − #negative words (lower-cased letter runs).</summary>
    public static int Judge(string response)
    {
        int score = 0;
        foreach (var word in Words(response))
        {
            if (PositiveWords.Contains(word)) score++;
            else if (NegativeWords.Contains(word)) score--;
        }
        return score;
    }

    /// <summary>Win rate of a over b, pairing scores by index; ties count half. Also the share of ties.</summary>
    public static (double Win, double Tie) WinRate(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        double wins = 0;
        int ties = 0;
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] > b[i]) wins += 1;
            else if (a[i] == b[i]) { wins += 0.5; ties++; }
        }
        return (wins / a.Count, (double)ties / a.Count);
    }

    static IEnumerable<string> Words(string text)
    {
        var word = new StringBuilder();
        foreach (char c in text.ToLowerInvariant() + " ")
        {
            if (char.IsLetter(c)) word.Append(c);
            else if (word.Length > 0) { yield return word.ToString(); word.Clear(); }
        }
    }

    /// <summary>A mixed-sentiment review: three aspect sentences (positive / negative / neutral with 0.4 / 0.4 / 0.2) and a closing verdict.</summary>
    static string Review(DeterministicRandom random)
    {
        string Pick(string[] list) => list[random.NextInt64(list.Length)];
        var text = new StringBuilder();
        var aspects = TuningLoop.Shuffle(Aspects.Length, random);
        for (int i = 0; i < 3; i++)
        {
            double u = random.NextDouble();
            string adjective = u < 0.4 ? Pick(Positive) : u < 0.8 ? Pick(Negative) : Pick(Neutral);
            text.Append(Aspects[aspects[i]]).Append(" is ").Append(adjective).Append(". ");
        }
        double v = random.NextDouble();
        text.Append(v < 0.4 ? "i would recommend it." : v < 0.8 ? "i would return it." : "i might keep it.");
        return text.ToString();
    }
}
