using Loom.Retrieval;
using Loom.Server;
using Loom.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Loom.Tests.Server;

/// <summary>
/// A tiny random model with room for tools and schemas in its prompt (a 1024-token context), served with MiniLM embeddings
/// and no API key on a free loopback port: what the client acceptance tests talk to.
/// </summary>
public sealed class ClientFixture : IAsyncLifetime
{
    public const string ModelName = "loom-test";
    public const string ApiKey = "test-key";

    WebApplication? app;

    public LoomModel Model { get; private set; } = null!;
    public MiniLmEmbeddingGenerator Embedder { get; } = new();
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var (transformer, tokenizer) = ServerFixture.BpeModel(11, maxSeq: 1024);
        Model = LoomModel.Create(ModelName, transformer, tokenizer, new LoomModelOptions { Slots = 8 });
        app = LoomServer.Build(new ServedModel(Model.Engine) { Embeddings = Embedder },
            new ServerOptions { Port = 0, ApiKeys = [ApiKey], MaxTokensLimit = 256 });
        await app.StartAsync();
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public async Task DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
        await Model.DisposeAsync();
        Embedder.Dispose();
    }
}
