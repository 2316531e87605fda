using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Retrieval;

namespace Loom.Tests.Server;

/// <summary>
/// One RAG implementation: for the same question, model and index, `loom serve`'s NAME+rag alias (over HTTP, plain and
/// streamed) and `loom ask` give the same answer and the same sources.
/// </summary>
public class OneRagPipelineTests
{
    const string Question = "how is the lazy dog today?";
    const int AnswerTokens = 24;

    static SourceDocument Document(string id, string text) =>
        new(id, id, "text", text, new Dictionary<string, string>(), new Dictionary<string, string>());

    [Fact]
    public async Task ServerAndAskGiveTheSameGroundedAnswerAndSources()
    {
        var (model, tokenizer) = ServerFixture.BpeModel(21, maxSeq: 512);
        string folder = Directory.CreateTempSubdirectory("loom-rag-").FullName;
        try
        {
            Checkpoint.Save(folder, model, tokenizer.Save);
            string index = Path.Combine(folder, "kb");
            // Sources long enough that the prompt must be budgeted to the 512-token context.
            string Long(string sentence) => string.Join(" ", Enumerable.Repeat(sentence, 10));
            using (var built = await RetrievalIndex.OpenAsync(index, Embedders.Hashing, null, create: true, default))
                await new Ingestor(built.Store, built.Embedder).IngestDocumentsAsync(
                [
                    Document("dog", Long("The lazy dog sleeps all day today.")),
                    Document("fox", Long("The quick brown fox jumps over the lazy dog.")),
                    Document("hello", Long("Hello world, how are you today?")),
                ], default);

            using var serve = await ServeProcess.StartAsync("--model", folder, "--port", "0", "--slots", "2", "--threads", "1", "--index", index);
            using var http = new HttpClient { BaseAddress = serve.Address, Timeout = TimeSpan.FromSeconds(120) };
            string name = (string)JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
            JsonObject Request(bool stream) => new()
            {
                ["model"] = name + "+rag",
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Question }),
                ["temperature"] = 0,
                ["max_tokens"] = AnswerTokens,
                ["stream"] = stream,
            };

            using var plain = await http.PostAsJsonAsync("/v1/chat/completions", Request(stream: false));
            var body = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!;
            Assert.True(plain.IsSuccessStatusCode, body.ToJsonString());
            string answer = (string)body["choices"]![0]!["message"]!["content"]!;
            Assert.NotEmpty(answer);
            var sources = body["sources"]!.AsArray();
            Assert.NotEmpty(sources);
            Assert.Contains(sources, s => ((string)s!["text"]!).EndsWith('…')); // budgeted: shortened to fit

            // Streamed, the same text arrives in pieces and the last chunk carries the same sources.
            using var streamed = await http.PostAsJsonAsync("/v1/chat/completions", Request(stream: true));
            var text = new StringBuilder();
            JsonNode? streamedSources = null;
            foreach (string line in (await streamed.Content.ReadAsStringAsync()).Split('\n'))
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
                var chunk = JsonNode.Parse(line["data: ".Length..])!;
                text.Append((string?)chunk["choices"]![0]!["delta"]!["content"]);
                streamedSources ??= chunk["sources"];
            }
            Assert.Equal(answer, text.ToString());
            Assert.Equal(sources.ToJsonString(), streamedSources?.ToJsonString());

            // What `loom ask` prints for the server's answer: the answer, then the cited sources (or all, when none is cited).
            var cited = sources.Where(s => (bool)s!["cited"]!).ToList();
            var expected = new StringBuilder().Append(answer).Append('\n')
                .Append(cited.Count > 0 ? "Sources:" : "Sources given to the model (none cited):").Append('\n');
            foreach (var source in cited.Count > 0 ? cited : [.. sources])
                expected.Append('[').Append((int)source!["number"]!).Append("] ").Append((string)source["source"]!)
                    .Append((string)source["section"]! is { Length: > 0 } section ? " > " + section : "").Append('\n');

            var (exit, output, error) = CliRun.Run("ask", "--index", index, "--model", folder, "--max-tokens", AnswerTokens.ToString(), Question);
            Assert.True(exit == 0, error);
            Assert.Equal(expected.ToString(), output.ReplaceLineEndings("\n"));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }
}
