using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Serving;
using Loom.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Loom.Server;

/// <summary>What one server serves: a generator, and optionally embeddings and retrieval.</summary>
public sealed record ServedModel(ITextGenerator Generator)
{
    public IEmbeddingGenerator<string, Embedding<float>>? Embeddings { get; init; }
    /// <summary>Name under which <see cref="Embeddings"/> is served (OpenAI "model").</summary>
    public string EmbeddingModelName { get; init; } = "all-MiniLM-L6-v2";
    /// <summary>Turns a question into a prompt with numbered sources; enables the model alias NAME+rag.</summary>
    public Func<IReadOnlyList<ChatTurn>, CancellationToken, Task<GroundedPrompt>>? Retrieve { get; init; }
}

/// <summary>A conversation rewritten to carry retrieved sources, and the sources to return with the answer.</summary>
public sealed record GroundedPrompt(IReadOnlyList<ChatTurn> Turns, IReadOnlyList<JsonObject> Sources);

/// <summary>
/// The OpenAI-compatible HTTP host. Handlers parse JSON into typed records at once and hand the
/// work to the model's generator (one loop owns the model); the OpenAI dialect lives only here.
/// </summary>
public static class LoomServer
{
    public static WebApplication Build(ServedModel served, ServerOptions options, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        logging?.Invoke(builder.Logging);
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        builder.Services.AddSingleton(new ServerMetrics());
        var app = builder.Build();
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        string ragName = served.Generator.ModelName + "+rag";

        app.Use(async (context, next) =>
        {
            var clock = Stopwatch.StartNew();
            metrics.RequestStarted();
            try
            {
                if (options.ApiKeys.Count > 0 && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request, options.ApiKeys))
                    throw new ApiException(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "authentication_error", code: "invalid_api_key");
                await next(context);
            }
            catch (ApiException e) when (!context.Response.HasStarted)
            {
                await WriteError(context, e);
            }
            catch (ArgumentException e) when (!context.Response.HasStarted)
            {
                await WriteError(context, new ApiException(400, e.Message));
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // the client went away; its sequence was released by the generator
            }
            finally
            {
                metrics.RequestFinished(context.Request.Path, context.Response.StatusCode, clock.Elapsed);
            }
        });

