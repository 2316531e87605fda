using Loom.Text;

namespace Loom.Tests.Text;

public class DotnetDocsTests
{
    [Fact]
    public void FindsTheReferencePackDocumentation()
    {
        var files = DotnetDocs.FindFiles();
        Assert.InRange(files.Count, 100, 2000);
        Assert.Contains(files, file => Path.GetFileName(file) == "System.Runtime.xml");
        Assert.All(files, file => Assert.EndsWith(".xml", file));
    }

    [Fact]
    public void MissingSdkRootGivesOneLineError()
    {
        var root = Path.Combine(Path.GetTempPath(), "loom-no-sdk-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<FileNotFoundException>(() => DotnetDocs.FindFiles(root));
        Assert.Contains(root, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void StringTrimRendersWithoutHoles()
    {
        var file = DotnetDocs.FindFiles().Single(f => Path.GetFileName(f) == "System.Runtime.xml" && f.Contains("Microsoft.NETCore.App.Ref", StringComparison.Ordinal));
        var members = DotnetDocs.ReadMembers(file).ToDictionary(m => m.Id);
        Assert.InRange(members.Count, 10_000, 60_000);

        var trim = members["M:System.String.Trim(System.Char[])"];
        Assert.Equal("System.String.Trim(Char[])", trim.Title);
        Assert.StartsWith("Removes all leading and trailing occurrences of a set of characters", trim.Text);
        Assert.Contains("Parameter trimChars: An array of Unicode characters to remove, or null.", trim.Text);
        Assert.Contains("If trimChars is null or an empty array", trim.Text);
        Assert.DoesNotContain("  ", trim.Text);
        Assert.DoesNotContain("<", trim.Text);

        var cancel = members["M:System.Threading.CancellationTokenSource.Cancel"];
        Assert.Contains("Communicates a request for cancellation.", cancel.Text);
        var register = members.Values.First(m => m.Id.StartsWith("M:System.Threading.CancellationToken.Register(System.Action)", StringComparison.Ordinal));
        Assert.Contains("CancellationToken", register.Text);
        Assert.DoesNotContain(" a that ", register.Text);
        Assert.DoesNotContain(" the  ", register.Text);
    }

    [Fact]
    public void CrefsBecomeShortNames()
    {
        Assert.Equal("CancellationToken", DotnetDocs.CrefName("T:System.Threading.CancellationToken"));
        Assert.Equal("List<T>", DotnetDocs.CrefName("T:System.Collections.Generic.List`1"));
        Assert.Equal("Dictionary<T1, T2>", DotnetDocs.CrefName("T:System.Collections.Generic.Dictionary`2"));
        Assert.Equal("String.Trim", DotnetDocs.CrefName("M:System.String.Trim(System.Char[])"));
        Assert.Equal("List<T>.Add", DotnetDocs.CrefName("M:System.Collections.Generic.List`1.Add(`0)"));
        Assert.Equal("Enumerable.Select<T1, T2>", DotnetDocs.CrefName("M:System.Linq.Enumerable.Select``2(System.Collections.Generic.IEnumerable{``0},System.Func{``0,``1})"));
        Assert.Equal("ArgumentException", DotnetDocs.CrefName("M:System.ArgumentException.#ctor(System.String)"));
        Assert.Equal("Array.Equals", DotnetDocs.CrefName("M:System.Array.System#Collections#IStructuralEquatable#Equals(System.Object,System.Collections.IEqualityComparer)"));
        Assert.Equal("System.IO", DotnetDocs.CrefName("N:System.IO"));
        Assert.Equal("Object.Equals", DotnetDocs.CrefName("Overload:System.Object.Equals"));
        Assert.Equal("System.Linq.Enumerable.Select<T1, T2>(IEnumerable<T1>, Func<T1, T2>)",
            DotnetDocs.TitleOf("M:System.Linq.Enumerable.Select``2(System.Collections.Generic.IEnumerable{``0},System.Func{``0,``1})"));
        Assert.Equal("System.Array.Copy(Array, ref Int32, Int32[,])", DotnetDocs.TitleOf("M:System.Array.Copy(System.Array,System.Int32@,System.Int32[0:,0:])"));
        Assert.Equal("System.Collections.Generic.List<T>.Add(T)", DotnetDocs.TitleOf("M:System.Collections.Generic.List`1.Add(`0)"));
    }

    [Fact]
    public void GenericTitlesUseTheDeclaredParameterNames()
    {
        var file = DotnetDocs.FindFiles().Single(f => Path.GetFileName(f) == "System.Collections.xml" && f.Contains("Microsoft.NETCore.App.Ref", StringComparison.Ordinal));
        var members = DotnetDocs.ReadMembers(file).ToDictionary(m => m.Id);
        Assert.Equal("System.Collections.Generic.Dictionary<TKey, TValue>.TryGetValue(TKey, ref TValue)",
            members["M:System.Collections.Generic.Dictionary`2.TryGetValue(`0,`1@)"].Title);
        Assert.Equal("System.Collections.Generic.Dictionary<TKey, TValue>.AlternateLookup<TAlternateKey>.TryGetValue(TAlternateKey, ref TKey, ref TValue)",
            members["M:System.Collections.Generic.Dictionary`2.AlternateLookup`1.TryGetValue(`2,`0@,`1@)"].Title);
        Assert.Contains("Dictionary<TKey, TValue>", members["T:System.Collections.Generic.Dictionary`2.AlternateLookup`1"].Text);
    }

    [Trait(TestCategories.Category, TestCategories.Slow)]
    [Fact]
    public void WholeCorpusIsDeduplicatedAndSizable()
    {
        var ids = new HashSet<string>();
        long characters = 0;
        foreach (var member in DotnetDocs.ReadAll())
        {
            Assert.True(ids.Add(member.Id), member.Id);
            characters += member.Title.Length + member.Text.Length;
        }
        Assert.InRange(ids.Count, 50_000, 200_000);
        Assert.InRange(characters, 10_000_000, 60_000_000);
    }
}
