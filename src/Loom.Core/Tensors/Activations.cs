using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Loom.Tensors;

/// <summary>Activation functions: SwiGLU (the Llama MLP's gate).</summary>
public static class ActivationOps
{
    /// <summary>y = silu(gate) ⊙ up, silu(g) = g·σ(g). gate and up have the same shape [..., hidden]; so has y.</summary>
    public static unsafe Tensor SwiGlu(this Tape tape, Tensor gate, Tensor up)
    {
        if (!gate.SameShape(up)) throw new ArgumentException($"swiglu needs equal shapes, got gate {gate.ShapeText} and up {up.ShapeText}");
        var y = tape.Allocate(gate.Shape); // [..., hidden]
        SwiGluJob.Run(gate.Pointer, up.Pointer, null, gate.Length, y.Pointer, null, null, tape.Compute);
        if (tape.NeedsGrad(gate, up))
            tape.Record(new TapeEntry { Op = SwiGluBackward.Instance, Output = y, A = gate, B = up });
        return y;
    }

    sealed class SwiGluBackward : IBackward
    {
        public static readonly SwiGluBackward Instance = new();

        public unsafe void Backward(in TapeEntry e, Tape tape)
        {
            var gate = e.A!;
            var up = e.B!;
            float* dGate = gate.RequiresGrad ? tape.GradOf(gate).Pointer : null;
            float* dUp = up.RequiresGrad ? tape.GradOf(up).Pointer : null;
            SwiGluJob.Run(gate.Pointer, up.Pointer, e.Output.Grad!.Pointer, gate.Length, null, dGate, dUp, tape.Compute);
        }
    }

    /// <summary>Forward (dY null: y = silu(g)·u) or backward (dGate += dY·u·σ(g)·(1 + g·(1 − σ(g))), dUp += dY·silu(g)).</summary>
    sealed unsafe class SwiGluJob : IParallelWork
    {
        [ThreadStatic] static SwiGluJob? cached;
        float* gate, up, dY, y, dGate, dUp;
        int length, perBlock;

        public static void Run(float* gate, float* up, float* dY, int length, float* y, float* dGate, float* dUp, ComputeContext compute)
        {
            var job = cached ??= new SwiGluJob();
            job.gate = gate; job.up = up; job.dY = dY; job.y = y; job.dGate = dGate; job.dUp = dUp; job.length = length;
            compute.Run(ComputeContext.Blocks(length, 8, out job.perBlock), job);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int start = index * perBlock, end = Math.Min(length, start + perBlock);
            if (dY is null) Forward(start, end);
            else Backward(start, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Forward(int i, int end)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i <= end - 16; i += 16)
                {
                    var g = Vector512.Load(gate + i);
                    (g / (Vector512<float>.One + Vector512.Exp(-g)) * Vector512.Load(up + i)).Store(y + i);
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i <= end - 8; i += 8)
                {
                    var g = Vector256.Load(gate + i);
                    (g / (Vector256<float>.One + Vector256.Exp(-g)) * Vector256.Load(up + i)).Store(y + i);
                }
            for (; i < end; i++) y[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Backward(int i, int end)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i <= end - 16; i += 16)
                {
                    var g = Vector512.Load(gate + i);
                    var d = Vector512.Load(dY + i);
                    var sigmoid = Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(-g));
                    var silu = g * sigmoid;
                    if (dUp is not null) Vector512.FusedMultiplyAdd(d, silu, Vector512.Load(dUp + i)).Store(dUp + i);
                    if (dGate is not null)
                    {
                        var slope = sigmoid + silu * (Vector512<float>.One - sigmoid);
                        Vector512.FusedMultiplyAdd(d * Vector512.Load(up + i), slope, Vector512.Load(dGate + i)).Store(dGate + i);
                    }
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i <= end - 8; i += 8)
                {
                    var g = Vector256.Load(gate + i);
                    var d = Vector256.Load(dY + i);
                    var sigmoid = Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-g));
                    var silu = g * sigmoid;
                    if (dUp is not null) Vector256.FusedMultiplyAdd(d, silu, Vector256.Load(dUp + i)).Store(dUp + i);
                    if (dGate is not null)
                    {
                        var slope = sigmoid + silu * (Vector256<float>.One - sigmoid);
                        Vector256.FusedMultiplyAdd(d * Vector256.Load(up + i), slope, Vector256.Load(dGate + i)).Store(dGate + i);
                    }
                }
            for (; i < end; i++)
            {
                float sigmoid = 1f / (1f + MathF.Exp(-gate[i])), silu = gate[i] * sigmoid;
                if (dUp is not null) dUp[i] += dY[i] * silu;
                if (dGate is not null) dGate[i] += dY[i] * up[i] * (sigmoid + silu * (1f - sigmoid));
            }
        }
    }
}
