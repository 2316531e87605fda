using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Loom.Retrieval;
using Loom.Serving;
using Loom.Serving.Feedback;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Loom.Server;

/// <summary>
/// What one server serves: a generator, and optionally embeddings, retrieval and feedback. A generator that is a
/// <see cref="ServedVersions"/> is served version by version: each request on the version current at its start.
/// </summary>
public sealed record ServedModel(ITextGenerator Generator)
{
    public IEmbeddingGenerator<string, Embedding<float>>? Embeddings { get; init; }
    /// <summary>Name under which <see cref="Embeddings"/> is served (OpenAI "model").</summary>
    public string EmbeddingModelName { get; init; } = "all-MiniLM-L6-v2";
    /// <summary>Feedback store behind the studio; enables <see cref="Loom.Server.Studio.StudioApp.Path"/>.</summary>
    public IFeedbackStore? Studio { get; init; }
    /// <summary>Grounds answers in retrieved sources; enables the model alias NAME+rag.</summary>
    public Retriever? Retriever { get; init; }
    /// <summary>How NAME+rag searches and budgets its prompt.</summary>
    public RetrievalChatOptions? Retrieval { get; init; }
    /// <summary>Judges posted log lines; enables <see cref="LogEndpoint.Path"/>.</summary>
    public Loom.Logs.LiveDetector? LogDetector { get; init; }
    /// <summary>Records every chat completion for feedback and enables <see cref="FeedbackEndpoint.Path"/>.</summary>
    public TrafficFeedback? Feedback { get; init; }
}

