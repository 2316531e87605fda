using System.Runtime.CompilerServices;

namespace Loom.Tensors;

/// <summary>
/// A float32 tensor: row-major, contiguous, at most 4 dimensions. Storage lives on the
/// pinned object heap, so kernels may take raw pointers to it without pinning.
/// Parameters are created with <see cref="Parameter"/>; activations come from a <see cref="Tape"/>,
/// which reuses them from step to step. Storage is allocated on first use, so a weight that is then held
/// quantised (<see cref="HoldQuantized"/>) never takes float32 memory.
/// </summary>
public sealed class Tensor
{
    float[]? data;
    int[] shape;

    /// <summary>Gradient of the loss with respect to this tensor, same shape; null until backward reaches it.</summary>
    public Tensor? Grad { get; internal set; }

    /// <summary>Whether backward computes a gradient for this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>A name for errors and checkpoints (for parameters: the Hugging Face tensor name).</summary>
    public string? Name { get; set; }

    /// <summary>Elements in use.</summary>
    public int Length { get; private set; }

    /// <summary>Set when the tensor belongs to a tape's arena (its gradient then comes from the arena too).</summary>
    internal bool IsActivation { get; init; }

    /// <summary>Tape step in which <see cref="Grad"/> was last attached (activations only).</summary>
    internal int GradStep { get; set; } = -1;

    public Tensor(params ReadOnlySpan<int> shape)
    {
        this.shape = shape.ToArray();
        Length = CheckedLength(this.shape);
    }

    /// <summary>
    /// The weight's values in a ggml block format when it is held quantised (inference and a frozen base only:
    /// its float32 values are not kept, and <see cref="Span"/> throws); null for a float32 tensor.
    /// </summary>
    public QuantizedMatrix? Quantized { get; private set; }

    /// <summary>A frozen [rows, columns] weight held as <paramref name="matrix"/>, with no float32 storage.</summary>
    public static Tensor FromQuantized(string name, QuantizedMatrix matrix)
    {
        var t = new Tensor(matrix.Rows, matrix.Columns) { Name = name };
        t.HoldQuantized(matrix);
        return t;
    }

    /// <summary>Makes this [rows, columns] weight hold <paramref name="matrix"/> instead of float32 values (dropped), frozen.</summary>
    public void HoldQuantized(QuantizedMatrix matrix)
    {
        if (Rank != 2 || shape[0] != matrix.Rows || shape[1] != matrix.Columns)
            throw new ArgumentException($"tensor '{Name}' {ShapeText} cannot hold a quantised [{matrix.Rows}, {matrix.Columns}]", nameof(matrix));
        Quantized = matrix;
        data = null;
        Grad = null;
        RequiresGrad = false;
    }

    /// <summary>The float32 storage, allocated (zeroed) on first use.</summary>
    float[] Data
    {
        get
        {
            var current = data;
            if (current is not null) return current;
            if (Quantized is not null)
                throw new InvalidOperationException($"tensor '{Name}' is held quantised ({Quantized.Type}); its float32 values are not kept");
            Interlocked.CompareExchange(ref data, GC.AllocateArray<float>(Math.Max(Length, 1), pinned: true), null);
            return data!;
        }
    }

    /// <summary>A trainable tensor (gradient kept between backward calls until zeroed).</summary>
    public static Tensor Parameter(string name, params ReadOnlySpan<int> shape) =>
        new(shape) { Name = name, RequiresGrad = true };

    /// <summary>A tensor holding a copy of <paramref name="values"/> in the given shape.</summary>
    public static Tensor From(ReadOnlySpan<float> values, params ReadOnlySpan<int> shape)
    {
        var t = new Tensor(shape);
        if (values.Length != t.Length)
            throw new ArgumentException($"{values.Length} values do not fill shape [{string.Join(", ", shape.ToArray())}]", nameof(values));
        values.CopyTo(t.Span);
        return t;
    }

    public ReadOnlySpan<int> Shape => shape;
    public int Rank => shape.Length;

    /// <summary>Size of one axis; negative axes count from the end.</summary>
    public int Dim(int axis) => shape[axis < 0 ? shape.Length + axis : axis];

    /// <summary>Product of all axes but the last: the number of rows of the row-major matrix view.</summary>
    public int Rows => shape.Length == 0 ? 1 : Length / Math.Max(shape[^1], 1);

    public Span<float> Span => Data.AsSpan(0, Length);

    internal int Capacity => Data.Length;

    internal unsafe float* Pointer => (float*)Unsafe.AsPointer(ref Data[0]);

    public float this[int index]
    {
        get => Span[index];
        set => Span[index] = value;
    }

    /// <summary>The single value of a one-element tensor (a loss).</summary>
    public float Scalar() => Length == 1 ? Data[0] : throw new InvalidOperationException($"Scalar() needs one element, the tensor has {Length}");

    public void Zero() => Span.Clear();

    /// <summary>
    /// Makes this tensor read and write <paramref name="source"/>'s values (one storage for both) while keeping a
    /// gradient of its own: a model replica that trains on other rows of the batch than the model it shares weights with.
    /// </summary>
    internal void ShareValues(Tensor source)
    {
        if (!SameShape(source)) throw new ArgumentException($"{ToString()} cannot share the values of {source}: the shapes differ", nameof(source));
        if (source.Quantized is { } matrix) HoldQuantized(matrix);
        else data = source.Data;
    }

    /// <summary>The gradient tensor, created zeroed if absent (parameters keep theirs until <see cref="ZeroGrad"/>).</summary>
    public Tensor EnsureGrad()
    {
        Grad ??= new Tensor(shape);
        return Grad;
    }

    public void ZeroGrad() => Grad?.Zero();

    public string ShapeText => "[" + string.Join(", ", shape) + "]";

    public override string ToString() => $"{Name ?? "tensor"}{ShapeText}";

    /// <summary>Gives this storage a new shape; reuses the arrays when they are large enough (arena reuse).</summary>
    internal void Reshape(ReadOnlySpan<int> newShape)
    {
        if (shape.Length != newShape.Length) shape = new int[newShape.Length];
        newShape.CopyTo(shape);
        Length = CheckedLength(shape);
        if (data is not null && data.Length < Length) data = GC.AllocateArray<float>(Length, pinned: true);
    }

    /// <summary>Whether both tensors have the same shape.</summary>
    public bool SameShape(Tensor other) => Shape.SequenceEqual(other.Shape);

    static int CheckedLength(int[] shape)
    {
        if (shape.Length > 4) throw new ArgumentException($"at most 4 dimensions, got {shape.Length}");
        long length = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in [{string.Join(", ", shape)}]");
            length *= d;
        }
        if (length > Array.MaxLength) throw new ArgumentException($"tensor [{string.Join(", ", shape)}] is too large");
        return (int)length;
    }
}
