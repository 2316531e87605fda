using System.Text;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;
using Loom.Models.Gguf;

namespace Loom.LlamaCpp;

/// <summary>Options for loading a GGUF into llama.cpp; null means llama.cpp's default.</summary>
/// <param name="ContextSize">Tokens of KV cache (null: the model's context length, at most <see cref="DefaultContextSize"/>).</param>
/// <param name="Threads">CPU threads (null: llama.cpp's choice).</param>
/// <param name="BatchSize">Tokens evaluated per decode call.</param>
/// <param name="Float32Cache">Keep the KV cache in float32 (llama.cpp's default is f16, which rounds
/// keys and values to 11 significant bits) and attend without flash attention: slower, but exact
/// enough to compare logits with another implementation.</param>
public sealed record LlamaCppOptions(int? ContextSize = null, int? Threads = null, int BatchSize = 512, bool Float32Cache = false)
{
    /// <summary>Context of a model loaded with no <see cref="ContextSize"/> when it was trained on more: a KV cache for the
    /// whole trained context of a large model costs gigabytes no caller asked for.</summary>
    public const int DefaultContextSize = 4096;

    /// <summary>llama.cpp's parameters for the GGUF at path: CPU only, these batch, cache and thread settings (the context size is the caller's).</summary>
    internal ModelParams ToModelParams(string path)
    {
        var parameters = new ModelParams(System.IO.Path.GetFullPath(path))
        {
            GpuLayerCount = 0,
            BatchSize = (uint)BatchSize,
            UBatchSize = (uint)BatchSize,
        };
        if (Float32Cache)
        {
            parameters.TypeK = GGMLType.GGML_TYPE_F32;
            parameters.TypeV = GGMLType.GGML_TYPE_F32;
            parameters.FlashAttention = false;
        }
        if (Threads is int threads)
        {
            parameters.Threads = threads;
            parameters.BatchThreads = threads;
        }
        return parameters;
    }
}

/// <summary>A llama.cpp failure (load, decode); the message is one line naming the file.</summary>
public sealed class LlamaCppException(string message) : Exception(message);

/// <summary>
/// A GGUF model run by llama.cpp (LLamaSharp's CPU build): tokenizes with the GGUF's own
/// tokenizer, returns next-token logits for a token sequence, and generates greedily. Each call
/// evaluates its sequence from an empty KV cache, so results do not depend on earlier calls.
/// Not thread-safe: one caller at a time.
/// </summary>
public sealed class LlamaCppModel : IDisposable
{
    readonly LLamaWeights weights;
    readonly LLamaContext context;
    readonly LLamaBatch batch = new();
    readonly int batchSize;

    LlamaCppModel(string path, LLamaWeights weights, LLamaContext context, int batchSize)
    {
        Path = path;
        this.weights = weights;
        this.context = context;
        this.batchSize = batchSize;
    }

    public string Path { get; }

    public int VocabSize => weights.Vocab.Count;

    /// <summary>Tokens the KV cache holds: the longest sequence a call can evaluate.</summary>
    public int ContextSize => (int)context.ContextSize;

    /// <summary>
    /// Loads a GGUF file. Its header is checked by <see cref="GgufPreflight"/> first (a <see cref="GgufException"/> names
    /// the file and the key); llama.cpp's reason for a later failure is in the exception's message.
    /// </summary>
    public static LlamaCppModel Load(string path, LlamaCppOptions? options = null)
    {
        options ??= new LlamaCppOptions();
        if (!File.Exists(path))
            throw new LlamaCppException($"{path}: no such file");
        int trainedContext = GgufPreflight.Check(path);
        LlamaCppRuntime.EnsureLoaded();
        var parameters = options.ToModelParams(path);
        parameters.ContextSize = (uint)(options.ContextSize ?? Math.Min(trainedContext, LlamaCppOptions.DefaultContextSize));
        LLamaWeights? weights = null;
        try
        {
            LlamaCppRuntime.ClearErrors();
            weights = LLamaWeights.LoadFromFile(parameters);
            var context = weights.CreateContext(parameters);
            return new LlamaCppModel(path, weights, context, options.BatchSize);
        }
        catch (Exception e) when (e is LoadWeightsFailedException or RuntimeError)
        {
            weights?.Dispose();
            throw new LlamaCppException($"{path}: llama.cpp could not load the model: {LlamaCppRuntime.LastError() ?? e.Message}");
        }
    }

    /// <summary>Token ids of <paramref name="text"/> as llama.cpp's tokenizer splits it.</summary>
    /// <param name="addBos">Prepend the BOS token (when the vocabulary has one).</param>
    /// <param name="parseSpecial">Match special-token text (e.g. "&lt;|endoftext|&gt;") as those tokens.</param>
    public int[] Tokenize(string text, bool addBos = false, bool parseSpecial = false)
    {
        var tokens = context.Tokenize(text, addBos, parseSpecial);
        var ids = new int[tokens.Length];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = (int)tokens[i];
        return ids;
    }

