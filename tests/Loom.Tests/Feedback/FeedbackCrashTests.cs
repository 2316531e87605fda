using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Server;
using Loom.Serving.Feedback;
using Loom.Tests.Server;

namespace Loom.Tests.Feedback;

/// <summary>kill -9 during a burst of feedback: every judgement the server acknowledged is in the database afterwards.</summary>
public class FeedbackCrashTests
{
    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public async Task KillNineMidBurstLosesNoAcknowledgedJudgement()
    {
        string folder = Directory.CreateTempSubdirectory("loom-feedback-crash-").FullName;
        try
        {
            var (model, tokenizer) = ServerFixture.BpeModel(9);
            string checkpoint = Path.Combine(folder, "model");
            Checkpoint.Save(checkpoint, model, tokenizer.Save);
            string database = Path.Combine(folder, "feedback.db");
            var serve = await ServeProcess.StartAsync("--model", checkpoint, "--feedback", database, "--port", "0", "--slots", "4", "--threads", "1");
            var acknowledged = new ConcurrentDictionary<long, (string ResponseId, string User)>();
            int attempted = 0, killed = 0;
            const int Responses = 4, Users = 400, KillAfter = 60;
            try
            {
                using var client = ChatHttp.Client(serve.Address, null);
                var ids = new List<string>();
                for (int i = 0; i < Responses; i++)
                {
                    var (status, body, _) = await ChatHttp.PostAsync(client, "/v1/chat/completions", ChatHttp.Greedy("model", $"hello {i}", 4));
                    Assert.Equal(HttpStatusCode.OK, status);
                    ids.Add((string)body["id"]!);
                }
                var work = new ConcurrentQueue<(string ResponseId, string User)>(
                    Enumerable.Range(0, Users).SelectMany(u => ids.Select(id => (id, $"user-{u}"))));
                async Task Worker()
                {
                    while (Volatile.Read(ref killed) == 0 && work.TryDequeue(out var next))
                    {
                        Interlocked.Increment(ref attempted);
                        HttpResponseMessage response;
                        try
                        {
                            response = await client.PostAsync(FeedbackEndpoint.Path, new StringContent(
                                new JsonObject { ["response_id"] = next.ResponseId, ["thumbs"] = next.User.GetHashCode() % 2 == 0 ? "up" : "down", ["user"] = next.User }.ToJsonString(),
                                System.Text.Encoding.UTF8, "application/json"));
                        }
                        catch (HttpRequestException) { return; }
                        if (response.StatusCode != HttpStatusCode.OK) return;
                        string text;
                        try { text = await response.Content.ReadAsStringAsync(); }
                        catch (HttpRequestException) { return; }
                        acknowledged[(long)JsonNode.Parse(text)!["id"]!] = next;
                        if (acknowledged.Count >= KillAfter && Interlocked.Exchange(ref killed, 1) == 0)
                            serve.Dispose();
                    }
                }
                await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(Worker)));
                Assert.Equal(1, killed);
            }
            finally
            {
                if (Volatile.Read(ref killed) == 0) serve.Dispose();
            }

            // The burst was cut short, and every 200 it got is in the database, which opens cleanly.
            Assert.InRange(acknowledged.Count, KillAfter, Responses * Users - 1);
            Assert.True(attempted < Responses * Users, "the kill came after the burst ended");
            using var store = await FeedbackStores.OpenAsync(database, default);
            var stored = (await store.ListJudgementsAsync(new JudgementQuery(), default)).ToDictionary(j => j.Id);
            foreach (var (id, (responseId, user)) in acknowledged)
            {
                Assert.True(stored.TryGetValue(id, out var judgement), $"acknowledged judgement {id} is missing");
                Assert.Equal((responseId, user), (judgement.ItemId, judgement.Annotator));
            }
        }
        finally { Directory.Delete(folder, recursive: true); }
    }
}
