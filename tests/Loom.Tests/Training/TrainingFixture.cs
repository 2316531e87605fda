using System.Text;
using Loom.Text;

namespace Loom.Tests.Training;

/// <summary>Tests that change the console or the file hook run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialTrainingCollection
{
    public const string Name = "serial training";
}

internal static class TrainingData
{
    /// <summary>A deterministic character corpus with learnable structure (a few words in random order).</summary>
    public static string Text(int characters, int seed = 1)
    {
        string[] words = ["the", "king", "and", "queen", "of", "rome", "shall", "speak", "now", "to", "thee", "my", "lord"];
        var random = new Random(seed);
        var text = new StringBuilder();
        while (text.Length < characters)
        {
            text.Append(words[random.Next(words.Length)]);
            text.Append(random.Next(8) == 0 ? ".\n" : " ");
        }
        return text.ToString();
    }

    /// <summary>Token shards (char tokenizer) of <see cref="Text"/> under <paramref name="root"/>; returns the folder.</summary>
    public static string Prepare(string root, int characters = 20_000)
    {
        string corpus = Path.Combine(root, "corpus.txt");
        File.WriteAllText(corpus, Text(characters));
        string data = Path.Combine(root, "data");
        CorpusPreparer.Prepare(new PrepareOptions(corpus, "char", data));
        return data;
    }
}
