using System.Numerics.Tensors;

namespace Loom.Tensors;

/// <summary>A bias added to every row (the bias of a Linear layer: Qwen2's q, k and v projections).</summary>
public static class BiasOps
{
    /// <summary>y = x + bias on every row: x [..., channels], bias [channels] → [..., channels].</summary>
    public static Tensor AddBias(this Tape tape, Tensor x, Tensor bias)
    {
        int channels = bias.Length;
        if (bias.Rank != 1 || x.Rank < 1 || x.Dim(-1) != channels)
            throw new ArgumentException($"add bias needs x [..., {channels}] and bias [{channels}], got {x.ShapeText} and {bias.ShapeText}");
        var y = tape.Allocate(x.Shape); // [..., channels]
        ReadOnlySpan<float> source = x.Span, b = bias.Span;
        var target = y.Span;
        for (int start = 0; start < source.Length; start += channels)
            TensorPrimitives.Add(source.Slice(start, channels), b, target.Slice(start, channels));
        if (tape.NeedsGrad(x, bias))
            tape.Record(new TapeEntry { Op = AddBiasBackward.Instance, Output = y, A = x, B = bias });
        return y;
    }

    sealed class AddBiasBackward : IBackward
    {
        public static readonly AddBiasBackward Instance = new();

        public void Backward(in TapeEntry e, Tape tape)
        {
            ReadOnlySpan<float> dY = e.Output.Grad!.Span; // [..., channels]
            if (e.A!.RequiresGrad)
            {
                var dX = tape.GradOf(e.A).Span;
                TensorPrimitives.Add(dX, dY, dX);
            }
            if (e.B!.RequiresGrad)
            {
                var dBias = tape.GradOf(e.B).Span; // [channels]
                for (int start = 0; start < dY.Length; start += dBias.Length)
                    TensorPrimitives.Add(dBias, dY.Slice(start, dBias.Length), dBias);
            }
        }
    }
}
