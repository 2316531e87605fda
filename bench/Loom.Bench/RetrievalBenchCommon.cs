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

    /// <summary>One document per documented member; the source id is the member id (M:System.String.Trim).</summary>
    public static SourceDocument ToDocument(DocMember member) =>
        new(member.Id, member.Title, "text", member.Title + "\n" + member.Text, new Dictionary<string, string>(), new Dictionary<string, string> { ["file"] = Path.GetFileName(member.SourceFile) });

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

/// <summary>Remembers embeddings by text, so a second store reuses the first store's embeddings.</summary>
sealed class CachingEmbeddingGenerator(IEmbeddingGenerator<string, Embedding<float>> inner)
    : DelegatingEmbeddingGenerator<string, Embedding<float>>(inner)
{
    readonly ConcurrentDictionary<string, Embedding<float>> cache = new(StringComparer.Ordinal);

    public int Computed { get; private set; }

    public override async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var texts = values.ToList();
        var missing = texts.Where(text => !cache.ContainsKey(text)).Distinct().ToList();
        if (missing.Count > 0)
        {
            var computed = await base.GenerateAsync(missing, options, cancellationToken);
            for (int i = 0; i < missing.Count; i++)
                cache[missing[i]] = computed[i];
            Computed += missing.Count;
        }
        return new GeneratedEmbeddings<Embedding<float>>(texts.Select(text => cache[text]));
    }

    public void Clear() => cache.Clear();
}
