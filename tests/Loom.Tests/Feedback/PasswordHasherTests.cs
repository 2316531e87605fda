using System.Security.Cryptography;
using System.Text;
using Loom.Serving.Feedback;

namespace Loom.Tests.Feedback;

public class PasswordHasherTests
{
    [Fact]
    public void HashesVerifyOnlyTheirOwnPasswordAndUseFreshSalt()
    {
        string hash = PasswordHasher.Hash("correct horse");
        Assert.True(PasswordHasher.Verify("correct horse", hash));
        Assert.False(PasswordHasher.Verify("correct horse ", hash));
        Assert.False(PasswordHasher.Verify("", hash));
        Assert.NotEqual(hash, PasswordHasher.Hash("correct horse"));
        Assert.StartsWith("pbkdf2-sha256$100000$", hash);
    }

    [Fact]
    public void TheKeyIsPbkdf2Sha256OfTheStoredSalt()
    {
        var parts = PasswordHasher.Hash("s3cret").Split('$');
        var salt = Convert.FromBase64String(parts[2]);
        Assert.Equal(16, salt.Length);
        var key = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes("s3cret"), salt, 100_000, HashAlgorithmName.SHA256, 32);
        Assert.Equal(Convert.ToBase64String(key), parts[3]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain")]
    [InlineData("pbkdf2-sha256$x$AAAA$AAAA")]
    [InlineData("pbkdf2-sha256$1000$not base64!$AAAA")]
    [InlineData("md5$1000$AAAA$AAAA")]
    public void MalformedHashesDoNotVerify(string hash) => Assert.False(PasswordHasher.Verify("anything", hash));
}
