using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class SubnormalsTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(130)]
    public void FlushToZeroRemovesSubnormalsAndKeepsEverythingElse(int length)
    {
        float[] specials = [float.Epsilon, -float.Epsilon, Subnormals.MinNormal / 2, -Subnormals.MinNormal / 3, 1e-40f,
            Subnormals.MinNormal, -Subnormals.MinNormal, 1f, -2.5f, 0f, float.NaN, float.PositiveInfinity, 3e38f, 1e-37f];
        var random = new Random(length);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = specials[random.Next(specials.Length)];
        values[^1] = 1e-39f; // the scalar tail too
        var expected = values.Select(v => float.IsSubnormal(v) ? 0f : v).ToArray();
        Assert.True(Subnormals.Count(values) > 0);

        Subnormals.FlushToZero(values);

        Assert.Equal(0, Subnormals.Count(values));
        for (int i = 0; i < length; i++)
            Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]) & 0x7FFF_FFFF, BitConverter.SingleToInt32Bits(values[i]) & 0x7FFF_FFFF);
    }
}
