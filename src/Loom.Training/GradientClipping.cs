using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>Gradient norm clipping over all parameters together (torch.nn.utils.clip_grad_norm_).</summary>
public static class GradientClipping
{
    /// <summary>
    /// Computes the global L2 norm of all gradients (in double) and, when it exceeds
    /// <paramref name="maxNorm"/>, scales every gradient by maxNorm / (norm + 1e-6), as PyTorch does.
    /// Parameters without a gradient are skipped. Returns the norm before clipping; a NaN or
    /// infinite norm leaves the gradients unchanged, for the caller to skip the step.
    /// Runs one parameter per work item on <paramref name="compute"/> (null: one thread); each parameter's
    /// sum is added in parameter order, so the norm is the same bit for bit with any thread count.
    /// </summary>
    public static float ClipGradientNorm(IReadOnlyList<Tensor> parameters, float maxNorm, ComputeContext? compute = null)
    {
        var job = Job ??= new ClipJob();
        if (job.Sums.Length < parameters.Count) job.Sums = new double[parameters.Count];
        job.Parameters = parameters;
        job.Scale = false;
        compute ??= SingleThread;
        compute.Run(parameters.Count, job);
        double sumOfSquares = 0;
        for (int i = 0; i < parameters.Count; i++) sumOfSquares += job.Sums[i];
        double norm = Math.Sqrt(sumOfSquares);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1)
        {
            job.Scale = true;
            job.Coefficient = (float)coefficient;
            compute.Run(parameters.Count, job);
        }
        job.Parameters = null;
        return (float)norm;
    }

    static readonly ComputeContext SingleThread = new(1);
    [ThreadStatic] static ClipJob? Job;

    /// <summary>Per parameter: its sum of squares, or (Scale) its gradient scaled by Coefficient.</summary>
    sealed class ClipJob : IParallelWork
    {
        public IReadOnlyList<Tensor>? Parameters;
        public double[] Sums = [];
        public float Coefficient;
        public bool Scale;

        public void Execute(int index)
        {
            if (Parameters![index].Grad is not { } g)
            {
                Sums[index] = 0;
                return;
            }
            if (!Scale) Sums[index] = SumOfSquares(g.Span);
            else System.Numerics.Tensors.TensorPrimitives.Multiply(g.Span, Coefficient, g.Span);
        }
    }

    /// <summary>Σ x² with every product and sum in double (floats widened in vector registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static double SumOfSquares(ReadOnlySpan<float> values)
    {
        int i = 0;
        double sum = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var accumulator = Vector512<double>.Zero;
            for (; i <= values.Length - 16; i += 16)
            {
                var (lower, upper) = Vector512.Widen(Vector512.Create(values.Slice(i, 16)));
                accumulator = Vector512.FusedMultiplyAdd(lower, lower, accumulator);
                accumulator = Vector512.FusedMultiplyAdd(upper, upper, accumulator);
            }
            sum = Vector512.Sum(accumulator);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var accumulator = Vector256<double>.Zero;
            for (; i <= values.Length - 8; i += 8)
            {
                var (lower, upper) = Vector256.Widen(Vector256.Create(values.Slice(i, 8)));
                accumulator = Vector256.FusedMultiplyAdd(lower, lower, accumulator);
                accumulator = Vector256.FusedMultiplyAdd(upper, upper, accumulator);
            }
            sum = Vector256.Sum(accumulator);
        }
        for (; i < values.Length; i++) sum += (double)values[i] * values[i];
        return sum;
    }
}
