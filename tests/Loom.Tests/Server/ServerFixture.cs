using Loom.Models;
using Loom.Retrieval;
using Loom.Server;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Loom.Tests.Server;

/// <summary>A tiny random model with a byte-level BPE vocabulary (chat markers are special tokens), served on a free loopback port.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ModelName = "loom-test";
    public const string ApiKey = "test-key";
    public const long MaxRequestBytes = 64 * 1024;

    WebApplication? app;

    public LoomModel Model { get; private set; } = null!;
    public MiniLmEmbeddingGenerator Embedder { get; } = new();
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>A tokenizer and a random model over it: the generated text is gibberish, but deterministic under greedy decoding.</summary>
    internal static (Transformer Model, ITokenizer Tokenizer) BpeModel(int seed, int maxSeq = 160)
    {
        var tokenizer = BpeTrainer.Train(["the quick brown fox jumps over the lazy dog. hello world, how are you today?"], 300);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = maxSeq };
        return (TestModels.Random(config, seed), tokenizer);
    }

    public async Task InitializeAsync()
    {
        var (transformer, tokenizer) = BpeModel(5);
        Model = LoomModel.Create(ModelName, transformer, tokenizer, new LoomModelOptions { Slots = 16 });
        var served = new ServedModel(Model.Engine) { Embeddings = Embedder };
        app = LoomServer.Build(served, new ServerOptions { Port = 0, ApiKeys = [ApiKey], MaxRequestBytes = MaxRequestBytes, MaxTokensLimit = 64 });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
    }

    public async Task DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
        await Model.DisposeAsync();
        Embedder.Dispose();
    }
}
