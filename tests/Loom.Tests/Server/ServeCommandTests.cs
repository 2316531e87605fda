using System.ClientModel;
using Loom.Models;
using Loom.Retrieval;
using OpenAI;
using OpenAI.Chat;

namespace Loom.Tests.Server;

/// <summary>`loom serve` as a user runs it: a separate process on a free loopback port, reached with the OpenAI client.</summary>
public class ServeCommandTests
{
    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task ServesACheckpointFolderOverHttp()
    {
        var (model, tokenizer) = ServerFixture.BpeModel(9);
        string folder = Directory.CreateTempSubdirectory("loom-serve-").FullName;
        Checkpoint.Save(folder, model, tokenizer.Save);
        // A retrieval index built with the hashing embedder: the server embeds with it and names it.
        string index = Path.Combine(folder, "kb");
        using (var built = await RetrievalIndex.OpenAsync(index, Embedders.Hashing, null, create: true, default))
            await new Ingestor(built.Store, built.Embedder).IngestDocumentsAsync([new SourceDocument("leave", "leave", "text", "New employees get 25 days of leave.", new Dictionary<string, string>(), new Dictionary<string, string>())], default);

        using var serve = await ServeProcess.StartAsync("--model", folder, "--port", "0", "--api-key", "k1", "--slots", "4", "--threads", "1", "--index", index);
        Assert.StartsWith("http://127.0.0.1:", serve.Address.ToString());

        var client = new OpenAIClient(new ApiKeyCredential("k1"), new OpenAIClientOptions { Endpoint = new Uri(serve.Address, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });
        var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value.Select(item => item.Id).ToList();
        string name = models[0];
        Assert.Equal([name, name + "+rag", "hashing-256"], models);
        var embedding = (await client.GetEmbeddingClient("hashing-256").GenerateEmbeddingAsync("leave")).Value.ToFloats();
        Assert.Equal(256, embedding.Length);
        var completion = (await client.GetChatClient(name).CompleteChatAsync([new UserChatMessage("hello")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5 })).Value;
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 5);
    }

    [Fact]
    public void AMissingModelFolderIsAOneLineError()
    {
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        int code;
        try { code = Loom.Cli.Program.Main(["serve", "--model", "/nonexistent/model", "--port", "0"]); }
        finally { Console.SetError(saved); }
        Assert.NotEqual(0, code);
        string message = error.ToString().Trim();
        Assert.DoesNotContain('\n', message);
        Assert.Contains("/nonexistent/model", message);
    }
}
