using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Loom.Models;
using Loom.Tensors;

namespace Loom.Tests.Models;

public sealed class SafeTensorsTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-st-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    static Tensor Filled(string name, int seed, params int[] shape)
    {
        var t = new Tensor(shape) { Name = name };
        var random = new Random(seed);
        for (int i = 0; i < t.Length; i++) t[i] = (float)(random.NextDouble() * 2 - 1);
        return t;
    }

    [Fact]
    public void RoundTripIsBitExact()
    {
        var a = Filled("model.embed_tokens.weight", 1, 7, 5);
        var b = Filled("model.norm.weight", 2, 5);
        var c = Filled("scalar", 3);
        c[0] = float.NaN;
        b[0] = 1e-40f; // subnormal survives
        string path = Path.Combine(folder, "m.safetensors");
        SafeTensors.Write(path, [a, b, c], new Dictionary<string, string> { ["format"] = "pt" });
        var read = SafeTensors.Read(path);
        Assert.Equal(["model.embed_tokens.weight", "model.norm.weight", "scalar"], read.Tensors.Keys);
        foreach (var t in new[] { a, b, c })
        {
            var r = read.Tensors[t.Name!];
            Assert.Equal(t.Shape.ToArray(), r.Shape.ToArray());
            for (int i = 0; i < t.Length; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(t[i]), BitConverter.SingleToInt32Bits(r[i]));
        }
        Assert.Equal("pt", read.Metadata["format"]);
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
    }

    [Fact]
    public void WrittenHeaderFollowsTheSpec()
    {
        var tensors = new[] { Filled("a", 1, 3), Filled("b", 2, 2, 3), Filled("c", 3, 1, 1, 1, 2) };
        string path = Path.Combine(folder, "m.safetensors");
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        Assert.Equal(header.TrimEnd(' ').Length + (header.Length - header.TrimEnd(' ').Length), header.Length);
        Assert.EndsWith("}", header.TrimEnd(' '));
        using var doc = JsonDocument.Parse(header);
        Assert.Equal("pt", doc.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        long expectedBegin = 0;
        foreach (var t in tensors)
        {
            var e = doc.RootElement.GetProperty(t.Name!);
            Assert.Equal("F32", e.GetProperty("dtype").GetString());
            Assert.Equal(t.Shape.ToArray(), e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray());
            var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            Assert.Equal(expectedBegin, offsets[0]);
            Assert.Equal(expectedBegin + t.Length * 4, offsets[1]);
            for (int i = 0; i < t.Length; i++)
                Assert.Equal(t[i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + (int)n + (int)offsets[0] + i * 4)));
            expectedBegin = offsets[1];
        }
        Assert.Equal(bytes.Length, 8 + (long)n + expectedBegin);
    }

    /// <summary>Builds a file by hand, as another writer would.</summary>
    static byte[] Build(string header, byte[] data, bool pad = true)
    {
        var h = Encoding.UTF8.GetBytes(header);
        int length = pad ? (h.Length + 7) / 8 * 8 : h.Length;
        var bytes = new byte[8 + length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)length);
        h.CopyTo(bytes, 8);
        for (int i = h.Length; i < length; i++) bytes[8 + i] = (byte)' ';
        data.CopyTo(bytes, 8 + length);
        return bytes;
    }

    [Fact]
    public void HalfAndBFloat16ConvertToKnownValues()
    {
        ushort[] half = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0x7C00, 0x8000];
        float[] halfExpected = [1f, -2f, 65504f, 5.9604645e-08f, 0.333251953125f, float.PositiveInfinity, -0f];
        ushort[] bf = [0x3F80, 0xC040, 0x4049, 0x0001, 0xFF80];
        float[] bfExpected = [1f, -3f, 3.140625f, 9.18354962e-41f, float.NegativeInfinity];
        var data = new byte[(half.Length + bf.Length) * 2];
        for (int i = 0; i < half.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i * 2), half[i]);
        for (int i = 0; i < bf.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan((half.Length + i) * 2), bf[i]);
        string header = $$$"""{"h":{"dtype":"F16","shape":[{{{half.Length}}}],"data_offsets":[0,{{{half.Length * 2}}}]},"b":{"dtype":"BF16","shape":[{{{bf.Length}}}],"data_offsets":[{{{half.Length * 2}}},{{{data.Length}}}]}}""";
        string path = Path.Combine(folder, "h.safetensors");
        File.WriteAllBytes(path, Build(header, data));
        var read = SafeTensors.Read(path);
        Assert.Equal(halfExpected, read.Tensors["h"].Span.ToArray());
        Assert.Equal(bfExpected, read.Tensors["b"].Span.ToArray());
        Assert.True(BitConverter.SingleToInt32Bits(read.Tensors["h"][6]) < 0);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}""", 16, "hole")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "needs 12")]
    [InlineData("""{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8, "dtype I64")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""", 8, "not valid JSON")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "truncated")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8, "not described")]
    [InlineData("""[1]""", 0, "does not start with")]
    public void BadFilesGiveOneLineErrors(string header, int dataBytes, string expected)
    {
        string path = Path.Combine(folder, "bad.safetensors");
        File.WriteAllBytes(path, Build(header, new byte[dataBytes]));
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TruncatedHeaderAndTinyFileAreReported()
    {
        string path = Path.Combine(folder, "bad.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path)).Message);
        var bytes = Build("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4]);
        File.WriteAllBytes(path, bytes[..20]);
        Assert.Contains("header length", Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path)).Message);
    }

    [Fact]
    public void ShardedModelIsReadThroughItsIndex()
    {
        var a = Filled("model.layers.0.mlp.up_proj.weight", 1, 4, 3);
        var b = Filled("lm_head.weight", 2, 5, 3);
        SafeTensors.Write(Path.Combine(folder, "model-00001-of-00002.safetensors"), [a]);
        SafeTensors.Write(Path.Combine(folder, "model-00002-of-00002.safetensors"), [b]);
        File.WriteAllText(Path.Combine(folder, SafeTensors.IndexFileName), """
            {"metadata":{"total_size":108},"weight_map":{"lm_head.weight":"model-00002-of-00002.safetensors","model.layers.0.mlp.up_proj.weight":"model-00001-of-00002.safetensors"}}
            """);
        var read = SafeTensors.ReadModel(folder);
        Assert.Equal(a.Span.ToArray(), read.Tensors[a.Name!].Span.ToArray());
        Assert.Equal(b.Span.ToArray(), read.Tensors[b.Name!].Span.ToArray());

        File.WriteAllText(Path.Combine(folder, SafeTensors.IndexFileName), """
            {"weight_map":{"lm_head.weight":"model-00001-of-00002.safetensors"}}
            """);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.ReadModel(folder));
        Assert.Contains("'lm_head.weight'", e.Message);
    }
}
