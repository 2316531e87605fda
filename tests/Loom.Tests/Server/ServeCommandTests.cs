using System.ClientModel;
using System.Diagnostics;
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

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { typeof(Loom.Cli.Program).Assembly.Location, "serve", "--model", folder, "--port", "0", "--api-key", "k1", "--slots", "4", "--threads", "1", "--index", index })
            start.ArgumentList.Add(arg);
        using var process = new Process { StartInfo = start };
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            int at = e.Data?.IndexOf("listening on ", StringComparison.Ordinal) ?? -1;
            if (at >= 0) listening.TrySetResult(e.Data![(at + "listening on ".Length)..].Split(',')[0].Trim());
        };
        process.ErrorDataReceived += (_, e) => { lock (errors) errors.AppendLine(e.Data); };
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("loom serve exited: " + errors));
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            string address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.StartsWith("http://127.0.0.1:", address);

            var client = new OpenAIClient(new ApiKeyCredential("k1"), new OpenAIClientOptions { Endpoint = new Uri(new Uri(address), "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });
            var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value.Select(item => item.Id).ToList();
            string name = models[0];
            Assert.Equal([name, name + "+rag", "hashing-256"], models);
            var embedding = (await client.GetEmbeddingClient("hashing-256").GenerateEmbeddingAsync("leave")).Value.ToFloats();
            Assert.Equal(256, embedding.Length);
            var completion = (await client.GetChatClient(name).CompleteChatAsync([new UserChatMessage("hello")],
                new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5 })).Value;
            Assert.InRange(completion.Usage.OutputTokenCount, 1, 5);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
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