        app.MapGet("/health", () => Results.Json(new { status = "ok", model = served.Generator.ModelName }));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(served.Generator.ActiveSequences), "text/plain; version=0.0.4"));
        app.MapGet("/v1/models", () =>
        {
            var data = new JsonArray { ModelEntry(served.Generator.ModelName) };
            if (served.Retrieve is not null) data.Add(ModelEntry(ragName));
            if (served.Embeddings is not null && served.EmbeddingModelName != served.Generator.ModelName) data.Add(ModelEntry(served.EmbeddingModelName));
            return Results.Json(new JsonObject { ["object"] = "list", ["data"] = data });
        });

        app.MapPost("/v1/chat/completions", async context =>
        {
            var call = OpenAiProtocol.ParseCompletion(await ReadBody(context, options), chat: true);
            bool rag = call.Model == ragName && served.Retrieve is not null;
            CheckModel(call.Model, served.Generator.ModelName, rag);
            CheckLimits(call, options);
            var turns = call.Messages!;
            IReadOnlyList<JsonObject> sources = [];
            if (rag)
            {
                var grounded = await served.Retrieve!(turns, context.RequestAborted);
                turns = grounded.Turns;
                sources = grounded.Sources;
            }
            var prompt = served.Generator.EncodeChat(turns);
            var stop = (call.Stop ?? []).Append(ChatTemplate.End).ToList();
            await Complete(context, served.Generator, metrics, call, new GenerationRequest { PromptTokens = prompt }, stop, chat: true, sources);
        });

        app.MapPost("/v1/completions", async context =>
        {
            var call = OpenAiProtocol.ParseCompletion(await ReadBody(context, options), chat: false);
            CheckModel(call.Model, served.Generator.ModelName, rag: false);
            CheckLimits(call, options);
            await Complete(context, served.Generator, metrics, call, new GenerationRequest { Prompt = call.Prompt! }, call.Stop, chat: false, []);
        });

        app.MapPost("/v1/embeddings", async context =>
        {
            var (model, inputs) = OpenAiProtocol.ParseEmbeddings(await ReadBody(context, options));
            if (served.Embeddings is null) throw new ApiException(404, "this server has no embedding model", code: "model_not_found");
            if (model != served.EmbeddingModelName && model != served.Generator.ModelName)
                throw new ApiException(404, $"model '{model}' does not exist (this server embeds with '{served.EmbeddingModelName}')", param: "model", code: "model_not_found");
            var vectors = await served.Embeddings.GenerateAsync(inputs, cancellationToken: context.RequestAborted);
            var data = new JsonArray();
            for (int i = 0; i < vectors.Count; i++)
                data.Add(new JsonObject
                {
                    ["object"] = "embedding",
                    ["index"] = i,
                    ["embedding"] = new JsonArray(vectors[i].Vector.ToArray().Select(v => (JsonNode)v).ToArray()),
                });
            int tokens = inputs.Sum(s => served.Generator.CountTokens(s));
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["object"] = "list",
                ["data"] = data,
                ["model"] = model,
                ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
            }, context.RequestAborted);
        });

        app.MapFallback(context => throw new ApiException(404, $"no route for {context.Request.Method} {context.Request.Path}", code: "not_found"));
        return app;
    }

    static async Task Complete(HttpContext context, ITextGenerator generator, ServerMetrics metrics, CompletionCall call,
        GenerationRequest prompt, IReadOnlyList<string>? stop, bool chat, IReadOnlyList<JsonObject> sources)
    {
        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var requests = Enumerable.Range(0, call.N).Select(i => prompt with
        {
            MaxTokens = call.MaxTokens,
            Stop = stop,
            Sampling = new SamplingOptions
            {
                Temperature = call.Temperature ?? 1f,
                TopP = call.TopP ?? 1f,
                Seed = call.Seed is int seed ? seed + i : null,
                FrequencyPenalty = call.FrequencyPenalty,
                PresencePenalty = call.PresencePenalty,
            },
        }).ToList();
        foreach (var r in requests) r.Sampling.Validate();
        // Fail before any byte is sent if the prompt does not fit.
        int promptTokens = prompt.PromptTokens?.Length ?? generator.CountTokens(prompt.Prompt);
        if (promptTokens + 1 >= generator.ContextLength)
            throw new ApiException(400, $"the prompt has about {promptTokens} tokens; the context holds {generator.ContextLength}", param: chat ? "messages" : "prompt", code: "context_length_exceeded");

        if (call.Stream)
        {
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            var writeGate = new SemaphoreSlim(1);
            var usage = new int[3];
            async Task Send(JsonObject chunk)
            {
                await writeGate.WaitAsync(context.RequestAborted);
                try
                {
                    await context.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
                finally { writeGate.Release(); }
            }
            if (chat)
                for (int i = 0; i < call.N; i++)
                    await Send(Chunk(id, created, call.Model, i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, chat, sources));
            await Task.WhenAll(requests.Select(async (request, index) =>
            {
                await foreach (var update in generator.GenerateAsync(request, context.RequestAborted))
                {
                    if (update.Text.Length > 0 || update.FinishReason is not null)
                        await Send(Chunk(id, created, call.Model, index, chat ? new JsonObject { ["content"] = update.Text } : null, update, chat, sources));
                    if (update.FinishReason is not null)
                    {
                        Interlocked.Add(ref usage[0], update.PromptTokens);
                        Interlocked.Add(ref usage[1], update.CompletionTokens);
                        metrics.Tokens(update.PromptTokens, update.CompletionTokens);
                    }
                }
            }));
            if (call.IncludeUsage)
                await Send(new JsonObject
                {
                    ["id"] = id, ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = created, ["model"] = call.Model,
                    ["choices"] = new JsonArray(), ["usage"] = Usage(usage[0], usage[1]),
                });
            await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
            return;
        }

        var results = await Task.WhenAll(requests.Select(async request =>
        {
            var text = new StringBuilder();
            GenerationUpdate? last = null;
            await foreach (var update in generator.GenerateAsync(request, context.RequestAborted))
            {
                text.Append(update.Text);
                last = update;
            }
            return (Text: text.ToString(), Last: last!);
        }));
        int prompt0 = results[0].Last.PromptTokens, completion = results.Sum(r => r.Last.CompletionTokens);
        metrics.Tokens(prompt0 * results.Length, completion);
        var choices = new JsonArray();
        for (int i = 0; i < results.Length; i++)
        {
            var choice = new JsonObject { ["index"] = i };
            if (chat) choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = results[i].Text };
            else choice["text"] = results[i].Text;
            choice["logprobs"] = null;
            choice["finish_reason"] = FinishText(results[i].Last.FinishReason);
            choices.Add(choice);
        }
        var response = new JsonObject
        {
            ["id"] = id,
            ["object"] = chat ? "chat.completion" : "text_completion",
            ["created"] = created,
            ["model"] = call.Model,
            ["choices"] = choices,
            ["usage"] = Usage(prompt0, completion),
        };
        if (sources.Count > 0) response["sources"] = new JsonArray(sources.Select(s => (JsonNode)s.DeepClone()).ToArray());
        await context.Response.WriteAsJsonAsync(response, context.RequestAborted);
    }

    static JsonObject Chunk(string id, long created, string model, int index, JsonObject? delta, GenerationUpdate? update, bool chat, IReadOnlyList<JsonObject> sources)
    {
        var choice = new JsonObject { ["index"] = index };
        if (chat) choice["delta"] = delta;
        else choice["text"] = update?.Text ?? "";
        choice["logprobs"] = null;
        choice["finish_reason"] = FinishText(update?.FinishReason);
        var chunk = new JsonObject
        {
            ["id"] = id,
            ["object"] = chat ? "chat.completion.chunk" : "text_completion",
            ["created"] = created,
            ["model"] = model,
            ["choices"] = new JsonArray(choice),
        };
        if (update?.FinishReason is not null && sources.Count > 0)
            chunk["sources"] = new JsonArray(sources.Select(s => (JsonNode)s.DeepClone()).ToArray());
        return chunk;
    }

    static string? FinishText(FinishReason? reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => null,
    };

    static JsonObject Usage(int prompt, int completion) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
    };

    static JsonObject ModelEntry(string id) => new()
    {
        ["id"] = id,
        ["object"] = "model",
        ["created"] = 0,
        ["owned_by"] = "loom",
    };

    static void CheckModel(string requested, string served, bool rag)
    {
        if (!rag && requested != served)
            throw new ApiException(404, $"model '{requested}' does not exist (this server has '{served}')", param: "model", code: "model_not_found");
    }

    static void CheckLimits(CompletionCall call, ServerOptions options)
    {
        if (call.MaxTokens is int max && (max < 1 || max > options.MaxTokensLimit))
            throw new ApiException(400, $"max_tokens must be between 1 and {options.MaxTokensLimit}, got {max}", param: "max_tokens");
        if (call.N < 1 || call.N > options.MaxChoices)
            throw new ApiException(400, $"n must be between 1 and {options.MaxChoices}, got {call.N}", param: "n");
    }

    static bool Authorized(HttpRequest request, IReadOnlyList<string> keys)
    {
        string header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = Encoding.UTF8.GetBytes(header[prefix.Length..].Trim());
        return keys.Any(k => System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(k)));
    }

    /// <summary>Reads the body, refusing (413) past the limit without reading the rest.</summary>
    static async Task<JsonObject> ReadBody(HttpContext context, ServerOptions options)
    {
        if (context.Request.ContentLength > options.MaxRequestBytes)
            throw new ApiException(413, $"request body of {context.Request.ContentLength} bytes exceeds the limit of {options.MaxRequestBytes}", code: "request_too_large");
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + read > options.MaxRequestBytes)
                throw new ApiException(413, $"request body exceeds the limit of {options.MaxRequestBytes} bytes", code: "request_too_large");
            buffer.Write(chunk, 0, read);
        }
        return OpenAiProtocol.ParseObject(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    static async Task WriteError(HttpContext context, ApiException error)
    {
        context.Response.StatusCode = error.Status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(error.ToJson().ToJsonString());
    }
}
