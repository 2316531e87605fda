using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Loom.Serving.Feedback;

/// <summary>
/// Password hashes for annotators: PBKDF2 with HMAC-SHA256, 100,000 iterations, a random 16-byte salt and a
/// 32-byte key, kept as one string <c>pbkdf2-sha256$ITERATIONS$SALT$KEY</c> (salt and key in base64), so the
/// iteration count can rise later without breaking stored hashes. Verification compares in constant time.
/// </summary>
public static class PasswordHasher
{
    const string Scheme = "pbkdf2-sha256";
    public const int Iterations = 100_000;
    const int SaltBytes = 16, KeyBytes = 32;

    public static string Hash(string password)
    {
        ArgumentException.ThrowIfNullOrEmpty(password);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var key = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, Iterations, HashAlgorithmName.SHA256, KeyBytes);
        return $"{Scheme}${Iterations.ToString(CultureInfo.InvariantCulture)}${Convert.ToBase64String(salt)}${Convert.ToBase64String(key)}";
    }

    /// <summary>Whether <paramref name="password"/> matches <paramref name="hash"/>; false for a hash not in this format.</summary>
    public static bool Verify(string password, string hash)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentNullException.ThrowIfNull(hash);
        var parts = hash.Split('$');
        if (parts.Length != 4 || parts[0] != Scheme
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations) || iterations < 1)
            return false;
        byte[] salt, expected;
        try
        {
            salt = Convert.FromBase64String(parts[2]);
            expected = Convert.FromBase64String(parts[3]);
        }
        catch (FormatException)
        {
            return false;
        }
        if (salt.Length == 0 || expected.Length == 0) return false;
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }
}
