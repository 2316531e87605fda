using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using System.Text.RegularExpressions;

namespace Loom.Tests;

/// <summary>
/// The library never names a CLI flag: every string literal compiled into the five library assemblies (the #US heap)
/// is read back and checked for "--flag". Messages name option properties or fields; the CLI maps them to its flags.
/// </summary>
public sealed partial class LibraryMessagesTests
{
    static readonly string[] LibraryAssemblies = ["Loom.Core", "Loom.Training", "Loom.Retrieval", "Loom.Logs", "Loom.Evaluation", "Loom.Serving"];

    [GeneratedRegex("""(^|[\s'"`(])--[a-z]""")]
    private static partial Regex CliFlag();

    /// <summary>Every user string (the literals of the IL) in the assembly file.</summary>
    internal static List<string> UserStrings(string assemblyPath)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var reader = new PEReader(stream);
        var metadata = reader.GetMetadataReader();
        var strings = new List<string>();
        var handle = MetadataTokens.UserStringHandle(1);
        while (!handle.IsNil)
        {
            strings.Add(metadata.GetUserString(handle));
            handle = metadata.GetNextHandle(handle);
        }
        return strings;
    }

    [Fact]
    public void NoLibraryLiteralNamesACliFlag()
    {
        var offenders = new List<string>();
        foreach (string name in LibraryAssemblies)
        {
            string path = Path.Combine(AppContext.BaseDirectory, name + ".dll");
            Assert.True(File.Exists(path), $"{path} is missing");
            var literals = UserStrings(path);
            Assert.NotEmpty(literals);
            offenders.AddRange(literals.Where(literal => CliFlag().IsMatch(literal)).Select(literal => $"{name}: {literal}"));
        }
        Assert.True(offenders.Count == 0, "library literals naming CLI flags:\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void TheScanSeesLiteralsAndFlags()
    {
        // The reader finds a literal known to be in Loom.Core, and the pattern tells flags from other dashes.
        var core = UserStrings(Path.Combine(AppContext.BaseDirectory, "Loom.Core.dll"));
        Assert.Contains("model.safetensors", core);
        Assert.Matches(CliFlag(), "pass --postgres \"Host=...\"");
        Assert.Matches(CliFlag(), "--batch must be positive");
        Assert.Matches(CliFlag(), "run 'loom ingest' (\"--index\")");
        Assert.DoesNotMatch(CliFlag(), "Batch must be positive");
        Assert.DoesNotMatch(CliFlag(), "a -- b, x--y, <!-- comment -->");
    }

    [Fact]
    public void TheCliShowsFlagsWhereTheLibraryNamesProperties()
    {
        Assert.Equal("--batch must be positive, got 0", Loom.Cli.FlagNames.Rephrase("PretrainOptions.Batch must be positive, got 0"));
        Assert.Equal("--lora-targets: unknown module 'bogus'", Loom.Cli.FlagNames.Rephrase("LoraOptions.Targets: unknown module 'bogus'"));
        Assert.Equal("--eval-fraction must be in [0, 1), got 1", Loom.Cli.FlagNames.Rephrase("TuneOptions.EvalFraction must be in [0, 1), got 1"));
        Assert.Equal("x: SomeOptions.Field is left alone", Loom.Cli.FlagNames.Rephrase("x: SomeOptions.Field is left alone"));
    }
}
