using System.Buffers.Binary;
using Loom.Models.Gguf;

namespace Loom.Tests.Models;

/// <summary>BF16, Q4_0 and Q4_K against values worked out by hand from ggml's reference quantisers, round-trip error bounds, and GGUF storage.</summary>
public sealed class GgmlQuantTypesTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-quant-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static float[] Gaussian(int count, int seed, float std = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = std * (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return values;
    }

    [Fact]
    public void Bf16RoundsToNearestEvenAndKeepsNaN()
    {
        float[] values =
        [
            1f,
            BitConverter.UInt32BitsToSingle(0x3F808000), // a tie, even below: stays 0x3F80
            BitConverter.UInt32BitsToSingle(0x3F818000), // a tie, odd below: up to 0x3F82
            BitConverter.UInt32BitsToSingle(0x3F808001), // above the tie: up
            -2.5f,
            float.NaN,
        ];
        var bytes = new byte[values.Length * 2];
        GgmlQuant.Encode(GgmlType.BF16, values, bytes);
        ushort[] expected = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020];
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i], BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i)));
        var decoded = new float[values.Length];
        GgmlQuant.Decode(GgmlType.BF16, bytes, decoded);
        Assert.Equal(1f, decoded[0]);
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x3F820000), decoded[2]);
        Assert.Equal(-2.5f, decoded[4]);
        Assert.True(float.IsNaN(decoded[5]));
    }

    [Fact]
    public void Q4_0MatchesTheReferenceOnAWorkedBlock()
    {
        // x[j] = j - 16: the largest magnitude is x[0] = -16, so d = -16 / -8 = 2 and q = min(15, trunc(x / 2 + 8.5)) = min(15, trunc(j / 2 + 0.5)).
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j - 16;
        var block = new byte[Q4Block.Bytes];
        GgmlQuant.Encode(GgmlType.Q4_0, x, block);
        Assert.Equal((Half)2f, BinaryPrimitives.ReadHalfLittleEndian(block));
        for (int j = 0; j < 16; j++)
        {
            int low = Math.Min(15, (int)(j / 2.0 + 0.5));
            int high = Math.Min(15, (int)((j + 16) / 2.0 + 0.5));
            Assert.Equal((byte)(low | (high << 4)), block[2 + j]);
        }
        Assert.Equal(0x91, block[2 + 2]); // j = 2: q = 1 (1.5 truncates), j = 18: q = 9
        var back = new float[32];
        GgmlQuant.Decode(GgmlType.Q4_0, block, back);
        Assert.Equal(-16f, back[0]);
        Assert.Equal(14f, back[31]); // q clipped at 15: 2 * (15 - 8)
    }

    [Fact]
    public void Q4_KMatchesTheReferenceOnAWorkedSuperBlock()
    {
        // Every sub-block holds 0.25 * q for q = 0..15 twice: min 0, max 3.75, so the first grid fits exactly (scale 0.25,
        // min 0, error 0) and no trial grid beats it. Then d = f16(0.25 / 63) = 0x1C10, every 6-bit scale is 63, dmin = 0;
        // the requantised levels stay q.
        var x = new float[256];
        for (int i = 0; i < 256; i++) x[i] = 0.25f * ((i * 7 + i / 32) % 16);
        var block = new byte[Q4KBlock.Bytes];
        GgmlQuant.Encode(GgmlType.Q4_K, x, block);
        Assert.Equal(0x1C10, BinaryPrimitives.ReadUInt16LittleEndian(block));
        Assert.Equal(0x0000, BinaryPrimitives.ReadUInt16LittleEndian(block.AsSpan(2)));
        Assert.Equal(new byte[] { 255, 255, 255, 255, 0, 0, 0, 0, 15, 15, 15, 15 }, block.AsSpan(4, 12).ToArray());
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
            {
                int q0 = ((64 * c + l) * 7 + (64 * c + l) / 32) % 16;
                int q1 = ((64 * c + 32 + l) * 7 + (64 * c + 32 + l) / 32) % 16;
                Assert.Equal((byte)(q0 | (q1 << 4)), block[16 + 32 * c + l]);
            }
        var back = new float[256];
        GgmlQuant.Decode(GgmlType.Q4_K, block, back);
        float d = (float)BitConverter.UInt16BitsToHalf(0x1C10) * 63;
        for (int i = 0; i < 256; i++) Assert.Equal(d * ((i * 7 + i / 32) % 16), back[i]);
    }

    [Fact]
    public void Q4_KPacksScalesAndMinsAsGetScaleMinReadsThem()
    {
        // A sub-block of values in [-1, 0] has min -1 (stored as +1): mins are packed in the other half of the 12 bytes.
        var x = Gaussian(256, 3);
        for (int i = 128; i < 160; i++) x[i] = -1f + (i - 128) / 31f;
        var block = new byte[Q4KBlock.Bytes];
        GgmlQuant.Encode(GgmlType.Q4_K, x, block);
        float dMin = (float)BinaryPrimitives.ReadHalfLittleEndian(block.AsSpan(2));
        var (_, m4) = Q4KBlock.ScaleMin(block.AsSpan(4, 12), 4);
        Assert.InRange(dMin * m4, 0.95f, 1.05f);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 0.01)]
    [InlineData(GgmlType.Q4_0, 0.13)]
    [InlineData(GgmlType.Q4_K, 0.10)]
    [InlineData(GgmlType.BF16, 0.004)]
    [InlineData(GgmlType.F16, 0.0005)]
    public void RoundTripErrorIsBounded(GgmlType type, double relativeRms)
    {
        var x = Gaussian(256 * 16, 7, std: 0.02f);
        var data = new byte[GgmlTypes.ByteCount(type, x.Length)];
        GgmlQuant.Encode(type, x, data);
        var back = new float[x.Length];
        GgmlQuant.Decode(type, data, back);
        double error = 0, norm = 0;
        for (int i = 0; i < x.Length; i++)
        {
            error += (back[i] - x[i]) * (double)(back[i] - x[i]);
            norm += x[i] * (double)x[i];
        }
        Assert.InRange(Math.Sqrt(error / norm), 0, relativeRms);
    }

    [Fact]
    public void Q4_KBeatsQ4_0OnTheSameWeights()
    {
        var x = Gaussian(256 * 8, 11);
        double Error(GgmlType type)
        {
            var data = new byte[GgmlTypes.ByteCount(type, x.Length)];
            GgmlQuant.Encode(type, x, data);
            var back = new float[x.Length];
            GgmlQuant.Decode(type, data, back);
            return x.Select((v, i) => (double)(v - back[i]) * (v - back[i])).Sum();
        }
        Assert.True(Error(GgmlType.Q4_K) < Error(GgmlType.Q4_0));
    }

    [Theory]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_K)]
    public void GgufStoresAndReadsTheNewTypes(GgmlType type)
    {
        var x = Gaussian(4 * 512, 5);
        var writer = new GgufWriter();
        writer.AddTensor("w", [4, 512], x, type);
        string path = Path.Combine(folder, $"{type}.gguf");
        writer.Write(path);
        using var reader = GgufReader.Open(path);
        var info = reader.Tensor("w");
        Assert.Equal(type, info.Type);
        Assert.Equal(GgmlTypes.ByteCount(type, x.Length), info.ByteCount);
        var expected = new byte[info.ByteCount];
        GgmlQuant.Encode(type, x, expected);
        Assert.Equal(expected, reader.ReadRaw(info));
    }

    [Fact]
    public void RowsThatAreNotWholeSuperBlocksAreRefused()
    {
        var writer = new GgufWriter();
        var error = Assert.Throws<ArgumentException>(() => writer.AddTensor("w", [2, 128], new float[256], GgmlType.Q4_K));
        Assert.Contains("block size 256", error.Message);
    }
}
