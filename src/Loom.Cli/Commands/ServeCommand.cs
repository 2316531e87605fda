using System.CommandLine;
using Loom.Retrieval;
using Loom.Server;
using Loom.Serving;
using Loom.Serving.Feedback;
using Loom.Tensors;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Loom.Cli.Commands;

/// <summary><c>loom serve</c>: the OpenAI-compatible HTTP server over a Loom checkpoint or a GGUF file.</summary>
internal static class ServeCommand
{
    internal static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Checkpoint folder (or a `loom pretrain` output folder)" };
        var gguf = new Option<string?>("--gguf") { Description = "A GGUF file, run by llama.cpp" };
        var index = new Option<string?>("--index") { Description = "Retrieval index folder: enables the model alias NAME+rag and /v1/embeddings" };
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var apiKeys = new Option<string[]>("--api-key") { Description = "Accepted Bearer key (repeatable); none means no authentication", Arity = ArgumentArity.ZeroOrMore };
        var slots = new Option<int>("--slots") { Description = "Sequences decoded together (continuous batching)", DefaultValueFactory = _ => 16 };
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "A prompt longer than this many tokens is prefilled in slices, so running streams keep going (a multiple of 64; 0 = whole prompts)", DefaultValueFactory = _ => 256 };
        var prefillAlong = new Option<int>("--prefill-along") { Description = "Tokens of such a prompt prefilled inside each decode step of the running streams (at most 64; 0 = slices of --prefill-chunk run as steps of their own)", DefaultValueFactory = _ => 16 };
        var maxTokens = new Option<int>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for", DefaultValueFactory = _ => 4096 };
        var maxBytes = new Option<long>("--max-request-bytes") { Description = "Largest request body, in bytes", DefaultValueFactory = _ => 1 << 20 };
        var threads = SharedOptions.Threads();
        var embeddings = new Option<bool>("--embeddings") { Description = "Serve /v1/embeddings with all-MiniLM-L6-v2 even without --index (otherwise a Loom model embeds with its own hidden states)" };
        var top = new Option<int>("--top") { Description = "How many sources NAME+rag puts into the prompt at most", DefaultValueFactory = _ => 5 };
        var answerTokens = new Option<int>("--answer-tokens") { Description = "Tokens NAME+rag keeps free for the answer at most (sources are shortened or dropped to leave them); 0 = a quarter of the context" };
        var logModel = new Option<string?>("--log-model") { Description = "Log model checkpoint folder: enables POST /v1/logs/detect" };
        var logPreset = new Option<string?>("--log-preset") { Description = "Log format preset of the posted lines (default generic)" };
        var logSessionId = new Option<string>("--log-session-id") { Description = "Regex naming a posted line's session", DefaultValueFactory = _ => @"blk_-?\d+" };
        var allowedHosts = new Option<string[]>("--allowed-host") { Description = "Host header name answered besides the bound address (NAME or NAME:PORT, repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var corsOrigin = new Option<string?>("--cors-origin") { Description = "The one browser origin granted CORS access (none by default)" };
        var allowUnauthenticated = new Option<bool>("--allow-unauthenticated") { Description = "Serve a non-loopback --host without --api-key" };
        var feedback = new Option<string?>("--feedback") { Description = "Feedback store (a SQLite file, or a PostgreSQL connection string): record every chat completion and enable POST /v1/feedback" };
        var studio = new Option<bool>("--studio") { Description = "Also serve the feedback studio at /studio over the --feedback store (see loom studio)" };
        var registry = new Option<string?>("--registry") { Description = "Model registry folder: serve the version HOME/current names and switch when it changes (hot swap), instead of --model" };
        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API (chat, completions, embeddings, models, health, metrics; log detection with --log-model).")
        {
            model, gguf, index, host, port, apiKeys, slots, prefillChunk, prefillAlong, maxTokens, maxBytes, threads, embeddings, top, answerTokens, logModel, logPreset, logSessionId,
            allowedHosts, corsOrigin, allowUnauthenticated, registry, feedback, studio,
        };
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("serve", async () =>
        {
            int slotCount = parseResult.GetValue(slots);
            if (slotCount < 1) throw new ArgumentException($"--slots must be positive, got {slotCount}");
            int threadCount = SharedOptions.ThreadCount(parseResult, threads);
            int chunk = parseResult.GetValue(prefillChunk), along = parseResult.GetValue(prefillAlong);
            if (chunk < 0 || chunk % GenerationEngineOptions.PrefillChunkAlignment != 0)
                throw new ArgumentException($"--prefill-chunk must be 0 or a positive multiple of {GenerationEngineOptions.PrefillChunkAlignment}, got {chunk}");
            if (along is < 0 or > Loom.Models.TransformerDecoder.MaxSliceTokens)
                throw new ArgumentException($"--prefill-along must be in [0, {Loom.Models.TransformerDecoder.MaxSliceTokens}], got {along}");
            var engine = new GenerationEngineOptions { PrefillChunkTokens = chunk, PrefillTokensPerDecodeStep = along };
            int topCount = parseResult.GetValue(top), answerBudget = parseResult.GetValue(answerTokens);
            if (topCount < 1) throw new ArgumentException($"--top must be positive, got {topCount}");
            if (answerBudget < 0) throw new ArgumentException($"--answer-tokens must be >= 0, got {answerBudget}");
            var options = new ServerOptions
            {
                Host = parseResult.GetValue(host)!,
                Port = parseResult.GetValue(port),
                ApiKeys = parseResult.GetValue(apiKeys) ?? [],
                MaxTokensLimit = parseResult.GetValue(maxTokens),
                MaxRequestBytes = parseResult.GetValue(maxBytes),
                AllowedHosts = parseResult.GetValue(allowedHosts) ?? [],
                CorsOrigin = parseResult.GetValue(corsOrigin),
                AllowUnauthenticated = parseResult.GetValue(allowUnauthenticated),
            };
            if (RequestGuards.BindingProblem(options) is not null)
            {
                Console.Error.WriteLine($"loom serve: --host {options.Host} is not a loopback address and no --api-key is given: anyone who can reach it could use the model; give --api-key KEY, or --allow-unauthenticated");
                return 2;
            }
            using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(c => c.SingleLine = true)
                .AddConsole(c => c.LogToStandardErrorThreshold = LogLevel.Trace));
            string? registryHome = parseResult.GetValue(registry);
            if (registryHome is not null && (parseResult.GetValue(model) is not null || parseResult.GetValue(gguf) is not null))
                throw new ArgumentException("pass either --registry HOME or one of --model DIR and --gguf FILE");
            await using var generator = registryHome is null
                ? GeneratorHandle.Open(parseResult.GetValue(model), parseResult.GetValue(gguf), threadCount, slotCount, engine)
                : await OpenRegistry(registryHome, threadCount, slotCount, engine, loggers.CreateLogger("Loom.Serving.Feedback.ServedVersions"), cancellationToken);
            string? indexFolder = parseResult.GetValue(index);
            using var retrievalIndex = indexFolder is null ? null
                : await RetrievalIndex.OpenAsync(indexFolder, null, null, create: false, cancellationToken);
            using var ownEmbedder = retrievalIndex is null && parseResult.GetValue(embeddings) ? new MiniLmEmbeddingGenerator(threads: threadCount) : null;
            // The index's embedder (queries must be embedded as its chunks were), else MiniLM on request, else the model's own.
            var ownOrIndexEmbedder = retrievalIndex?.Embedder ?? ownEmbedder;
            var served = new ServedModel(generator.Generator)
            {
                Embeddings = ownOrIndexEmbedder ?? generator.Embeddings,
                EmbeddingModelName = ownOrIndexEmbedder?.GetService<EmbeddingGeneratorMetadata>()?.DefaultModelId ?? generator.Generator.ModelName,
                Retriever = retrievalIndex?.Retriever,
                Retrieval = new RetrievalChatOptions { Search = new SearchOptions(Top: topCount), AnswerTokens = answerBudget == 0 ? generator.Generator.ContextLength / 4 : answerBudget },
                LogDetector = parseResult.GetValue(logModel) is { } logFolder
                    ? new Loom.Logs.LiveDetector(Loom.Logs.LogModel.Load(logFolder), new Loom.Logs.LiveDetectorOptions
                    {
                        Parser = new Loom.Logs.LogParserOptions { Preset = parseResult.GetValue(logPreset) }, IdentifierPattern = parseResult.GetValue(logSessionId)!,
                    })
                    : null,
            };
            using var feedbackStore = parseResult.GetValue(feedback) is { } storeLocation ? await FeedbackStores.OpenAsync(storeLocation, cancellationToken) : null;
            if (feedbackStore is not null)
                served = served with { Feedback = new TrafficFeedback(feedbackStore, new TrafficFeedbackOptions { Logger = loggers.CreateLogger("Loom.Serving.Feedback.TrafficFeedback") }) };
            if (parseResult.GetValue(studio))
                served = served with { Studio = feedbackStore ?? throw new ArgumentException("--studio needs --feedback STORE (the store the studio shows)") };
            await using var app = LoomServer.Build(served, options);
            string version = generator.Generator is ServedVersions versions ? $" version '{versions.Current}'" : "";
            return await RunUntilCancelledAsync(app, addresses => $"loom serve: model '{generator.Generator.ModelName}'{version} listening on {string.Join(", ", addresses.Select(a => a.GetLeftPart(UriPartial.Authority)))}",
                cancellationToken);
        }));
        return command;
    }

    /// <summary>
    /// Starts <paramref name="app"/>, prints the line <paramref name="banner"/> makes of its addresses (tests and scripts
    /// read it to find the port), and serves until Ctrl-C.
    /// </summary>
    internal static async Task<int> RunUntilCancelledAsync(WebApplication app, Func<IReadOnlyList<Uri>, string> banner, CancellationToken cancellationToken)
    {
        await app.StartAsync(cancellationToken);
        Console.Out.WriteLine(banner(LoomServer.Addresses(app)));
        Console.Out.Flush();
        var stopped = new TaskCompletionSource();
        using var registration = cancellationToken.Register(() => stopped.TrySetResult());
        await stopped.Task;
        await app.StopAsync(CancellationToken.None);
        return 0;
    }

    /// <summary>The registry's current version, swapped when HOME/current changes; the handle owns its compute threads.</summary>
    static async Task<GeneratorHandle> OpenRegistry(string home, int threads, int slots, GenerationEngineOptions engine, ILogger logger, CancellationToken cancellationToken)
    {
        var compute = new ComputeContext(threads);
        try
        {
            var versions = await ServedVersions.StartAsync(new ModelRegistry(home), new ServedVersionsOptions
            {
                Model = new LoomModelOptions { Slots = slots, Compute = compute, Engine = engine },
                Logger = logger,
            }, cancellationToken);
            return new GeneratorHandle(versions, async () =>
            {
                await versions.DisposeAsync();
                compute.Dispose();
            });
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }
}
