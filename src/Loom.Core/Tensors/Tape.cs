namespace Loom.Tensors;

/// <summary>The backward half of one op; implementations are stateless singletons.</summary>
public interface IBackward
{
    /// <summary>Adds this op's contribution to its inputs' gradients, given <c>entry.Output.Grad</c>.</summary>
    void Backward(in TapeEntry entry, Tape tape);
}

/// <summary>
/// Marks a backward that reads its op's output values, not only the output's gradient. A tensor
/// made by such an op is never overwritten by <see cref="Tape.TryAliasGrad"/>.
/// </summary>
public interface IReadsOutput;

/// <summary>
/// Takes over the weight gradients of matrix products (<see cref="Tape.WeightGradients"/>): a data-parallel pass
/// computes each weight's gradient once over every replica's rows instead of once per replica.
/// </summary>
internal unsafe interface IWeightGradients
{
    /// <summary>
    /// Adds to <paramref name="weight"/>'s gradient that of y = x · op(w) for dY [rows, n] and x [rows, k]: w is [k, n],
    /// or with <paramref name="transposeW"/> [n, k]. dY and x keep their values until the pass ends.
    /// </summary>
    void Accumulate(Tensor weight, float* dY, float* x, int rows, int k, int n, bool transposeW);
}

/// <summary>One recorded op: its backward, output, inputs and the few sizes it needs. A struct, so recording allocates nothing.</summary>
public struct TapeEntry
{
    public IBackward Op;
    public Tensor Output;
    public Tensor? A, B, C, D, E;
    /// <summary>Integer inputs (token ids, targets); the caller keeps them unchanged until backward.</summary>
    public int[]? Indices;
    public int I0, I1, I2, I3;
    public float F0, F1;
}

/// <summary>
/// Reverse-mode autograd with an arena. Each step: <see cref="Reset"/>, run the forward ops
/// (they take their outputs from the arena and record themselves), then <see cref="Backward"/>.
/// The n-th tensor asked for in a step reuses the n-th tensor of the step before, so once the
/// shapes have been seen a step allocates nothing. With <see cref="Recording"/> off (inference)
/// ops record nothing and no gradient is kept.
/// </summary>
public sealed class Tape
{
    readonly List<Tensor> arena = [];
    int arenaCursor;
    readonly List<Tensor> gradArena = [];
    int gradCursor;
    TapeEntry[] entries = new TapeEntry[256];
    int entryCount;
    int step;
    int backwardIndex = -1; // entry whose backward is running; -1 outside Backward

    /// <param name="compute">The threads this tape's ops run on; null means <see cref="ComputeContext.Default"/>.</param>
    public Tape(ComputeContext? compute = null) => Compute = compute ?? ComputeContext.Default;

    /// <summary>The threads this tape's ops (forward and backward) run on.</summary>
    public ComputeContext Compute { get; }

    /// <summary>When false (inference mode) ops record nothing and outputs never require gradients.</summary>
    public bool Recording { get; set; } = true;

    /// <summary>When set, the weight gradients of matrix products (a parameter w in x · op(w)) go here instead of into w's gradient.</summary>
    internal IWeightGradients? WeightGradients { get; set; }

    /// <summary>Ops recorded since the last <see cref="Reset"/>.</summary>
    public int Count => entryCount;

    /// <summary>Starts a new step: every arena tensor handed out before may be reused from here on.</summary>
    public void Reset()
    {
        for (int i = 0; i < entryCount; i++) entries[i] = default;
        entryCount = 0;
        arenaCursor = 0;
        gradCursor = 0;
        step++;
    }

    /// <summary>An activation tensor from the arena; its contents are undefined.</summary>
    public Tensor Allocate(params ReadOnlySpan<int> shape)
    {
        Tensor t;
        if (arenaCursor < arena.Count)
        {
            t = arena[arenaCursor];
            t.Reshape(shape);
        }
        else
        {
            t = new Tensor(shape) { IsActivation = true };
            arena.Add(t);
        }
        arenaCursor++;
        t.Grad = null;
        t.GradStep = -1;
        t.RequiresGrad = false;
        return t;
    }

    /// <summary>An activation tensor from the arena, zero-filled.</summary>
    public Tensor AllocateZeroed(params ReadOnlySpan<int> shape)
    {
        var t = Allocate(shape);
        t.Zero();
        return t;
    }

