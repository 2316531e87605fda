using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Server;
using Loom.Serving;
using Loom.Tensors;
using Loom.Text;
using Loom.Training.Tuning;

namespace Loom.Tests.Models;

/// <summary>
/// Acceptance test of the single forward pass: a model with unmerged LoRA adapters on every projection gives
/// the same logits through training, prefill, step-by-step decode, the policy sampler and the server, and the
/// same model after <see cref="Lora.Merge"/> gives them too. Logits are compared by the largest absolute
/// difference divided by the largest absolute reference logit (a relative error), within <see cref="Tolerance"/>.
/// </summary>
public class OneForwardTests
{
    const float Tolerance = 1e-5f;
    const int PromptLength = 20, Continuation = 10;

    // 94 printable ASCII characters and three more: one character per token id, no whitespace to trim.
    static readonly CharTokenizer Tokenizer = CharTokenizer.Train([new string([.. Enumerable.Range(0x21, 94).Select(c => (char)c)]) + "äöü"]);

    static readonly LlamaConfig Config = new()
    {
        VocabSize = 97, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 96, MaxSeq = 32, RopeTheta = 500f, TiedEmbeddings = false,
    };

    /// <summary>A random model with adapters on q, k, v, o, gate, up and down whose B matrices are nonzero (fresh adapters change nothing).</summary>
    static Transformer AdaptedModel(bool merged)
    {
        var model = TestModels.Random(Config, 11, range: 0.3f);
        var random = new Random(12);
        var trainable = Lora.Attach(model, new LoraOptions { Rank = 4, Alpha = 8f, Targets = LoraOptions.AllTargets }, seed: 13);
        foreach (var b in trainable.Where(t => t.Name!.EndsWith("lora_B.weight", StringComparison.Ordinal)))
            for (int i = 0; i < b.Length; i++) b[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
        Assert.Equal(2 * 7 * Config.Layers, trainable.Count);
        if (merged) Lora.Merge(model);
        return model;
    }

    static int[] Prompt => TestModels.Ids(PromptLength, Config.VocabSize, 14);

    /// <summary>(a) The training forward: Transformer.Forward on a recording tape, logits of every position [tokens, vocab].</summary>
    static float[] TrainingLogits(Transformer model, int[] ids)
    {
        var tape = new Tape();
        var logits = model.Forward(tape, ids, 1, ids.Length); // [1, tokens, vocab]
        return logits.Span.ToArray();
    }

    /// <summary>Greedy continuation computed from the training forward, re-run on the whole prefix at each step.</summary>
    static int[] GreedyFromTraining(Transformer model, int[] prompt, int count)
    {
        var ids = prompt.ToList();
        for (int i = 0; i < count; i++)
        {
            var logits = TrainingLogits(model, [.. ids]);
            ids.Add(Sampler.ArgMax(logits.AsSpan((ids.Count - 1) * Config.VocabSize, Config.VocabSize)));
        }
        return [.. ids.Skip(prompt.Length)];
    }

    static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0, largest = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
            largest = Math.Max(largest, Math.Abs(expected[i]));
        }
        Assert.True(largest > 1f, $"{what}: the reference logits are too small to compare ({largest})");
        Assert.True(worst <= Tolerance * largest, $"{what}: max abs diff {worst} is more than {Tolerance} of the largest logit {largest}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PrefillAndDecodeGiveTheTrainingLogits(bool merged)
    {
        int vocab = Config.VocabSize;
        int[] prompt = Prompt;
        var reference = TrainingLogits(AdaptedModel(merged: false), prompt); // [tokens, vocab]
        var model = AdaptedModel(merged);
        if (merged) AssertClose(reference, TrainingLogits(model, prompt), "(f) training forward of the merged model");
        using var decoder = new TransformerDecoder(model, slotCount: 3);
        var logits = new float[2 * vocab];

        // (b) prefill of every prefix.
        for (int length = 1; length <= PromptLength; length++)
        {
            decoder.Prefill(2, prompt.AsSpan(0, length), logits.AsSpan(0, vocab));
            AssertClose(reference.AsSpan((length - 1) * vocab, vocab), logits.AsSpan(0, vocab), $"(b) prefill of {length} tokens");
        }

        // (c) prefill of one token, then one decode step per token.
        decoder.Prefill(0, prompt.AsSpan(0, 1), logits.AsSpan(0, vocab));
        AssertClose(reference.AsSpan(0, vocab), logits.AsSpan(0, vocab), "(c) prefill of one token");
        for (int t = 1; t < PromptLength; t++)
        {
            decoder.Decode([0], [prompt[t]], logits.AsSpan(0, vocab));
            AssertClose(reference.AsSpan(t * vocab, vocab), logits.AsSpan(0, vocab), $"(c) decode at position {t}");
        }

        // (c) two sequences decoded together, each at its own position.
        decoder.Prefill(0, prompt.AsSpan(0, 2), logits.AsSpan(0, vocab));
        decoder.Prefill(1, prompt.AsSpan(0, 7), logits.AsSpan(0, vocab));
        for (int step = 0; step + 7 < PromptLength; step++)
        {
            decoder.Decode([1, 0], [prompt[7 + step], prompt[2 + step]], logits);
            AssertClose(reference.AsSpan((7 + step) * vocab, vocab), logits.AsSpan(0, vocab), $"(c) batched decode at position {7 + step}");
            AssertClose(reference.AsSpan((2 + step) * vocab, vocab), logits.AsSpan(vocab, vocab), $"(c) batched decode at position {2 + step}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ThePolicySamplerContinuesLikeTheTrainingForward(bool merged)
    {
        var reference = AdaptedModel(merged: false);
        int[][] prompts = [Prompt, Prompt[..5], Prompt[3..12]];
        int[][] expected = [.. prompts.Select(p => GreedyFromTraining(reference, p, Continuation))];
        // (d) rows of different prompt lengths, two samples each, decoded together; greedy, so both samples agree.
        var samples = new PolicySampler(AdaptedModel(merged)).Sample(prompts, 2, Continuation, 0f, stopId: -1, new DeterministicRandom(1));
        Assert.Equal(2 * prompts.Length, samples.Length);
        for (int p = 0; p < prompts.Length; p++)
        {
            Assert.Equal(expected[p], samples[2 * p]);
            Assert.Equal(expected[p], samples[2 * p + 1]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TheServerContinuesLikeTheTrainingForward(bool merged)
    {
        Assert.Equal(Config.VocabSize, Tokenizer.VocabSize);
        int[] prompt = Prompt;
        string expected = Tokenizer.Decode(GreedyFromTraining(AdaptedModel(merged: false), prompt, Continuation));
        // (e) the serving engine over the model's TransformerDecoder, as the server and the chat client use it.
        await using var loom = LoomModel.Create("one-forward", AdaptedModel(merged), Tokenizer);
        var text = new System.Text.StringBuilder();
        await foreach (var update in loom.Engine.GenerateAsync(new GenerationRequest { Prompt = Tokenizer.Decode(prompt), MaxTokens = Continuation, Sampling = SamplingOptions.Greedy }))
            text.Append(update.Text);
        Assert.Equal(expected, text.ToString());

        // (e') the same engine behind the HTTP server: /v1/completions at temperature 0.
        await using var app = LoomServer.Build(new ServedModel(loom.Engine), new ServerOptions { Port = 0 });
        await app.StartAsync();
        var address = LoomServer.Addresses(app)[0];
        using var http = new HttpClient { BaseAddress = address };
        var body = new JsonObject { ["model"] = "one-forward", ["prompt"] = Tokenizer.Decode(prompt), ["max_tokens"] = Continuation, ["temperature"] = 0 };
        using var reply = await http.PostAsync("/v1/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        Assert.True(reply.IsSuccessStatusCode, await reply.Content.ReadAsStringAsync());
        var json = JsonNode.Parse(await reply.Content.ReadAsStringAsync())!;
        Assert.Equal(expected, json["choices"]![0]!["text"]!.GetValue<string>());
    }
}
