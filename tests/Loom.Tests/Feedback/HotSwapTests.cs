using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Server;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tests.Server;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Feedback;

/// <summary>
/// The server switches model versions while it serves: two tiny checkpoints with different seeds (so their greedy
/// answers differ) in a <see cref="ModelRegistry"/>; HOME/current moves from v0 to v1 under load.
/// </summary>
public sealed class HotSwapTests : IDisposable
{
    const string Prompt = "hello world, how are you?";
    const int MaxTokens = 8;

    readonly string home = Directory.CreateTempSubdirectory("loom-hot-swap-").FullName;
    readonly ModelRegistry registry;

    public HotSwapTests()
    {
        registry = new ModelRegistry(Path.Combine(home, "assistant"));
        foreach (var (version, seed) in new[] { ("v0", 11), ("v1", 12) })
        {
            var (model, tokenizer) = ServerFixture.BpeModel(seed);
            Checkpoint.Save(registry.CheckpointOf(version), model, tokenizer.Save);
        }
        registry.SetCurrent("v0");
    }

    public void Dispose() => Directory.Delete(home, recursive: true);

    /// <summary>The greedy answer of one version, asked of its checkpoint directly.</summary>
    async Task<string> Greedy(string version)
    {
        await using var model = LoomModel.Load(registry.CheckpointOf(version));
        using var chat = model.AsIChatClient();
        return (await chat.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = MaxTokens })).Text;
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task EveryRequestDuringASwapCompletesOnExactlyOneVersionAndAnswersAsThatVersionDoes()
    {
        var expected = new Dictionary<string, string> { ["v0"] = await Greedy("v0"), ["v1"] = await Greedy("v1") };
        Assert.NotEqual(expected["v0"], expected["v1"]);

        await using var versions = await ServedVersions.StartAsync(registry, new ServedVersionsOptions { Model = new LoomModelOptions { Slots = 4 } });
        Assert.Equal(("assistant", "v0"), (versions.ModelName, versions.Current));
        await using var app = LoomServer.Build(new ServedModel(versions), new ServerOptions { Port = 0 });
        await app.StartAsync();
        using var client = ChatHttp.Client(LoomServer.Addresses(app)[0], null);

        var answered = new ConcurrentBag<(string Version, string Text, string? Finish)>();
        var swapped = new TaskCompletionSource();
        versions.Swapped += _ => swapped.TrySetResult();
        using var stop = new CancellationTokenSource();
        async Task Client(int number)
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                var body = ChatHttp.Greedy("assistant", Prompt, MaxTokens, stream: (number + i) % 2 == 0);
                if ((bool)body["stream"]!)
                {
                    var (chunks, response) = await ChatHttp.StreamAsync(client, body);
                    // All chunks of one stream name one version, the one in its header.
                    string version = Assert.Single(chunks.Select(c => (string)c["system_fingerprint"]!).Distinct());
                    Assert.Equal(version, response.Headers.GetValues(LoomServer.VersionHeader).Single());
                    var (text, finish) = ChatHttp.Answer(chunks);
                    answered.Add((version, text, finish));
                }
                else
                {
                    var (status, json, response) = await ChatHttp.PostAsync(client, "/v1/chat/completions", body);
                    Assert.Equal(HttpStatusCode.OK, status);
                    string version = (string)json["system_fingerprint"]!;
                    Assert.Equal(version, response.Headers.GetValues(LoomServer.VersionHeader).Single());
                    Assert.Equal("assistant", (string?)json["model"]);
                    var (text, finish) = ChatHttp.Answer(json);
                    answered.Add((version, text, finish));
                }
            }
        }
        var clients = Enumerable.Range(0, 4).Select(n => Task.Run(() => Client(n))).ToArray();
        // Swap while the clients are busy: after some answers from v0, and on until some came from v1.
        async Task Answers(string version, int count)
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            while (answered.Count(a => a.Version == version) < count && !clients.Any(c => c.IsFaulted))
                await Task.Delay(50, limit.Token);
        }
        await Answers("v0", 8);
        registry.SetCurrent("v1");
        await swapped.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await Answers("v1", 8);
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        Assert.Equal("v1", versions.Current);
        Assert.Equal(1, versions.Swaps);
        Assert.Equal(["v0", "v1"], answered.Select(a => a.Version).Distinct().Order());
        Assert.All(answered, a =>
        {
            Assert.NotNull(a.Finish);
            Assert.Equal(expected[a.Version], a.Text);
        });
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.Equal("v1", (string?)health["version"]);
        Assert.Equal("assistant", (string?)health["model"]);
    }

    [Fact]
    public async Task ARequestKeepsItsVersionAfterTheSwapAndABrokenVersionLeavesTheOldOneServing()
    {
        string v0 = await Greedy("v0");
        await using var versions = await ServedVersions.StartAsync(registry, new ServedVersionsOptions { Watch = false });
        var lease = versions.Acquire();
        registry.SetCurrent("v1");
        Assert.True(await versions.RefreshAsync());
        Assert.Equal("v1", versions.Current);
        // The lease still holds v0: its engine answers as v0 after the switch, and only then is retired.
        Assert.Equal("v0", lease.Version);
        using (var chat = lease.Generator.AsIChatClient())
            Assert.Equal(v0, (await chat.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = MaxTokens })).Text);
        lease.Dispose();

        Directory.CreateDirectory(registry.CheckpointOf("broken"));
        File.WriteAllText(Path.Combine(registry.CheckpointOf("broken"), Checkpoint.ConfigFileName), "{ not json");
        registry.SetCurrent("broken");
        Assert.False(await versions.RefreshAsync());
        Assert.Equal(("v1", 1L), (versions.Current, versions.LoadFailures));
        Assert.False(await versions.RefreshAsync());
        Assert.Equal(1, versions.LoadFailures);
        using var current = versions.Acquire();
        Assert.Equal("v1", current.Version);
    }
}