    /// <summary>Whether an op over these inputs must be recorded.</summary>
    public bool NeedsGrad(Tensor a, Tensor? b = null, Tensor? c = null, Tensor? d = null) =>
        Recording && (a.RequiresGrad || (b?.RequiresGrad ?? false) || (c?.RequiresGrad ?? false) || (d?.RequiresGrad ?? false));

    /// <summary>Records an op whose output requires a gradient; call only when <see cref="NeedsGrad"/> said so.</summary>
    public void Record(in TapeEntry entry)
    {
        if (entryCount == entries.Length) Array.Resize(ref entries, entries.Length * 2);
        entry.Output.RequiresGrad = true;
        entries[entryCount++] = entry;
    }

    /// <summary>
    /// The gradient buffer of <paramref name="t"/>, to accumulate into. Activations get a zeroed
    /// buffer from the arena the first time in a step; parameters keep theirs (gradients accumulate
    /// across backward calls until zeroed).
    /// </summary>
    public Tensor GradOf(Tensor t)
    {
        if (!t.IsActivation) return t.EnsureGrad();
        if (t.GradStep == step && t.Grad is not null) return t.Grad;
        Tensor g;
        if (gradCursor < gradArena.Count)
        {
            g = gradArena[gradCursor];
            g.Reshape(t.Shape);
        }
        else
        {
            g = new Tensor(t.Shape) { IsActivation = true };
            gradArena.Add(g);
        }
        gradCursor++;
        g.Zero();
        t.Grad = g;
        t.GradStep = step;
        return g;
    }

    /// <summary>The gradient of <paramref name="t"/> in this step, or null when no gradient reached it.</summary>
    public Tensor? GradIfAny(Tensor t) => !t.IsActivation ? t.Grad : t.GradStep == step ? t.Grad : null;

    /// <summary>Backpropagates from a one-element loss (its gradient seeded with <paramref name="scale"/>).</summary>
    public void Backward(Tensor loss, float scale = 1f)
    {
        if (loss.Length != 1) throw new ArgumentException($"backward needs a scalar loss, got {loss.ShapeText}", nameof(loss));
        Span<float> seed = [scale];
        Backward(loss, seed);
    }

    /// <summary>Backpropagates from any output, seeding its gradient with <paramref name="outputGrad"/> (a vector-Jacobian product).</summary>
    public void Backward(Tensor output, ReadOnlySpan<float> outputGrad)
    {
        if (outputGrad.Length != output.Length)
            throw new ArgumentException($"seed gradient has {outputGrad.Length} elements, output {output.ShapeText} has {output.Length}", nameof(outputGrad));
        if (!output.RequiresGrad) throw new InvalidOperationException("the output does not depend on any tensor that requires a gradient");
        outputGrad.CopyTo(GradOf(output).Span);
        try
        {
            for (int i = entryCount - 1; i >= 0; i--)
            {
                ref readonly var e = ref entries[i];
                if (GradIfAny(e.Output) is null) continue;
                backwardIndex = i;
                e.Op.Backward(e, this);
            }
        }
        finally { backwardIndex = -1; }
    }

    /// <summary>
    /// Makes <paramref name="t"/>'s own storage its gradient for this step (t.Grad = t), so a
    /// loss over large logits can write its gradient in place instead of into a second buffer.
    /// Called from a backward; succeeds only when nothing still to run can read t's values:
    /// t is an activation with no gradient yet in this step, no op recorded before the running
    /// one takes t as an input, and t's producer does not read its output (<see cref="IReadsOutput"/>).
    /// After success t's values are gone: the caller must overwrite all of t with its gradient.
    /// Returns false otherwise; the caller then accumulates into <see cref="GradOf"/> as usual.
    /// </summary>
    internal bool TryAliasGrad(Tensor t)
    {
        if (backwardIndex < 0 || !t.IsActivation || GradIfAny(t) is not null) return false;
        for (int i = 0; i < backwardIndex; i++)
        {
            ref readonly var e = ref entries[i];
            if (ReferenceEquals(e.A, t) || ReferenceEquals(e.B, t) || ReferenceEquals(e.C, t) || ReferenceEquals(e.D, t)) return false;
            if (ReferenceEquals(e.Output, t) && e.Op is IReadsOutput) return false;
        }
        t.Grad = t;
        t.GradStep = step;
        return true;
    }
}