    /// <summary>The text of a token sequence (special tokens rendered as their text).</summary>
    public string Detokenize(ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>();
        Span<byte> piece = stackalloc byte[256];
        foreach (int id in tokens)
        {
            int n = (int)weights.NativeHandle.TokenToSpan(id, piece, 0, true);
            if (n > piece.Length)
                throw new LlamaCppException($"{Path}: token {id} is longer than {piece.Length} bytes");
            for (int i = 0; i < n; i++)
                bytes.Add(piece[i]);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Logits for the token after <paramref name="tokens"/> (evaluated from an empty cache).</summary>
    public float[] NextTokenLogits(ReadOnlySpan<int> tokens)
    {
        var logits = new float[VocabSize]; // [vocab]
        Evaluate(tokens, allPositions: false, logits);
        return logits;
    }

    /// <summary>Logits after every prefix of <paramref name="tokens"/>: row t predicts token t + 1.</summary>
    public float[] AllLogits(ReadOnlySpan<int> tokens)
    {
        var logits = new float[tokens.Length * VocabSize]; // [tokens, vocab]
        Evaluate(tokens, allPositions: true, logits);
        return logits;
    }

    /// <summary>Greedy continuation: <paramref name="count"/> tokens, each the argmax of the logits (the lowest id on a tie).</summary>
    public int[] GenerateGreedy(ReadOnlySpan<int> prompt, int count, CancellationToken cancellationToken = default)
    {
        if (prompt.Length == 0)
            throw new ArgumentException("greedy generation needs at least one prompt token", nameof(prompt));
        if (prompt.Length + count > ContextSize)
            throw new ArgumentException($"{prompt.Length} prompt + {count} new tokens exceed the context of {ContextSize}", nameof(count));
        var generated = new int[count];
        var logits = new float[VocabSize]; // [vocab]
        Evaluate(prompt, allPositions: false, logits);
        for (int i = 0; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int next = ArgMax(logits);
            generated[i] = next;
            if (i + 1 == count)
                break;
            batch.Clear();
            batch.Add(next, prompt.Length + i, LLamaSeqId.Zero, true);
            Decode();
            context.NativeHandle.GetLogitsIth(0).CopyTo(logits);
        }
        return generated;
    }

    /// <summary>Which llama.cpp build LLamaSharp loaded (path and AVX level) and the CPU features llama.cpp uses.</summary>
    public static string NativeDescription()
    {
        LlamaCppRuntime.EnsureLoaded();
        string features = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(NativeApi.llama_print_system_info()) ?? "";
        var library = NativeApi.GetLoadedNativeLibrary(NativeLibraryName.LLama);
        return $"{library?.Metadata?.ToString() ?? "(not loaded)"}; {features.Trim()}";
    }

    /// <summary>Index of the largest value; the first one on a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best])
                best = i;
        return best;
    }

    void Evaluate(ReadOnlySpan<int> tokens, bool allPositions, Span<float> output)
    {
        if (tokens.Length == 0)
            throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (tokens.Length > ContextSize)
            throw new ArgumentException($"{tokens.Length} tokens exceed the context of {ContextSize}", nameof(tokens));
        int vocab = VocabSize;
        foreach (int id in tokens)
            if ((uint)id >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"token id outside the vocabulary of {vocab}");
        context.NativeHandle.MemoryClear(true);
        for (int start = 0; start < tokens.Length; start += batchSize)
        {
            int end = Math.Min(tokens.Length, start + batchSize);
            batch.Clear();
            for (int t = start; t < end; t++)
                batch.Add(tokens[t], t, LLamaSeqId.Zero, allPositions || t == tokens.Length - 1);
            Decode();
            if (allPositions)
            {
                for (int t = start; t < end; t++)
                    context.NativeHandle.GetLogitsIth(t - start).CopyTo(output.Slice(t * vocab, vocab));
            }
            else if (end == tokens.Length)
            {
                context.NativeHandle.GetLogitsIth(end - 1 - start).CopyTo(output);
            }
        }
    }

    void Decode()
    {
        var result = context.Decode(batch);
        if (result != DecodeResult.Ok)
            throw new LlamaCppException($"{Path}: llama.cpp decode failed ({result})");
    }

    public void Dispose()
    {
        context.Dispose();
        weights.Dispose();
    }
}

/// <summary>
/// Points LLamaSharp at the llama.cpp libraries copied next to the application
/// (runtimes/RID/native/AVX-LEVEL/, the best level this CPU supports is picked) and keeps
/// llama.cpp's log quiet, remembering its last error for exception messages.
/// </summary>
static class LlamaCppRuntime
{
    static readonly Lock Gate = new();
    static bool configured;
    static string? lastError;

    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (configured)
                return;
            if (!NativeLibraryConfig.LLama.LibraryHasLoaded)
            {
                NativeLibraryConfig.All
                    .WithSearchDirectory(AppContext.BaseDirectory)
                    .WithAutoFallback(true)
                    .WithLogCallback(Log);
            }
            NativeLogConfig.llama_log_set(Log);
            configured = true;
        }
    }

    static void Log(LLamaLogLevel level, string message)
    {
        if (level == LLamaLogLevel.Error)
        {
            lock (Gate)
                lastError = lastError is null ? message.Trim() : $"{lastError}; {message.Trim()}";
        }
    }

    public static void ClearErrors()
    {
        lock (Gate)
            lastError = null;
    }

    public static string? LastError()
    {
        lock (Gate)
            return lastError;
    }
}