/// <summary>
/// The OpenAI-compatible HTTP host. Handlers parse JSON into typed records at once and hand them to one
/// chat pipeline (<see cref="LoomPipeline"/>: metrics, limits, retrieval for NAME+rag, then the generator whose
/// single loop owns the model); the OpenAI dialect lives only here.
/// </summary>
public static class LoomServer
{
    /// <summary>The addresses a started server listens on (with port 0, the port the system chose).</summary>
    public static IReadOnlyList<Uri> Addresses(WebApplication app) =>
        [.. app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a))];

    public static WebApplication Build(ServedModel served, ServerOptions options, Action<ILoggingBuilder>? logging = null)
    {
        if (RequestGuards.BindingProblem(options) is { } problem) throw new ArgumentException(problem, nameof(options));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        logging?.Invoke(builder.Logging);
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        builder.Services.AddSingleton(new ServerMetrics());
        if (served.Studio is not null) Studio.StudioApp.AddStudio(builder.Services);
        var app = builder.Build();
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        if (served.Studio is not null) Studio.StudioApp.MapStudio(app, served.Studio);
        string ragName = served.Generator.ModelName + "+rag";
        var chatMetrics = new ChatMetrics();
        var limits = new ChatLimits { MaxOutputTokens = options.MaxTokensLimit };
        // The two chat pipelines of a version: the model, and the model grounded in retrieval (NAME+rag), each recording
        // its responses for feedback under the version's name. A request takes one version at its start (a lease) and
        // finishes on it; a hot swap only changes what later requests take.
        var layers = new LoomPipelineOptions { Metrics = chatMetrics, Limits = limits, Feedback = served.Feedback };
        var versions = served.Generator as ServedVersions;
        VersionLease Acquire() => versions?.Acquire() ?? VersionLease.Fixed(served.Generator);
        IChatClient Pipeline(VersionLease lease, bool rag) => LoomPipeline.Build(lease.Generator, rag
            ? layers with { ModelVersion = lease.Version, Retriever = served.Retriever, Retrieval = served.Retrieval }
            : layers with { ModelVersion = lease.Version });

        app.Use(async (context, next) =>
        {
            var clock = Stopwatch.StartNew();
            metrics.RequestStarted();
            try
            {
                if (RequestGuards.Answered(context, options)) return;
                if (options.ApiKeys.Count > 0 && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request, options.ApiKeys))
                    throw new ApiException(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "authentication_error", code: "invalid_api_key");
                await next(context);
            }
            catch (ApiException e) when (!context.Response.HasStarted)
            {
                await WriteError(context, e);
            }
            catch (ChatRequestException e) when (!context.Response.HasStarted)
            {
                await WriteError(context, new ApiException(400, e.Message, param: Param(e.Field), code: e.Code));
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
                metrics.RequestFinished(RouteLabel(context), context.Response.StatusCode, clock.Elapsed);
            }
        });

        app.MapGet("/health", () => Results.Json(new { status = "ok", model = served.Generator.ModelName, version = versions?.Current ?? served.Generator.ModelName }));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(served.Generator.ActiveSequences, chatMetrics.Snapshot()) + FeedbackMetrics(served.Feedback, versions),
            "text/plain; version=0.0.4"));
        app.MapGet("/v1/models", () =>
        {
            var data = new JsonArray { ModelEntry(served.Generator.ModelName) };
            if (served.Retriever is not null) data.Add(ModelEntry(ragName));
            if (served.Embeddings is not null && served.EmbeddingModelName != served.Generator.ModelName) data.Add(ModelEntry(served.EmbeddingModelName));
            return Results.Json(new JsonObject { ["object"] = "list", ["data"] = data });
        });

        app.MapPost("/v1/chat/completions", async context =>
        {
            var call = OpenAiProtocol.ParseCompletion(await ReadBody(context, options), chat: true);
            bool rag = call.Model == ragName && served.Retriever is not null;
            CheckModel(call.Model, served.Generator.ModelName, rag);
            CheckChoices(call, options);
            var messages = call.Messages!.ToList();
            using var lease = Acquire();
            var pipeline = Pipeline(lease, rag);
            string id = NewId(chat: true);
            await Respond(context, call, id, lease.Version, chat: true,
                (choice, ct) => pipeline.GetStreamingResponseAsync(messages, Options(call, choice, ChoiceId(id, choice)), ct), Answer(pipeline, messages, call, id));
        });

        // A raw prompt, no chat template: straight to the generator, through the same limits, metrics and formatting as chat.
        app.MapPost("/v1/completions", async context =>
        {
            var call = OpenAiProtocol.ParseCompletion(await ReadBody(context, options), chat: false);
            CheckModel(call.Model, served.Generator.ModelName, rag: false);
            CheckChoices(call, options);
            using var lease = Acquire();
            IAsyncEnumerable<ChatResponseUpdate> Stream(int choice, CancellationToken ct) => chatMetrics.ObserveAsync(
                LoomChatClient.StreamAsync(lease.Generator, LoomChatClient.Request(lease.Generator, call.Prompt!, limits.Apply(Options(call, choice, null))), ct), ct);
            await Respond(context, call, NewId(chat: false), lease.Version, chat: false, Stream, Collect(Stream));
        });

        app.MapPost("/v1/embeddings", async context =>
        {
            var (model, inputs, base64, dimensions) = OpenAiProtocol.ParseEmbeddings(await ReadBody(context, options));
            if (served.Embeddings is null) throw new ApiException(404, "this server has no embedding model", code: "model_not_found");
            if (model != served.EmbeddingModelName && model != served.Generator.ModelName)
                throw new ApiException(404, $"model '{model}' does not exist (this server embeds with '{served.EmbeddingModelName}')", param: "model", code: "model_not_found");
            var vectors = await served.Embeddings.GenerateAsync(inputs, cancellationToken: context.RequestAborted);
            var data = new JsonArray();
            for (int i = 0; i < vectors.Count; i++)
            {
                var vector = vectors[i].Vector.ToArray();
                if (dimensions is int count)
                {
                    if (count > vector.Length)
                        throw new ApiException(400, $"dimensions must be at most {vector.Length} (the model's dimension), got {count}", param: "dimensions");
                    vector = Truncate(vector, count);
                }
                data.Add(new JsonObject
                {
                    ["object"] = "embedding",
                    ["index"] = i,
                    ["embedding"] = base64 ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan()))
                        : new JsonArray(vector.Select(v => (JsonNode)v).ToArray()),
                });
            }
            int tokens = inputs.Sum(s => served.Generator.CountTokens(s));
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["object"] = "list",
                ["data"] = data,
                ["model"] = model,
                ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
            }, context.RequestAborted);
        });

        if (served.LogDetector is not null) LogEndpoint.Map(app, served.LogDetector, options);
        FeedbackEndpoint.Map(app, served.Feedback, options);

        app.MapFallback(context => throw new ApiException(404, $"no route for {context.Request.Method} {context.Request.Path}", code: "not_found"));
        return app;
    }

    /// <summary>The feedback and hot-swap counters, in Prometheus text; empty when the server has neither.</summary>
    static string FeedbackMetrics(TrafficFeedback? feedback, ServedVersions? versions)
    {
        var text = new StringBuilder();
        void Counter(string name, string help, long value) => text.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        if (feedback is not null)
        {
            Counter("loom_feedback_recorded_total", "Responses recorded for feedback.", feedback.Recorded);
            Counter("loom_feedback_record_failures_total", "Responses answered but not recorded (the feedback store failed).", feedback.RecordFailures);
        }
        if (versions is not null)
        {
            Counter("loom_version_swaps_total", "Switches to a new model version.", versions.Swaps);
            Counter("loom_version_load_failures_total", "Model versions that failed to load (the old one kept serving).", versions.LoadFailures);
        }
        return text.ToString();
    }

    /// <summary>The name of the response header that names the model version which answered.</summary>
    public const string VersionHeader = "Loom-Model-Version";

    static string NewId(bool chat) => (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];

    /// <summary>The id under which choice <paramref name="choice"/> of response <paramref name="id"/> is recorded: ID for the first, ID-1, ID-2, … for the others.</summary>
    public static string ChoiceId(string id, int choice) => choice == 0 ? id : $"{id}-{choice}";

    /// <summary>
    /// Answers a chat or completion call with its n choices, streamed as server-sent events or as one JSON body:
    /// the OpenAI formatting shared by both endpoints. A refused request fails before any byte is sent. The model
    /// version that answers is named in system_fingerprint (every chunk too) and the <see cref="VersionHeader"/> header.
    /// </summary>
    static async Task Respond(HttpContext context, CompletionCall call, string id, string version, bool chat,
        Func<int, CancellationToken, IAsyncEnumerable<ChatResponseUpdate>> stream, Func<int, CancellationToken, Task<ChatResponse>> complete)
    {
        context.Response.Headers[VersionHeader] = version;
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string kind = chat ? "chat.completion" : "text_completion";
        // Ends the other choices' generation when one fails or the response is done.
        using var choices = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var token = choices.Token;
        if (!call.Stream)
        {
            ChatResponse[] responses;
            try { responses = await Task.WhenAll(Enumerable.Range(0, call.N).Select(i => complete(i, token))); }
            finally { await choices.CancelAsync(); }
            var array = new JsonArray();
            for (int i = 0; i < responses.Length; i++)
            {
                var choice = new JsonObject { ["index"] = i };
                var calls = responses[i].Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().ToList();
                if (chat)
                {
                    var message = new JsonObject { ["role"] = "assistant", ["content"] = calls.Count > 0 ? null : responses[i].Text };
                    if (calls.Count > 0) message["tool_calls"] = ToolCalls(calls, streamed: false);
                    choice["message"] = message;
                }
                else choice["text"] = responses[i].Text;
                choice["logprobs"] = Logprobs.Json(Logprobs.Of(responses[i].AdditionalProperties), chat, textOffset: 0);
                choice["finish_reason"] = responses[i].FinishReason?.Value;
                array.Add(choice);
            }
            var response = new JsonObject
            {
                ["id"] = id, ["object"] = kind, ["created"] = created, ["model"] = call.Model, ["system_fingerprint"] = version, ["choices"] = array,
                ["usage"] = Usage(responses[0].Usage?.InputTokenCount ?? 0, responses.Sum(r => r.Usage?.OutputTokenCount ?? 0)),
            };
            if (responses[0].GetSources() is { Given.Count: > 0 } sources) response["sources"] = Sources(sources);
            await context.Response.WriteAsJsonAsync(response, context.RequestAborted);
            return;
        }

        var updates = new IAsyncEnumerator<ChatResponseUpdate>?[call.N];
        try
        {
            for (int i = 0; i < call.N; i++) updates[i] = stream(i, token).GetAsyncEnumerator(token);
            var started = await Task.WhenAll(updates.Select(u => u!.MoveNextAsync().AsTask()));
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            var writeGate = new SemaphoreSlim(1);
            long promptTokens = 0, completionTokens = 0;
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
            var textOffsets = new int[call.N];
            JsonObject Chunk(int index, JsonObject? delta, ChatResponseUpdate? update)
            {
                var choice = new JsonObject { ["index"] = index };
                if (chat) choice["delta"] = delta;
                else choice["text"] = update?.Text ?? "";
                var logprobs = Logprobs.Of(update?.AdditionalProperties);
                choice["logprobs"] = Logprobs.Json(logprobs, chat, textOffsets[index]);
                if (logprobs is not null) textOffsets[index] += logprobs.Sum(t => t.Chosen.Token.Length);
                choice["finish_reason"] = update?.FinishReason?.Value;
                var chunk = new JsonObject
                {
                    ["id"] = id, ["object"] = chat ? "chat.completion.chunk" : kind, ["created"] = created, ["model"] = call.Model,
                    ["system_fingerprint"] = version, ["choices"] = new JsonArray(choice),
                };
                if (update?.GetSources() is { Given.Count: > 0 } sources) chunk["sources"] = Sources(sources);
                return chunk;
            }
            if (chat)
                for (int i = 0; i < call.N; i++)
                    await Send(Chunk(i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
            await Task.WhenAll(Enumerable.Range(0, call.N).Where(i => started[i]).Select(async index =>
            {
                var updateStream = updates[index]!;
                do
                {
                    var update = updateStream.Current;
                    var calls = update.Contents.OfType<FunctionCallContent>().ToList();
                    JsonObject delta = calls.Count > 0 ? new JsonObject { ["tool_calls"] = ToolCalls(calls, streamed: true) } : new JsonObject { ["content"] = update.Text };
                    if (update.Text.Length > 0 || calls.Count > 0 || update.FinishReason is not null || update.GetSources() is not null || Logprobs.Of(update.AdditionalProperties) is { Count: > 0 })
                        await Send(Chunk(index, chat ? delta : null, update));
                    foreach (var usage in update.Contents.OfType<UsageContent>())
                    {
                        if (index == 0) Interlocked.Add(ref promptTokens, usage.Details.InputTokenCount ?? 0);
                        Interlocked.Add(ref completionTokens, usage.Details.OutputTokenCount ?? 0);
                    }
                }
                while (await updateStream.MoveNextAsync());
            }));
            if (call.IncludeUsage)
                await Send(new JsonObject
                {
                    ["id"] = id, ["object"] = chat ? "chat.completion.chunk" : kind, ["created"] = created, ["model"] = call.Model,
                    ["system_fingerprint"] = version, ["choices"] = new JsonArray(), ["usage"] = Usage(promptTokens, completionTokens),
                });
            await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        }
        finally
        {
            await choices.CancelAsync();
            foreach (var updateStream in updates)
                if (updateStream is not null) await updateStream.DisposeAsync();
        }
    }

    /// <summary>One choice answered by the pipeline in one piece.</summary>
    static Func<int, CancellationToken, Task<ChatResponse>> Answer(IChatClient pipeline, List<ChatMessage> messages, CompletionCall call, string id) =>
        (choice, ct) => pipeline.GetResponseAsync(messages, Options(call, choice, ChoiceId(id, choice)), ct);

    /// <summary>One choice's stream, collected into one response.</summary>
    static Func<int, CancellationToken, Task<ChatResponse>> Collect(Func<int, CancellationToken, IAsyncEnumerable<ChatResponseUpdate>> stream) =>
        (choice, ct) => LoomChatClient.CollectAsync(stream(choice, ct), ct);

    /// <summary>Options of one choice: the call's sampling, each choice with its own seed, and the id it is recorded under.</summary>
    static ChatOptions Options(CompletionCall call, int choice, string? responseId) => new()
    {
        MaxOutputTokens = call.MaxTokens,
        Temperature = call.Temperature,
        TopP = call.TopP,
        Seed = call.Seed is int seed ? seed + choice : null,
        FrequencyPenalty = call.FrequencyPenalty,
        PresencePenalty = call.PresencePenalty,
        StopSequences = call.Stop?.ToList(),
        ResponseFormat = call.ResponseFormat,
        Tools = call.Tools,
        ToolMode = call.ToolMode,
        AdditionalProperties = Extra(call, responseId),
    };

    /// <summary>The options with no ChatOptions property of their own: log-probabilities, logit bias and the response id.</summary>
    static AdditionalPropertiesDictionary? Extra(CompletionCall call, string? responseId)
    {
        if (call.TopLogprobs is null && call.LogitBias is null && responseId is null) return null;
        var extra = new AdditionalPropertiesDictionary();
        if (responseId is not null) extra[FeedbackCaptureChatClient.ResponseIdKey] = responseId;
        if (call.TopLogprobs is int top) extra[LoomChatClient.TopLogprobsKey] = top;
        if (call.LogitBias is { } bias) extra[LoomChatClient.LogitBiasKey] = bias;
        return extra;
    }

    /// <summary>Function calls as OpenAI's tool_calls (arguments as a JSON string); streamed deltas carry their index.</summary>
    static JsonArray ToolCalls(IReadOnlyList<FunctionCallContent> calls, bool streamed) => new(calls.Select((c, i) =>
    {
        var entry = new JsonObject();
        if (streamed) entry["index"] = i;
        entry["id"] = c.CallId;
        entry["type"] = "function";
        entry["function"] = new JsonObject
        {
            ["name"] = c.Name,
            ["arguments"] = System.Text.Json.JsonSerializer.Serialize(c.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions),
        };
        return (JsonNode)entry;
    }).ToArray());

    /// <summary>The sources a grounded answer was given, each marked whether the answer cites it.</summary>
    static JsonArray Sources(GroundingSources sources) => new(sources.Given.Select(s => (JsonNode)new JsonObject
    {
        ["number"] = s.Number,
        ["source"] = s.Hit.SourceId,
        ["title"] = s.Hit.Title,
        ["section"] = s.Hit.HeadingPath,
        ["text"] = s.Hit.Text,
        ["cited"] = sources.Cited.Contains(s),
    }).ToArray());

    /// <summary>The first <paramref name="count"/> components, re-normalised to unit length (OpenAI's shortened embeddings).</summary>
    static float[] Truncate(float[] vector, int count)
    {
        var first = vector[..count];
        float norm = System.Numerics.Tensors.TensorPrimitives.Norm(first);
        if (norm > 0) System.Numerics.Tensors.TensorPrimitives.Divide(first, norm, first);
        return first;
    }

    static JsonObject Usage(long prompt, long completion) => new()
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

    static void CheckChoices(CompletionCall call, ServerOptions options)
    {
        if (call.N < 1 || call.N > options.MaxChoices)
            throw new ApiException(400, $"n must be between 1 and {options.MaxChoices}, got {call.N}", param: "n");
    }

    /// <summary>The OpenAI parameter a pipeline field stands for.</summary>
    static string Param(string field) => field switch
    {
        "ChatOptions.MaxOutputTokens" => "max_tokens",
        "ChatOptions.Temperature" => "temperature",
        "ChatOptions.TopP" => "top_p",
        "ChatOptions.TopK" => "top_k",
        "ChatOptions.FrequencyPenalty" => "frequency_penalty",
        "ChatOptions.PresencePenalty" => "presence_penalty",
        "ChatOptions.ResponseFormat" => "response_format",
        "ChatOptions.Tools" => "tools",
        "ChatOptions.ToolMode" => "tool_choice",
        "SamplingOptions.LogitBias" => "logit_bias",
        _ => field,
    };

    /// <summary>
    /// The metrics label of a request: its route template (<c>/v1/chat/completions</c>), or <c>unmatched</c> for a path no
    /// route serves (the catch-all fallback included). Never the raw path: a client could otherwise grow the counters
    /// without bound, one per distinct URL.
    /// </summary>
    static string RouteLabel(HttpContext context) =>
        (context.GetEndpoint() as Microsoft.AspNetCore.Routing.RouteEndpoint)?.RoutePattern.RawText is { } route && !route.StartsWith("{*", StringComparison.Ordinal)
            ? route
            : "unmatched";

    static bool Authorized(HttpRequest request, IReadOnlyList<string> keys)
    {
        string header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = Encoding.UTF8.GetBytes(header[prefix.Length..].Trim());
        return keys.Any(k => System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(k)));
    }

    static async Task<JsonObject> ReadBody(HttpContext context, ServerOptions options) =>
        OpenAiProtocol.ParseObject(await ReadBytes(context, options));

    /// <summary>Reads the body, refusing (413) past the limit without reading the rest.</summary>
    internal static async Task<byte[]> ReadBytes(HttpContext context, ServerOptions options)
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
        return buffer.ToArray();
    }

    static async Task WriteError(HttpContext context, ApiException error)
    {
        context.Response.StatusCode = error.Status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(error.ToJson().ToJsonString());
    }
}
