using Loom.Models;
using Loom.Retrieval;
using Loom.Server;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;
using Microsoft.AspNetCore.Builder;

namespace Loom.Tests.Server;

/// <summary>
/// A tiny random model with a byte-level BPE vocabulary (chat markers are special tokens), served in process on a free
/// loopback port with MiniLM embeddings; the seed, context, slots and server options are the derived fixture's.
/// </summary>
public abstract class LoopbackServerFixture(int seed, int maxSeq, int slots, ServerOptions options) : IAsyncLifetime
{
    public const string ModelName = "loom-test";
    public const string ApiKey = "test-key";

    WebApplication? app;

    public LoomModel Model { get; private set; } = null!;
    public MiniLmEmbeddingGenerator Embedder { get; } = new();
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(seed, maxSeq);
        Model = LoomModel.Create(ModelName, transformer, tokenizer, new LoomModelOptions { Slots = slots });
        app = LoomServer.Build(new ServedModel(Model.Engine) { Embeddings = Embedder }, options);
        await app.StartAsync();
        BaseAddress = LoomServer.Addresses(app)[0];
    }

    public async Task DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
        await Model.DisposeAsync();
        Embedder.Dispose();
    }
}

/// <summary>The server most server tests share: a 160-token context, 16 slots, a 64 KB body limit and 64 tokens at most.</summary>
public sealed class ServerFixture() : LoopbackServerFixture(5, 160, 16,
    new ServerOptions { Port = 0, ApiKeys = [ApiKey], MaxRequestBytes = MaxRequestBytes, MaxTokensLimit = 64 })
{
    public const long MaxRequestBytes = 64 * 1024;

    /// <summary>A tokenizer and a random model over it: the generated text is gibberish, but deterministic under greedy decoding.</summary>
    internal static (Transformer Model, ITokenizer Tokenizer) BpeModel(int seed, int maxSeq = 160)
    {
        var tokenizer = BpeTrainer.Train(["the quick brown fox jumps over the lazy dog. hello world, how are you today?"], 300);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = maxSeq };
        return (TestModels.Random(config, seed), tokenizer);
    }
}
