using Loom.Server;

namespace Loom.Tests.Server;

/// <summary>
/// A tiny random model with room for tools and schemas in its prompt (a 1024-token context), served with MiniLM embeddings
/// on a free loopback port: what the client acceptance tests talk to.
/// </summary>
public sealed class ClientFixture() : LoopbackServerFixture(11, 1024, 8, new ServerOptions { Port = 0, ApiKeys = [ApiKey], MaxTokensLimit = 256 });
