using System.Collections;
using System.Globalization;

namespace Loom.Models.Gguf;

/// <summary>
/// One typed GGUF metadata value: a scalar, a string, or an array of one element type.
/// Scalars are held as their CLR type (byte, sbyte, ushort, short, uint, int, float, bool,
/// string, ulong, long, double); arrays as a CLR array of that type (nested arrays as
/// <see cref="GgufValue"/>[]). The exact type survives a write/read round trip.
/// </summary>
public sealed class GgufValue : IEquatable<GgufValue>
{
    GgufValue(GgufValueType type, GgufValueType elementType, object value)
    {
        Type = type;
        ElementType = elementType;
        Value = value;
    }

    public GgufValueType Type { get; }

    /// <summary>Element type of an array; equal to <see cref="Type"/> for a scalar.</summary>
    public GgufValueType ElementType { get; }

    public object Value { get; }

    public static GgufValue UInt8(byte value) => new(GgufValueType.UInt8, GgufValueType.UInt8, value);
    public static GgufValue Int8(sbyte value) => new(GgufValueType.Int8, GgufValueType.Int8, value);
    public static GgufValue UInt16(ushort value) => new(GgufValueType.UInt16, GgufValueType.UInt16, value);
    public static GgufValue Int16(short value) => new(GgufValueType.Int16, GgufValueType.Int16, value);
    public static GgufValue UInt32(uint value) => new(GgufValueType.UInt32, GgufValueType.UInt32, value);
    public static GgufValue Int32(int value) => new(GgufValueType.Int32, GgufValueType.Int32, value);
    public static GgufValue Float32(float value) => new(GgufValueType.Float32, GgufValueType.Float32, value);
    public static GgufValue Bool(bool value) => new(GgufValueType.Bool, GgufValueType.Bool, value);
    public static GgufValue String(string value) => new(GgufValueType.String, GgufValueType.String, value);
    public static GgufValue UInt64(ulong value) => new(GgufValueType.UInt64, GgufValueType.UInt64, value);
    public static GgufValue Int64(long value) => new(GgufValueType.Int64, GgufValueType.Int64, value);
    public static GgufValue Float64(double value) => new(GgufValueType.Float64, GgufValueType.Float64, value);

    public static GgufValue Array(string[] values) => new(GgufValueType.Array, GgufValueType.String, values);
    public static GgufValue Array(int[] values) => new(GgufValueType.Array, GgufValueType.Int32, values);
    public static GgufValue Array(uint[] values) => new(GgufValueType.Array, GgufValueType.UInt32, values);
    public static GgufValue Array(float[] values) => new(GgufValueType.Array, GgufValueType.Float32, values);
    public static GgufValue Array(long[] values) => new(GgufValueType.Array, GgufValueType.Int64, values);
    public static GgufValue Array(ulong[] values) => new(GgufValueType.Array, GgufValueType.UInt64, values);
    public static GgufValue Array(double[] values) => new(GgufValueType.Array, GgufValueType.Float64, values);
    public static GgufValue Array(byte[] values) => new(GgufValueType.Array, GgufValueType.UInt8, values);
    public static GgufValue Array(sbyte[] values) => new(GgufValueType.Array, GgufValueType.Int8, values);
    public static GgufValue Array(short[] values) => new(GgufValueType.Array, GgufValueType.Int16, values);
    public static GgufValue Array(ushort[] values) => new(GgufValueType.Array, GgufValueType.UInt16, values);
    public static GgufValue Array(bool[] values) => new(GgufValueType.Array, GgufValueType.Bool, values);

    /// <summary>An array of arrays (the spec allows nesting); every element must itself be an array.</summary>
    public static GgufValue Array(GgufValue[] values)
    {
        foreach (var v in values)
            if (v.Type != GgufValueType.Array)
                throw new ArgumentException("a nested GGUF array holds only arrays", nameof(values));
        return new(GgufValueType.Array, GgufValueType.Array, values);
    }

    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Number of elements of an array.</summary>
    public int Count => Value is System.Array a ? a.Length : throw new InvalidOperationException($"a {Type} value is not an array");

    /// <summary>An integer scalar of any width as a long (unsigned 64-bit values above long.MaxValue throw).</summary>
    public long AsInt64() => Value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => v <= long.MaxValue ? (long)v : throw new OverflowException($"{v} does not fit a long"),
        _ => throw new InvalidCastException($"a {Type} value is not an integer"),
    };

    /// <summary>A float or integer scalar as a double.</summary>
    public double AsDouble() => Value switch
    {
        float v => v, double v => v,
        _ => Type is GgufValueType.Bool or GgufValueType.String or GgufValueType.Array
            ? throw new InvalidCastException($"a {Type} value is not a number")
            : AsInt64(),
    };

    public string AsString() => Value as string ?? throw new InvalidCastException($"a {Type} value is not a string");

    public bool AsBool() => Value is bool b ? b : throw new InvalidCastException($"a {Type} value is not a bool");

    /// <summary>The elements of an array of <typeparamref name="T"/> (string, int, float, ...).</summary>
    public T[] AsArray<T>() => Value as T[] ?? throw new InvalidCastException(
        IsArray ? $"an array of {ElementType} is not an array of {typeof(T).Name}" : $"a {Type} value is not an array");

    public bool Equals(GgufValue? other)
    {
        if (other is null || other.Type != Type || other.ElementType != ElementType)
            return false;
        return Type == GgufValueType.Array
            ? StructuralComparisons.StructuralEqualityComparer.Equals(BitsOf(Value), BitsOf(other.Value))
            : Equals(BitsOf(Value), BitsOf(other.Value));
    }

    // Floats compare by bit pattern, so NaN equals itself and -0 differs from +0: a round trip is exact.
    static object BitsOf(object value) => value switch
    {
        float f => BitConverter.SingleToInt32Bits(f),
        double d => BitConverter.DoubleToInt64Bits(d),
        float[] fs => System.Array.ConvertAll(fs, BitConverter.SingleToInt32Bits),
        double[] ds => System.Array.ConvertAll(ds, BitConverter.DoubleToInt64Bits),
        _ => value,
    };

    public override bool Equals(object? obj) => obj is GgufValue v && Equals(v);

    public override int GetHashCode() => HashCode.Combine(Type, ElementType, IsArray ? Count : Value.GetHashCode());

    public override string ToString() => IsArray
        ? $"[{ElementType} x {Count}]"
        : Value is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : Value.ToString() ?? "";
}
