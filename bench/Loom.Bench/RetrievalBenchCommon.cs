using Loom.IO;
using System.Collections.Concurrent;
using System.Text.Json;
using Loom.Retrieval;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Bench;

/// <summary>Shared by the retrieval benchmarks: arguments, the dotnet-docs documents, the stores, results files.</summary>
static class RetrievalBenchCommon
{
    /// <summary>"--name value" pairs; a flag without value maps to "true".</summary>
    public static Dictionary<string, string> ParseArguments(string[] args)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            bool hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            result[args[i][2..]] = hasValue ? args[++i] : "true";
        }
        return result;
    }

    public static int Int(Dictionary<string, string> arguments, string name, int fallback) =>
        arguments.TryGetValue(name, out string? value) ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    public static string ResultsFolder() => BenchPaths.ResultsFolder();

    public static void WriteJson(string name, object value)
    {
        string path = Path.Combine(ResultsFolder(), name);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(value, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }

    /// <summary>PostgreSQL connection for the benchmarks: --postgres, else env LOOM_BENCH_POSTGRES or LOOM_TEST_POSTGRES; null skips it.</summary>
    public static string? PostgresConnection(Dictionary<string, string> arguments) =>
        arguments.GetValueOrDefault("postgres") ?? Environment.GetEnvironmentVariable("LOOM_BENCH_POSTGRES") ?? Environment.GetEnvironmentVariable("LOOM_TEST_POSTGRES");

    /// <summary>Opens the benchmark's stores: SQLite in the cache folder, and PostgreSQL (its own schema) when a connection is known.</summary>
    public static async Task<List<(string Name, IRetrievalStore Store)>> OpenStoresAsync(string cacheFolder, string schema, int dimensions, string? postgres)
    {
        var stores = new List<(string, IRetrievalStore)> { ("sqlite", SqliteRetrievalStore.Open(Path.Combine(cacheFolder, "index.db"), dimensions)) };
        if (postgres is not null)
            stores.Add(("postgres", await PostgresRetrievalStore.OpenAsync(postgres, dimensions, Path.Combine(cacheFolder, "postgres-vectors.usearch"), schema, default)));
        else
            Console.WriteLine("PostgreSQL skipped: pass --postgres or set LOOM_BENCH_POSTGRES / LOOM_TEST_POSTGRES");
        return stores;
    }

    public static double Percentile(List<double> sorted, double fraction) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(fraction * sorted.Count) - 1)];
}

/// <summary>
/// Remembers embeddings by text, so a second store reuses the first store's embeddings. With a file,
/// it also remembers them across runs: each computed embedding is appended (SHA-256 of the text, then
/// the floats), and a run that rebuilds an index after a schema change embeds nothing again. A torn
/// last record (a killed run) is ignored on load.
/// </summary>
sealed class CachingEmbeddingGenerator : DelegatingEmbeddingGenerator<string, Embedding<float>>
{
    readonly ConcurrentDictionary<string, Embedding<float>> cache = new(StringComparer.Ordinal);
    readonly Dictionary<string, float[]> persisted = new(StringComparer.Ordinal);
    readonly FileStream? file;

    public CachingEmbeddingGenerator(IEmbeddingGenerator<string, Embedding<float>> inner, string? path = null, int dimensions = 0) : base(inner)
    {
        if (path is null)
            return;
        file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        int recordBytes = 32 + dimensions * sizeof(float);
        var record = new byte[recordBytes];
        long complete = 0;
        while (file.ReadAtLeast(record, recordBytes, throwOnEndOfStream: false) == recordBytes)
        {
            persisted[Convert.ToHexString(record, 0, 32)] = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(record.AsSpan(32)).ToArray();
            complete += recordBytes;
        }
        file.SetLength(complete);
        file.Position = complete;
        if (persisted.Count > 0)
            Console.WriteLine($"embedding cache {path}: {persisted.Count} embeddings");
    }

    public int Computed { get; private set; }

    static string Key(string text) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    public override async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var texts = values.ToList();
        var missing = new List<string>();
        foreach (string text in texts.Distinct())
        {
            if (cache.ContainsKey(text))
                continue;
            if (persisted.TryGetValue(Key(text), out var stored))
                cache[text] = new Embedding<float>(stored);
            else
                missing.Add(text);
        }
        if (missing.Count > 0)
        {
            var computed = await base.GenerateAsync(missing, options, cancellationToken);
            for (int i = 0; i < missing.Count; i++)
            {
                cache[missing[i]] = computed[i];
                if (file is not null)
                {
                    file.Write(Convert.FromHexString(Key(missing[i])));
                    file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(computed[i].Vector.Span));
                }
            }
            file?.Flush();
            Computed += missing.Count;
        }
        return new GeneratedEmbeddings<Embedding<float>>(texts.Select(text => cache[text]));
    }

    /// <summary>Forgets everything, so the next call computes (latency runs time the query embedding).</summary>
    public void Clear()
    {
        cache.Clear();
        persisted.Clear();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            file?.Dispose();
        base.Dispose(disposing);
    }
}
