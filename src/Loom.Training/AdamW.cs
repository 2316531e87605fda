using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>AdamW hyper-parameters (PyTorch's names and meaning).</summary>
public sealed record AdamWOptions(
    float LearningRate = 1e-3f, // step size when Step() is called without one
    float Beta1 = 0.9f,         // decay of the first moment (mean of gradients)
    float Beta2 = 0.95f,        // decay of the second moment (mean of squared gradients)
    float Epsilon = 1e-8f,      // added to the bias-corrected RMS before dividing
    float WeightDecay = 0.1f)   // decoupled decay, applied to parameters of rank ≥ 2 only
{
    /// <summary>The threads the update runs on; null means <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }
}

/// <summary>
/// Adam with decoupled weight decay, step for step the formula of PyTorch's torch.optim.AdamW:
/// p ← p·(1 − lr·wd); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
/// p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).
/// Parameters of rank &lt; 2 (norm weights, biases) get no weight decay, as in nanoGPT.
/// Parameters without a gradient are skipped; the step count t is one for all parameters
/// (PyTorch keeps one per parameter; the two agree whenever every parameter has a gradient).
/// After each update the moments and parameters are flushed of subnormals (see <see cref="Subnormals"/>).
/// </summary>
public sealed class AdamW
{
    const int FormatVersion = 1;
    const long Magic = 0x5741_4D41_444D_4F4C; // "LOMDAMAW"

    readonly Tensor[] parameters;
    readonly Tensor[] firstMoments; // same shapes as the parameters
    readonly Tensor[] secondMoments; // same shapes as the parameters
    readonly ComputeContext compute;

    public AdamW(IReadOnlyList<Tensor> parameters, AdamWOptions? options = null)
    {
        this.parameters = [.. parameters];
        Options = options ?? new AdamWOptions();
        compute = Options.Compute ?? ComputeContext.Default;
        firstMoments = new Tensor[this.parameters.Length];
        secondMoments = new Tensor[this.parameters.Length];
        for (int i = 0; i < this.parameters.Length; i++)
        {
            firstMoments[i] = new Tensor(this.parameters[i].Shape);
            secondMoments[i] = new Tensor(this.parameters[i].Shape);
        }
    }

    public AdamWOptions Options { get; }

    public IReadOnlyList<Tensor> Parameters => parameters;

    /// <summary>Steps taken so far (t in the bias corrections); part of the checkpointed state.</summary>
    public int StepCount { get; set; }

    /// <summary>m per parameter; a checkpoint saves these and writes them back to resume exactly.</summary>
    public IReadOnlyList<Tensor> FirstMoments => firstMoments;

    /// <summary>v per parameter; a checkpoint saves these and writes them back to resume exactly.</summary>
    public IReadOnlyList<Tensor> SecondMoments => secondMoments;

    /// <summary>One update at <see cref="AdamWOptions.LearningRate"/>.</summary>
    public void Step() => Step(Options.LearningRate);

    /// <summary>One update of every parameter that has a gradient, at <paramref name="learningRate"/> (from a schedule).</summary>
    public unsafe void Step(float learningRate)
    {
        StepCount++;
        var o = Options;
        var job = Update.Cached ??= new Update();
        job.beta1 = o.Beta1;
        job.beta2 = o.Beta2;
        job.epsilon = o.Epsilon;
        job.stepSize = (float)(learningRate / (1 - Math.Pow(o.Beta1, StepCount)));
        job.inverseCorrection2 = (float)(1 / Math.Sqrt(1 - Math.Pow(o.Beta2, StepCount)));
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            if (p.Grad is null) continue;
            job.parameter = p.Pointer;
            job.gradient = p.Grad.Pointer;
            job.first = firstMoments[i].Pointer;
            job.second = secondMoments[i].Pointer;
            job.decay = p.Rank >= 2 ? 1f - learningRate * o.WeightDecay : 1f;
            job.length = p.Length;
            compute.Run(ComputeContext.Blocks(p.Length, 4, out job.perBlock), job);
        }
    }

    /// <summary>Zeroes every parameter's gradient (before the next accumulation), one parameter per work item.</summary>
    public void ZeroGrad() => compute.Run(parameters.Length, zeroJob ??= new ZeroGradJob(parameters));

    ZeroGradJob? zeroJob;

    sealed class ZeroGradJob(Tensor[] parameters) : IParallelWork
    {
        public void Execute(int index) => parameters[index].ZeroGrad();
    }

    /// <summary>Writes the step count and both moments (little-endian float32) to <paramref name="stream"/>.</summary>
    public void Save(Stream stream)
    {
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(FormatVersion);
        writer.Write(StepCount);
        writer.Write(parameters.Length);
        for (int i = 0; i < parameters.Length; i++)
        {
            writer.Write(parameters[i].Length);
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(firstMoments[i].Span));
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(secondMoments[i].Span));
        }
    }

    /// <summary>Restores what <see cref="Save"/> wrote, for the same parameter list.</summary>
    public void Load(Stream stream)
    {
        using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        if (reader.ReadInt64() != Magic) throw new InvalidDataException("optimizer state: not an AdamW state (bad magic)");
        int version = reader.ReadInt32();
        if (version != FormatVersion) throw new InvalidDataException($"optimizer state: version {version}, expected {FormatVersion}");
        int step = reader.ReadInt32();
        int count = reader.ReadInt32();
        if (count != parameters.Length) throw new InvalidDataException($"optimizer state: {count} parameters, the optimizer has {parameters.Length}");
        for (int i = 0; i < count; i++)
        {
            int length = reader.ReadInt32();
            if (length != parameters[i].Length)
                throw new InvalidDataException($"optimizer state: parameter {i} ({parameters[i]}) has {length} elements in the state, {parameters[i].Length} in the model");
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(firstMoments[i].Span));
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(secondMoments[i].Span));
        }
        StepCount = step;
    }

    /// <summary>The fused update over one block of one parameter, then a subnormal flush of what it wrote.</summary>
    sealed unsafe class Update : IParallelWork
    {
        [ThreadStatic] public static Update? Cached;
        public float* parameter, gradient, first, second;
        public float beta1, beta2, epsilon, stepSize, inverseCorrection2, decay;
        public int length, perBlock;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int start = index * perBlock, end = Math.Min(length, start + perBlock);
            float* p = parameter, g = gradient, m = first, v = second;
            float oneMinusBeta1 = 1 - beta1, oneMinusBeta2 = 1 - beta2;
            int i = start;
            if (Vector512.IsHardwareAccelerated)
            {
                Vector512<float> b1 = Vector512.Create(beta1), b2 = Vector512.Create(beta2), c1 = Vector512.Create(oneMinusBeta1),
                    c2 = Vector512.Create(oneMinusBeta2), eps = Vector512.Create(epsilon), size = Vector512.Create(stepSize),
                    correction = Vector512.Create(inverseCorrection2), decayV = Vector512.Create(decay);
                for (; i <= end - 16; i += 16)
                {
                    var gi = Vector512.Load(g + i);
                    var mi = b1 * Vector512.Load(m + i) + c1 * gi;
                    var vi = b2 * Vector512.Load(v + i) + c2 * gi * gi;
                    var denominator = Vector512.Sqrt(vi) * correction + eps;
                    var pi = Vector512.Load(p + i) * decayV - size * mi / denominator;
                    mi.Store(m + i);
                    vi.Store(v + i);
                    pi.Store(p + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                Vector256<float> b1 = Vector256.Create(beta1), b2 = Vector256.Create(beta2), c1 = Vector256.Create(oneMinusBeta1),
                    c2 = Vector256.Create(oneMinusBeta2), eps = Vector256.Create(epsilon), size = Vector256.Create(stepSize),
                    correction = Vector256.Create(inverseCorrection2), decayV = Vector256.Create(decay);
                for (; i <= end - 8; i += 8)
                {
                    var gi = Vector256.Load(g + i);
                    var mi = b1 * Vector256.Load(m + i) + c1 * gi;
                    var vi = b2 * Vector256.Load(v + i) + c2 * gi * gi;
                    var denominator = Vector256.Sqrt(vi) * correction + eps;
                    var pi = Vector256.Load(p + i) * decayV - size * mi / denominator;
                    mi.Store(m + i);
                    vi.Store(v + i);
                    pi.Store(p + i);
                }
            }
            for (; i < end; i++)
            {
                float gi = g[i];
                float mi = beta1 * m[i] + oneMinusBeta1 * gi;
                float vi = beta2 * v[i] + oneMinusBeta2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                p[i] = p[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * inverseCorrection2 + epsilon);
            }
            int count = end - start;
            Subnormals.FlushToZero(m + start, count);
            Subnormals.FlushToZero(v + start, count);
            Subnormals.FlushToZero(p + start, count);
        }
    }
}
