using System.Security.Cryptography;

namespace Loom.Evaluation;

/// <summary>Which model a result belongs to: its checkpoint folder or GGUF file, and a hash of the files that define it.</summary>
/// <param name="Path">The checkpoint folder or GGUF file as given.</param>
/// <param name="Hash">The first 16 hex digits of SHA-256 over config.json, tokenizer.json and the weights (or the GGUF file).</param>
public sealed record ModelVersion(string Path, string Hash)
{
    public override string ToString() => $"{System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(Path))}@{Hash}";

    /// <summary>The version of a checkpoint folder (config, tokenizer and every *.safetensors file, by name order) or of one file.</summary>
    public static ModelVersion Of(string path)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        IEnumerable<string> files = Directory.Exists(path)
            ? Directory.EnumerateFiles(path).Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)
            : File.Exists(path) ? [path] : throw new FileNotFoundException($"{path}: no such model file or folder");
        var buffer = new byte[1 << 20];
        foreach (string file in files)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(file) + "\n"));
            using var stream = File.OpenRead(file);
            int read;
            while ((read = stream.Read(buffer)) > 0) sha.AppendData(buffer, 0, read);
        }
        return new ModelVersion(path, Convert.ToHexStringLower(sha.GetHashAndReset())[..16]);
    }
}
