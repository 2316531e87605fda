namespace Loom.Tests;

/// <summary>
/// Trait names and values for <c>[Trait(TestCategories.Category, TestCategories.Slow)]</c>. Slow marks a test (or a
/// class) that runs the quickstart, llama.cpp (LLamaSharp), PostgreSQL or a child process, or takes more than about
/// 2 s on two cores. A developer runs the rest in under a minute with
/// <c>dotnet test Loom.sln -c Release --filter "Category!=Slow"</c>; CI (.ci/run) runs everything.
/// </summary>
public static class TestCategories
{
    /// <summary>The trait name the filter reads ("Category").</summary>
    public const string Category = "Category";

    /// <summary>Left out of the fast set.</summary>
    public const string Slow = "Slow";
}
