using System.Buffers.Binary;
using System.Text;
using Loom.Models.Gguf;

namespace Loom.Tests.Models;

public sealed class GgufFormatTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("loom-gguf-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    string PathOf(string name) => Path.Combine(folder, name);

    static float[] RandomFloats(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(random.NextDouble() * 4 - 2);
        return values;
    }

    static GgufWriter EveryKind()
    {
        var writer = new GgufWriter();
        writer.Set("t.u8", GgufValue.UInt8(250));
        writer.Set("t.i8", GgufValue.Int8(-7));
        writer.Set("t.u16", GgufValue.UInt16(65000));
        writer.Set("t.i16", GgufValue.Int16(-30000));
        writer.Set("t.u32", GgufValue.UInt32(4_000_000_000));
        writer.Set("t.i32", GgufValue.Int32(-2_000_000_000));
        writer.Set("t.f32", GgufValue.Float32(float.NaN));
        writer.Set("t.f32neg0", GgufValue.Float32(-0f));
        writer.Set("t.bool", GgufValue.Bool(true));
        writer.Set("t.string", GgufValue.String("héllo, wörld ✓ 🦙"));
        writer.Set("t.empty", GgufValue.String(""));
        writer.Set("t.u64", GgufValue.UInt64(ulong.MaxValue));
        writer.Set("t.i64", GgufValue.Int64(long.MinValue));
        writer.Set("t.f64", GgufValue.Float64(Math.PI));
        writer.Set("t.strings", GgufValue.Array(["a", "Ġb", "", "ĊĊ"]));
        writer.Set("t.ints", GgufValue.Array([1, -2, int.MaxValue]));
        writer.Set("t.floats", GgufValue.Array([1.5f, float.NegativeInfinity, 1e-40f]));
        writer.Set("t.bools", GgufValue.Array([true, false]));
        writer.Set("t.bytes", GgufValue.Array(new byte[] { 0, 255 }));
        writer.Set("t.doubles", GgufValue.Array([double.Epsilon]));
        writer.Set("t.nested", GgufValue.Array([GgufValue.Array([1, 2]), GgufValue.Array(["x"])]));
        writer.Set("t.noitems", GgufValue.Array(Array.Empty<string>()));
        return writer;
    }

    [Fact]
    public void F32RoundTripIsBitIdentical()
    {
        var random = new Random(1);
        var writer = EveryKind();
        var shapes = new[] { new[] { 7 }, [3, 5], [2, 3, 4], [2, 1, 3, 2], [64, 32] };
        var data = new Dictionary<string, float[]>();
        for (int i = 0; i < shapes.Length; i++)
        {
            int count = shapes[i].Aggregate(1, (a, b) => a * b);
            var values = RandomFloats(random, count);
            values[0] = float.NaN;
            if (count > 2)
                values[1] = 1e-42f; // subnormal
            data[$"tensor.{i}"] = values;
            writer.AddTensor($"tensor.{i}", shapes[i], values, GgmlType.F32);
        }
        string path = PathOf("all.gguf");
        writer.Write(path);

        using var reader = GgufReader.Open(path);
        Assert.Equal(3u, reader.Version);
        Assert.Equal(32, reader.Alignment);
        Assert.Equal(writer.Metadata.Select(kv => kv.Key), reader.Metadata.Select(kv => kv.Key));
        foreach (var (key, value) in writer.Metadata)
            Assert.True(value.Equals(reader.Get(key)), $"metadata '{key}' changed: {value} -> {reader.Get(key)}");
        Assert.Equal(shapes.Length, reader.Tensors.Count);
        for (int i = 0; i < shapes.Length; i++)
        {
            var info = reader.Tensors[i];
            Assert.Equal($"tensor.{i}", info.Name);
            Assert.Equal(shapes[i], info.Shape);
            Assert.Equal(shapes[i].Reverse().Select(d => (long)d), info.Dimensions);
            Assert.Equal(0ul, (ulong)(reader.DataOffset + (long)info.Offset) % 32);
            var back = reader.ReadFloats(info);
            Assert.Equal(data[info.Name].Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
        }
        Assert.Equal(GgufValueType.UInt32, reader.Get("t.u32").Type);
        Assert.Equal(GgufValueType.Array, reader.Get("t.nested").Type);
        Assert.Equal("héllo, wörld ✓ 🦙", reader.GetString("t.string"));
    }

    [Fact]
    public void BytesFollowTheSpecLayout()
    {
        var writer = new GgufWriter();
        writer.Set("k", GgufValue.Array([7, 8]));
        writer.AddTensor("w", [2, 3], [1, 2, 3, 4, 5, 6], GgmlType.F32);
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        var bytes = stream.ToArray();

        var expected = new List<byte>();
        void U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); expected.AddRange(b); }
        void U64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); expected.AddRange(b); }
        void Str(string s) { U64((ulong)s.Length); expected.AddRange(Encoding.UTF8.GetBytes(s)); }
        expected.AddRange("GGUF"u8.ToArray());
        U32(3); U64(1); U64(2);
        Str("general.alignment"); U32(4); U32(32);
        Str("k"); U32(9); U32(5); U64(2); U32(7); U32(8);
        Str("w"); U32(2); U64(3); U64(2); U32(0); U64(0); // dims fastest first: [3, 2]
        while (expected.Count % 32 != 0)
            expected.Add(0);
        foreach (var f in new float[] { 1, 2, 3, 4, 5, 6 })
            U32(BitConverter.SingleToUInt32Bits(f));
        while (expected.Count % 32 != 0)
            expected.Add(0);
        Assert.Equal(expected.ToArray(), bytes);
    }

    /// <summary>ggml's quantize_row_q8_0_ref, written out plainly.</summary>
    static byte[] ReferenceQ8(float[] x)
    {
        var output = new byte[x.Length / 32 * 34];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            float d = amax / 127;
            float id = d != 0 ? 1 / d : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(b * 34), BitConverter.HalfToUInt16Bits((Half)d));
            for (int j = 0; j < 32; j++)
                output[b * 34 + 2 + j] = (byte)(sbyte)MathF.Round(x[b * 32 + j] * id, MidpointRounding.AwayFromZero);
        }
        return output;
    }

    [Fact]
    public void Q8MatchesTheScalarReferenceAndItsErrorBound()
    {
        var random = new Random(2);
        var x = RandomFloats(random, 32 * 64);
        for (int i = 0; i < 32; i++)
            x[32 + i] = 0; // an all-zero block
        for (int i = 0; i < 32; i++)
            x[64 + i] = (float)(random.NextDouble() * 1e-3); // a small-magnitude block
        var quantised = new byte[GgmlTypes.ByteCount(GgmlType.Q8_0, x.Length)];
        Assert.Equal(64 * 34, quantised.Length);
        GgmlQuant.Encode(GgmlType.Q8_0, x, quantised);
        Assert.Equal(ReferenceQ8(x), quantised);

        var back = new float[x.Length];
        GgmlQuant.Decode(GgmlType.Q8_0, quantised, back);
        for (int b = 0; b < 64; b++)
        {
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(quantised.AsSpan(b * 34)));
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            // Layout: scale first, then 32 int8; x' = d * q. Error: half a step, plus the scale's f16 rounding
            // (relative 2^-11, or 2^-25 absolute among f16 subnormals) times |q| <= 127.
            float scaleError = amax / 127 / 2048 + MathF.Pow(2, -25);
            Assert.Equal(amax / 127, d, scaleError);
            for (int j = 0; j < 32; j++)
            {
                sbyte q = (sbyte)quantised[b * 34 + 2 + j];
                Assert.Equal(d * q, back[b * 32 + j]);
                Assert.True(Math.Abs(back[b * 32 + j] - x[b * 32 + j]) <= amax / 127 * 0.5f + 127 * scaleError,
                    $"block {b} element {j}: {x[b * 32 + j]} -> {back[b * 32 + j]}");
            }
        }
        Assert.All(back.AsSpan(32, 32).ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Q8RoundsHalvesAwayFromZero()
    {
        var x = new float[32];
        x[0] = 127f; // scale 1
        x[1] = 2.5f;
        x[2] = -2.5f;
        x[3] = 0.5f;
        x[4] = -127f;
        var q = new byte[34];
        GgmlQuant.QuantizeQ8(x, q);
        Assert.Equal((Half)1f, BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(q)));
        Assert.Equal(new sbyte[] { 127, 3, -3, 1, -127 }, q.AsSpan(2, 5).ToArray().Select(b => (sbyte)b));
    }

    [Fact]
    public void F16RoundsToNearestEven()
    {
        float[] x = [1f, 1f + 1f / 2048, 1f + 3f / 2048, 65504f, 70000f, -4e-8f, 0.1f];
        var stored = new byte[x.Length * 2];
        GgmlQuant.Encode(GgmlType.F16, x, stored);
        var back = new float[x.Length];
        GgmlQuant.Decode(GgmlType.F16, stored, back);
        Assert.Equal([1f, 1f, 1f + 4f / 2048, 65504f, float.PositiveInfinity, -5.9604645e-8f, 0.099975586f], back);
    }

    string WriteSmall()
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", GgufValue.String("llama"));
        writer.Set("some.strings", GgufValue.Array(["abc", "def"]));
        writer.AddTensor("w", [4, 8], RandomFloats(new Random(3), 32), GgmlType.F32);
        string path = PathOf("small.gguf");
        writer.Write(path);
        return path;
    }

    static void AssertOneLine(GgufException e, string path, string fragment)
    {
        Assert.StartsWith(path + ": ", e.Message);
        Assert.True(e.Message.Contains(fragment), $"\"{e.Message}\" lacks \"{fragment}\"");
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TruncatedFilesNameTheFieldOrTensor()
    {
        string path = WriteSmall();
        var bytes = File.ReadAllBytes(path);
        string cut = PathOf("cut.gguf");
        // Every cut inside the header, the metadata, the tensor infos or the data is reported, never a crash.
        for (int length = 0; length < bytes.Length; length++)
        {
            if (length >= bytes.Length - 28 && length < bytes.Length && bytes.AsSpan(length).IndexOfAnyExcept((byte)0) < 0)
                continue; // only trailing padding cut off: still a complete file
            File.WriteAllBytes(cut, bytes.AsSpan(0, length).ToArray());
            var e = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(cut); });
            AssertOneLine(e, cut, "truncated");
        }
        File.WriteAllBytes(cut, bytes.AsSpan(0, bytes.Length - 40).ToArray());
        var data = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(cut); });
        AssertOneLine(data, cut, "tensor 'w'");
        int name = bytes.AsSpan().IndexOf(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, (byte)'w' });
        File.WriteAllBytes(cut, bytes.AsSpan(0, name + 9 + 2).ToArray());
        var info = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(cut); });
        AssertOneLine(info, cut, "truncated at byte " + (name + 11) + " while reading dimension count of tensor 'w'");
        File.WriteAllBytes(cut, bytes.AsSpan(0, 16).ToArray());
        var count = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(cut); });
        AssertOneLine(count, cut, "truncated: tensor count is 1, but only 0 bytes follow");
    }

    [Fact]
    public void WrongMagicAndVersionAreNamed()
    {
        string path = WriteSmall();
        var bytes = File.ReadAllBytes(path);
        string bad = PathOf("bad.gguf");
        var magic = (byte[])bytes.Clone();
        "PK\x03\x04"u8.CopyTo(magic);
        File.WriteAllBytes(bad, magic);
        var e = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(bad); });
        AssertOneLine(e, bad, "not a GGUF file (magic 'PK\\x03\\x04'");

        var version = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(version.AsSpan(4), 2);
        File.WriteAllBytes(bad, version);
        e = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(bad); });
        AssertOneLine(e, bad, "unsupported GGUF version 2");

        var missing = PathOf("missing.gguf");
        e = Assert.Throws<GgufException>(() => { using var r = GgufReader.Open(missing); });
        AssertOneLine(e, missing, "cannot open");
    }

    [Fact]
    public void UnknownTensorTypeIsReportedWhenRead()
    {
        var writer = new GgufWriter();
        writer.AddTensorData("q4", [32], 3, new byte[20]);
        string path = PathOf("q4.gguf");
        writer.Write(path);
        using var reader = GgufReader.Open(path);
        var e = Assert.Throws<GgufException>(() => reader.ReadFloats("q4"));
        AssertOneLine(e, path, "tensor 'q4' has unsupported type q4_1");
    }
}
