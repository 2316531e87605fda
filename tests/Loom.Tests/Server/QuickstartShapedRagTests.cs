using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Retrieval;
using Loom.Tests.Models;
using Loom.Text;

namespace Loom.Tests.Server;

/// <summary>
/// `loom ask` and `loom serve`'s NAME+rag answer the quickstart's demo questions ("What does X do?") with a model of the
/// quickstart's shape (context 256, byte-level BPE vocabulary 1024) and a real MiniLM index over .NET doc members: the
/// grounded prompt is budgeted to fit, and the sources given are the ones the question is about.
/// </summary>
public class QuickstartShapedRagTests
{
    [Fact]
    public async Task AskAndServeAnswerTheDemoQuestionsWithinTheContext()
    {
        var members = DotnetDocs.ReadAll().Where(m => m.Text.Length > 80).Take(160).ToList();
        Assert.True(members.Count >= 60, "the .NET SDK's XML docs are needed");
        var tokenizer = BpeTrainer.Train(members.Select(m => m.Title + "\n" + m.Text), 1024);
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 256 };
        var model = TestModels.Random(config, 9);
        string folder = Directory.CreateTempSubdirectory("loom-qs-rag-").FullName;
        try
        {
            Checkpoint.Save(folder, model, tokenizer.Save);
            string index = Path.Combine(folder, "index");
            using (var built = await RetrievalIndex.OpenAsync(index, Embedders.MiniLm, null, create: true, default))
                await new Ingestor(built.Store, built.Embedder).IngestDocumentsAsync(members.Skip(40).Select(m => DotnetDocsReader.ToDocument(m)).ToList(), default);
            var questions = members.Skip(40).Take(2).Select(m => (Question: $"What does {m.Title} do?", m.Id)).ToList();

            foreach (var (question, id) in questions)
            {
                var (exit, output, error) = CliRun.Run("ask", "--index", index, "--model", folder, "--threads", "1", question);
                Assert.True(exit == 0, error);
                Assert.Contains(id, output);
            }

            using var serve = await ServeProcess.StartAsync("--model", folder, "--port", "0", "--threads", "1", "--index", index, "--top", "3");
            using var http = new HttpClient { BaseAddress = serve.Address, Timeout = TimeSpan.FromSeconds(120) };
            string name = (string)JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
            foreach (var (question, id) in questions)
            {
                using var response = await http.PostAsJsonAsync("/v1/chat/completions", new JsonObject
                {
                    ["model"] = name + "+rag",
                    ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
                    ["temperature"] = 0,
                });
                var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
                var sources = body["sources"]!.AsArray();
                Assert.InRange(sources.Count, 1, 3);
                Assert.Contains(sources, s => (string)s!["source"]! == id);
                // the prompt and the answer fit the context
                Assert.True((int)body["usage"]!["total_tokens"]! <= 256, body["usage"]!.ToJsonString());
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }
}
