using System.Buffers.Binary;

namespace Loom.Fuzzing;

/// <summary>Where the fields of the binary formats sit in an input, found by walking it as the reader would (best effort: the walk stops where the input stops making sense).</summary>
public static class FormatFields
{
    const int MaxFields = 4096;

    /// <summary>GGUF: magic, version, counts, every key and string length, value type, array element type and length, scalar values, and each tensor's dimension count, dimensions, type and offset.</summary>
    public static IReadOnlyList<FieldSpan> Gguf(byte[] data)
    {
        var fields = new List<FieldSpan>();
        int position = 0;
        bool Field(int width)
        {
            if (position + width > data.Length || fields.Count >= MaxFields) return false;
            fields.Add(new FieldSpan(position, width));
            position += width;
            return true;
        }
        ulong Read(int at, int width) => width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at)) : BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(at));
        bool String()
        {
            int at = position;
            if (!Field(8)) return false;
            ulong length = Read(at, 8);
            if (length > (ulong)(data.Length - position)) return false;
            position += (int)length;
            return true;
        }
        bool Value(uint type, int depth)
        {
            switch (type)
            {
                case 0 or 1 or 7: return Field(1);
                case 2 or 3: return Field(2);
                case 4 or 5 or 6: return Field(4);
                case 10 or 11 or 12: return Field(8);
                case 8: return String();
                case 9:
                {
                    if (depth > 2) return false;
                    int typeAt = position;
                    if (!Field(4)) return false;
                    uint elementType = (uint)Read(typeAt, 4);
                    int countAt = position;
                    if (!Field(8)) return false;
                    ulong count = Read(countAt, 8);
                    for (ulong i = 0; i < count; i++)
                        if (!Value(elementType, depth + 1)) return false;
                    return true;
                }
                default: return false;
            }
        }

        if (!Field(4) || !Field(4)) return fields;
        int tensorCountAt = position;
        if (!Field(8)) return fields;
        int keyCountAt = position;
        if (!Field(8)) return fields;
        ulong tensorCount = Read(tensorCountAt, 8), keyCount = Read(keyCountAt, 8);
        for (ulong k = 0; k < keyCount; k++)
        {
            if (!String()) return fields;
            int typeAt = position;
            if (!Field(4) || !Value((uint)Read(typeAt, 4), 0)) return fields;
        }
        for (ulong t = 0; t < tensorCount; t++)
        {
            if (!String()) return fields;
            int dimsAt = position;
            if (!Field(4)) return fields;
            uint dimensions = (uint)Read(dimsAt, 4);
            for (uint d = 0; d < Math.Min(dimensions, 8u); d++)
                if (!Field(8)) return fields;
            if (!Field(4) || !Field(8)) return fields;
        }
        return fields;
    }

    /// <summary>safetensors: the 8-byte header length (the JSON header itself gets the text mutations).</summary>
    public static IReadOnlyList<FieldSpan> SafeTensors(byte[] data) => data.Length >= 8 ? [new FieldSpan(0, 8), new FieldSpan(0, 4), new FieldSpan(4, 4)] : [];
}
