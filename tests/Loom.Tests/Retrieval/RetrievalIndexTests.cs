using Loom.Retrieval;

namespace Loom.Tests.Retrieval;

/// <summary>Opening an index folder: no silent new index over a lost database, nothing left behind by a failed create.</summary>
public sealed class RetrievalIndexTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-index-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnIndexWhoseDatabaseIsEmptyOrGoneIsRefusedNotRecreated(bool truncate)
    {
        string index = Path.Combine(folder, "index");
        string notes = Directory.CreateDirectory(Path.Combine(folder, "notes")).FullName;
        File.WriteAllText(Path.Combine(notes, "a.md"), "# Leave\n\nNew employees get 25 days of leave.");
        using (var built = await RetrievalIndex.OpenAsync(index, Embedders.Hashing, null, create: true, default))
            await new Ingestor(built.Store, built.Embedder).IngestPathsAsync([notes], new Dictionary<string, string>(), default);
        string database = Path.Combine(index, "index.db");
        if (truncate) File.WriteAllBytes(database, []);
        else File.Delete(database);
        foreach (bool create in new[] { false, true })
        {
            var error = await Assert.ThrowsAsync<InvalidDataException>(() => RetrievalIndex.OpenAsync(index, null, null, create, default));
            Assert.Contains(database, error.Message);
            Assert.Contains(truncate ? "empty (0 bytes)" : "missing", error.Message);
        }
        Assert.Equal(truncate, File.Exists(database));
    }

    [Fact]
    public async Task ANewPostgresIndexThatCannotConnectLeavesNoFolder()
    {
        string index = Path.Combine(folder, "pg-index");
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        await Assert.ThrowsAnyAsync<Exception>(() => RetrievalIndex.OpenAsync(index, Embedders.Hashing, "Host=127.0.0.1;Port=1;Username=x;Password=x;Database=x;Timeout=3", create: true, default));
        Assert.False(Directory.Exists(index));
    }
}
