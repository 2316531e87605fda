using System.Reflection;
using ArchUnitNET.Domain;
using Assembly = System.Reflection.Assembly;
using ArchUnitNET.Loader;
using ArchUnitNET.xUnit;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace Loom.Tests;

/// <summary>
/// The arrows of DESIGN.md: Core ← Training, Retrieval, Logs ← Evaluation ← Serving ← Server, Cli (Serving uses Logs for explanations; Logs never uses Serving). A type may depend only on
/// types of its own layer or of a layer its arrows point to; the compiler already refuses a missing project reference,
/// this test also refuses a reference added the wrong way.
/// </summary>
public class ArchitectureTests
{
    static readonly Assembly Core = typeof(Loom.Tensors.Tensor).Assembly;
    static readonly Assembly Training = typeof(Loom.Training.Pretrainer).Assembly;
    static readonly Assembly Retrieval = typeof(Loom.Retrieval.Retriever).Assembly;
    static readonly Assembly Evaluation = typeof(Loom.Evaluation.TextMetrics).Assembly;
    static readonly Assembly Serving = typeof(Loom.Serving.GenerationEngine).Assembly;
    static readonly Assembly Server = typeof(Loom.Server.LoomServer).Assembly;
    static readonly Assembly LlamaCpp = typeof(Loom.LlamaCpp.LlamaCppModel).Assembly;
    static readonly Assembly Logs = typeof(Loom.Logs.TemplateMiner).Assembly;
    static readonly Assembly Cli = Assembly.Load("Loom.Cli");

    static readonly Architecture Loom = new ArchLoader().LoadAssemblies(Core, Training, Retrieval, Evaluation, Serving, Server, LlamaCpp, Logs, Cli).Build();

    /// <summary>Each library assembly and the Loom assemblies it must never use.</summary>
    public static TheoryData<string, string[]> Arrows => new()
    {
        { "Loom.Core", ["Loom.Training", "Loom.Retrieval", "Loom.Evaluation", "Loom.Serving", "Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.Training", ["Loom.Retrieval", "Loom.Evaluation", "Loom.Serving", "Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.Retrieval", ["Loom.Training", "Loom.Evaluation", "Loom.Serving", "Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.Logs", ["Loom.Retrieval", "Loom.Evaluation", "Loom.Serving", "Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.Evaluation", ["Loom.Serving", "Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.Serving", ["Loom.Server", "Loom.LlamaCpp", "Loom.Cli"] },
        { "Loom.LlamaCpp", ["Loom.Training", "Loom.Retrieval", "Loom.Evaluation", "Loom.Serving", "Loom.Server", "Loom.Cli"] },
        { "Loom.Server", ["Loom.Cli", "Loom.LlamaCpp"] },
    };

    [Theory]
    [MemberData(nameof(Arrows))]
    public void LayerDependsOnlyOnLayersBelowIt(string layer, string[] forbidden)
    {
        var rule = Types().That().ResideInAssembly(Assembly.Load(layer))
            .Should().NotDependOnAny(Types().That().ResideInAssembly(Assembly.Load(forbidden[0]), [.. forbidden.Skip(1).Select(Assembly.Load)]))
            .Because($"{layer} sits below {string.Join(", ", forbidden)} in DESIGN.md's arrows");
        rule.Check(Loom);
    }

    [Fact]
    public void LibraryNeverUsesTheCommandLineOrTheWebHost()
    {
        string[] library = ["Loom.Core", "Loom.Training", "Loom.Retrieval", "Loom.Logs", "Loom.Evaluation", "Loom.Serving"];
        foreach (string name in library)
        {
            var referenced = Assembly.Load(name).GetReferencedAssemblies().Select(a => a.Name!).ToList();
            Assert.DoesNotContain(referenced, r => r.StartsWith("System.CommandLine", StringComparison.Ordinal)
                || r.StartsWith("Spectre.", StringComparison.Ordinal) || r.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal));
        }
    }

    /// <summary>A user of the tensor engine alone pulls no ONNX Runtime, SQLite, PostgreSQL, USearch or llama.cpp.</summary>
    [Fact]
    public void CoreReferencesNoNativeStoreOrRuntime()
    {
        var closure = new HashSet<string>();
        var pending = new Stack<AssemblyName>([new AssemblyName("Loom.Core")]);
        while (pending.Count > 0)
        {
            var name = pending.Pop();
            if (!closure.Add(name.Name!)) continue;
            Assembly loaded;
            try { loaded = Assembly.Load(name); }
            catch (FileNotFoundException) { continue; } // framework facades that are not shipped as files
            foreach (var reference in loaded.GetReferencedAssemblies()) pending.Push(reference);
        }
        string[] heavy = ["Microsoft.ML.OnnxRuntime", "Microsoft.Data.Sqlite", "SQLitePCLRaw.core", "Npgsql", "USearch", "Cloud.Unum.USearch", "LLamaSharp",
            "Microsoft.Extensions.AI.Abstractions", "SentenceTransformers"];
        Assert.DoesNotContain(closure, c => heavy.Any(h => c.StartsWith(h, StringComparison.Ordinal)));
        Assert.Contains("Loom.Core", closure);
    }
}
