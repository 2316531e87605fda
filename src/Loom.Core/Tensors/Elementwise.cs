using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Loom.Tensors;

/// <summary>Elementwise ops (residual add, product, scale) and full reductions (sum, mean).</summary>
public static class ElementwiseOps
{
    /// <summary>y = a + b, both the same shape (the residual connection).</summary>
    public static unsafe Tensor Add(this Tape tape, Tensor a, Tensor b)
    {
        CheckSameShape(a, b, "add");
        var y = tape.Allocate(a.Shape); // same shape as a
        Kernel.Run(Mode.Add, a.Pointer, b.Pointer, 0f, a.Length, y.Pointer, tape.Compute);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry { Op = AddBackward.Instance, Output = y, A = a, B = b });
        return y;
    }

    /// <summary>y = a ⊙ b, both the same shape.</summary>
    public static unsafe Tensor Mul(this Tape tape, Tensor a, Tensor b)
    {
        CheckSameShape(a, b, "mul");
        var y = tape.Allocate(a.Shape); // same shape as a
        Kernel.Run(Mode.Mul, a.Pointer, b.Pointer, 0f, a.Length, y.Pointer, tape.Compute);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry { Op = MulBackward.Instance, Output = y, A = a, B = b });
        return y;
    }

    /// <summary>y = a · factor.</summary>
    public static unsafe Tensor Scale(this Tape tape, Tensor a, float factor)
    {
        var y = tape.Allocate(a.Shape); // same shape as a
        Kernel.Run(Mode.Scale, a.Pointer, null, factor, a.Length, y.Pointer, tape.Compute);
        if (tape.NeedsGrad(a))
            tape.Record(new TapeEntry { Op = ScaleBackward.Instance, Output = y, A = a, F0 = factor });
        return y;
    }

    /// <summary>Σ a over all elements. Returns [1].</summary>
    public static Tensor Sum(this Tape tape, Tensor a) => Reduce(tape, a, 1f);

    /// <summary>Mean of a over all elements. Returns [1].</summary>
    public static Tensor Mean(this Tape tape, Tensor a) => Reduce(tape, a, 1f / Math.Max(a.Length, 1));

    static Tensor Reduce(Tape tape, Tensor a, float factor)
    {
        var y = tape.Allocate(1); // [1]
        y[0] = (float)(SumInDouble(a.Span) * factor);
        if (tape.NeedsGrad(a))
            tape.Record(new TapeEntry { Op = ReduceBackward.Instance, Output = y, A = a, F0 = factor });
        return y;
    }

    /// <summary>Σ values, vectorised in float over chunks of 1024 and accumulated in double across chunks.</summary>
    internal static double SumInDouble(ReadOnlySpan<float> values)
    {
        const int Chunk = 1024;
        double sum = 0;
        for (int i = 0; i < values.Length; i += Chunk)
            sum += TensorPrimitives.Sum(values.Slice(i, Math.Min(Chunk, values.Length - i)));
        return sum;
    }

    static void CheckSameShape(Tensor a, Tensor b, string op)
    {
        if (!a.SameShape(b)) throw new ArgumentException($"{op} needs equal shapes, got {a.ShapeText} and {b.ShapeText}");
    }

    sealed class AddBackward : IBackward
    {
        public static readonly AddBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dY = e.Output.Grad!;
            if (e.A!.RequiresGrad) Kernel.Run(Mode.AddInto, dY.Pointer, null, 0f, dY.Length, tape.GradOf(e.A).Pointer, tape.Compute);
            if (e.B!.RequiresGrad) Kernel.Run(Mode.AddInto, dY.Pointer, null, 0f, dY.Length, tape.GradOf(e.B).Pointer, tape.Compute);
        }
    }

    sealed class MulBackward : IBackward
    {
        public static readonly MulBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dY = e.Output.Grad!;
            if (e.A!.RequiresGrad) Kernel.Run(Mode.MulAddInto, dY.Pointer, e.B!.Pointer, 0f, dY.Length, tape.GradOf(e.A).Pointer, tape.Compute);
            if (e.B!.RequiresGrad) Kernel.Run(Mode.MulAddInto, dY.Pointer, e.A.Pointer, 0f, dY.Length, tape.GradOf(e.B).Pointer, tape.Compute);
        }
    }

    sealed class ScaleBackward : IBackward
    {
        public static readonly ScaleBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dY = e.Output.Grad!;
            Kernel.Run(Mode.ScaleAddInto, dY.Pointer, null, e.F0, dY.Length, tape.GradOf(e.A!).Pointer, tape.Compute);
        }
    }

    sealed class ReduceBackward : IBackward
    {
        public static readonly ReduceBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var dA = tape.GradOf(e.A!);
            Kernel.Run(Mode.AddScalarInto, null, null, e.Output.Grad![0] * e.F0, dA.Length, dA.Pointer, tape.Compute);
        }
    }

    enum Mode { Add, Mul, Scale, AddInto, MulAddInto, ScaleAddInto, AddScalarInto }

    /// <summary>One elementwise pass, split into blocks over a compute context's threads.</summary>
    sealed unsafe class Kernel : IParallelWork
    {
        [ThreadStatic] static Kernel? cached;
        Mode mode;
        float* a, b, y;
        float factor;
        int length, perBlock;

        public static void Run(Mode mode, float* a, float* b, float factor, int length, float* y, ComputeContext compute)
        {
            var k = cached ??= new Kernel();
            k.mode = mode; k.a = a; k.b = b; k.factor = factor; k.length = length; k.y = y;
            compute.Run(ComputeContext.Blocks(length, 1, out k.perBlock), k);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int start = index * perBlock, count = Math.Min(perBlock, length - start);
            var output = new Span<float>(y + start, count);
            var left = new ReadOnlySpan<float>(a + start, a is null ? 0 : count);
            var right = new ReadOnlySpan<float>(b + start, b is null ? 0 : count);
            switch (mode)
            {
                case Mode.Add: TensorPrimitives.Add(left, right, output); break;
                case Mode.Mul: TensorPrimitives.Multiply(left, right, output); break;
                case Mode.Scale: TensorPrimitives.Multiply(left, factor, output); break;
                case Mode.AddInto: TensorPrimitives.Add(output, left, output); break;
                case Mode.MulAddInto: TensorPrimitives.FusedMultiplyAdd(left, right, output, output); break;
                case Mode.ScaleAddInto: TensorPrimitives.FusedMultiplyAdd(left, factor, output, output); break;
                case Mode.AddScalarInto: TensorPrimitives.Add(output, factor, output); break;
            }
        }
    }
}
