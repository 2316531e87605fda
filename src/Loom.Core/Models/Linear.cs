using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// Every projection of the model, in the Hugging Face Linear layout W [out, in]: y = x·Wᵀ, plus
/// scale·(x·Aᵀ)·Bᵀ for each unmerged LoRA adapter on W (a merged adapter is inside W already). Training,
/// prefill, decode and the policy sampler all project through here, so adapters count the same on every path.
/// Projections of one input share one pass over it (<see cref="ProjectionOps"/>).
/// </summary>
public static class Linear
{
    /// <summary>x [..., in] → [..., out].</summary>
    public static Tensor Forward(Tape tape, Tensor x, Tensor weight, List<LoraAdapter> adapters)
    {
        var y = tape.Project(x, weight); // [..., out]
        return Adapt(tape, x, weight, y, adapters); // [..., out]
    }

    /// <summary>x [..., in] → ([..., out0], [..., out1]).</summary>
    public static (Tensor Y0, Tensor Y1) Forward(Tape tape, Tensor x, Tensor w0, Tensor w1, List<LoraAdapter> adapters)
    {
        var (y0, y1) = tape.Project(x, w0, w1); // [..., out0], [..., out1]
        return (Adapt(tape, x, w0, y0, adapters), Adapt(tape, x, w1, y1, adapters));
    }

    /// <summary>x [..., in] → ([..., out0], [..., out1], [..., out2]).</summary>
    public static (Tensor Y0, Tensor Y1, Tensor Y2) Forward(Tape tape, Tensor x, Tensor w0, Tensor w1, Tensor w2, List<LoraAdapter> adapters)
    {
        var (y0, y1, y2) = tape.Project(x, w0, w1, w2); // [..., out0], [..., out1], [..., out2]
        return (Adapt(tape, x, w0, y0, adapters), Adapt(tape, x, w1, y1, adapters), Adapt(tape, x, w2, y2, adapters));
    }

    /// <summary>y [..., out] plus the update of each adapter on <paramref name="weight"/>.</summary>
    static Tensor Adapt(Tape tape, Tensor x, Tensor weight, Tensor y, List<LoraAdapter> adapters)
    {
        foreach (var adapter in adapters) // a List: the enumerator is a struct, nothing is allocated
        {
            if (!ReferenceEquals(adapter.Weight, weight)) continue;
            var down = tape.Project(x, adapter.A); // [..., rank]
            var up = tape.Project(down, adapter.B); // [..., out]
            y = tape.Add(y, tape.Scale(up, adapter.Scale)); // [..., out]
        }
        return y;
    }
}
