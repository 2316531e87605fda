using System.Numerics.Tensors;
using Tensor = Loom.Tensors.Tensor;
using Loom.Models;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// The forward and backward pass of one batch with its rows split between the threads of a context: each thread
/// runs whole sequences through its own replica of the model (<see cref="Transformer.Replica"/>: the same weights,
/// a gradient of its own, a tape on one thread), so a step pays one hand-off between threads instead of one per op.
/// At the small batches of fine-tuning and of nanoGPT's configuration each op is a few microseconds of work, and
/// splitting every op over two threads spends at the barriers most of what it saves. The replicas' gradients are
/// added into the model's by <see cref="CollectGradients"/>, in replica order, so a run gives the same result bit for
/// bit every time at a given thread count (not the same bits as one thread: the sums are grouped differently).
/// </summary>
/// <remarks>
/// The loss is the mean over the batch's counted targets (not <c>ignoreIndex</c>), as one forward over the whole batch
/// gives: replica r's mean over its n_r targets is weighted by n_r / n, in the value returned and in the gradient seed.
/// </remarks>
public sealed class DataParallelLoss : IDisposable
{
    const int IgnoreIndex = -100;
    const int ChunkLength = 1 << 16; // floats per work item when gradients are collected

    readonly Transformer model;
    readonly ComputeContext compute;
    readonly Part[] parts;
    readonly PassJob pass;
    readonly CollectJob collect;

    /// <param name="model">The model; its parameters' gradients receive the sum of every replica's.</param>
    /// <param name="compute">The threads: one replica (the model itself first) per thread.</param>
    public DataParallelLoss(Transformer model, ComputeContext compute)
    {
        this.model = model;
        this.compute = compute;
        parts = new Part[compute.ThreadCount];
        for (int r = 0; r < parts.Length; r++) parts[r] = new Part(r == 0 ? model : model.Replica());
        pass = new PassJob(parts);
        collect = new CollectJob(model.Parameters, parts);
    }

    /// <summary>Whether splitting by rows applies: more than one thread and more than one sequence in the batch.</summary>
    public static bool Applies(ComputeContext compute, int batch) => compute.ThreadCount > 1 && batch > 1;

    /// <summary>The replicas (the model itself first), one per thread.</summary>
    public int ReplicaCount => parts.Length;

    /// <summary>
    /// Mean next-token cross-entropy of ids [batch·tokens] against targets [batch·tokens] (-100 = ignore), as
    /// <see cref="Transformer.Loss"/> computes it, and its gradient times <paramref name="scale"/> accumulated into
    /// the replicas' gradients (call <see cref="CollectGradients"/> before reading the model's). Rows are split
    /// between the replicas in order, as evenly as they divide; a batch with fewer rows than replicas uses fewer.
    /// </summary>
    public float ForwardBackward(int[] ids, int[] targets, int batch, int tokens, float scale = 1f)
    {
        if (batch < 1 || tokens < 1) throw new ArgumentException($"batch ({batch}) and tokens ({tokens}) must be positive");
        if (ids.Length != batch * tokens) throw new ArgumentException($"{ids.Length} ids for batch {batch} x {tokens} tokens", nameof(ids));
        if (targets.Length != ids.Length) throw new ArgumentException($"{targets.Length} targets for {ids.Length} ids", nameof(targets));
        int used = Math.Min(parts.Length, batch);
        long counted = 0;
        for (int r = 0; r < used; r++)
        {
            int first = r * batch / used, end = (r + 1) * batch / used;
            counted += parts[r].Take(ids, targets, first, end - first, tokens);
        }
        for (int r = 0; r < used; r++) parts[r].Seed = counted == 0 ? 0f : scale * parts[r].Counted / counted;
        compute.Run(used, pass.For(used));
        if (counted == 0) return 0f;
        double loss = 0;
        for (int r = 0; r < used; r++) loss += (double)parts[r].Loss * parts[r].Counted / counted;
        return (float)loss;
    }

    /// <summary>Adds every replica's gradient into the model's (in replica order) and zeroes the replicas' for the next step.</summary>
    public void CollectGradients()
    {
        if (parts.Length == 1) return;
        collect.EnsureGradients();
        compute.Run(collect.Chunks, collect);
    }

    public void Dispose()
    {
        foreach (var part in parts) part.Dispose();
    }

    /// <summary>One replica: its rows of the batch, its tape on a one-thread context, its loss.</summary>
    sealed class Part(Transformer replica) : IDisposable
    {
        readonly ComputeContext single = new(1);
        Tape? tape;
        int[] ids = [], targets = [];
        int rows, tokens;

        public Transformer Replica { get; } = replica;
        public long Counted { get; private set; }
        public float Seed { get; set; }
        public float Loss { get; private set; }

        /// <summary>Copies rows [first, first + count) of the batch; returns the targets that count toward the loss.</summary>
        public long Take(int[] allIds, int[] allTargets, int first, int count, int tokens)
        {
            int length = count * tokens;
            if (ids.Length != length)
            {
                ids = new int[length];
                targets = new int[length];
            }
            Array.Copy(allIds, first * tokens, ids, 0, length);
            Array.Copy(allTargets, first * tokens, targets, 0, length);
            rows = count;
            this.tokens = tokens;
            long counted = 0;
            foreach (int t in targets) if (t != IgnoreIndex) counted++;
            Counted = counted;
            return counted;
        }

        public void Run()
        {
            tape ??= new Tape(single);
            tape.Reset();
            var loss = Replica.Loss(tape, ids, targets, rows, tokens); // [1]
            Loss = loss.Scalar();
            if (Counted > 0) tape.Backward(loss, Seed);
        }

        public void Dispose() => single.Dispose();
    }

    /// <summary>Work item r: replica r's forward and backward.</summary>
    sealed class PassJob(Part[] parts) : IParallelWork
    {
        int used;

        public PassJob For(int count)
        {
            used = count;
            return this;
        }

        public void Execute(int index)
        {
            if (index < used) parts[index].Run();
        }
    }

    /// <summary>Work item i: one chunk of one parameter; adds each replica's gradient into the model's in order, then zeroes it.</summary>
    sealed class CollectJob : IParallelWork
    {
        readonly (int Parameter, int Start, int Length)[] chunks;
        readonly IReadOnlyList<Tensor> parameters;
        readonly Part[] parts;

        public CollectJob(IReadOnlyList<Tensor> parameters, Part[] parts)
        {
            this.parameters = parameters;
            this.parts = parts;
            var list = new List<(int, int, int)>();
            for (int p = 0; p < parameters.Count; p++)
                for (int start = 0; start < parameters[p].Length; start += ChunkLength)
                    list.Add((p, start, Math.Min(ChunkLength, parameters[p].Length - start)));
            chunks = [.. list];
        }

        public int Chunks => chunks.Length;

        /// <summary>Gives the model a gradient wherever a replica has one, before the chunks run in parallel.</summary>
        public void EnsureGradients()
        {
            for (int p = 0; p < parameters.Count; p++)
                for (int r = 1; r < parts.Length; r++)
                    if (parts[r].Replica.Parameters[p].Grad is not null) parameters[p].EnsureGrad();
        }

        public void Execute(int index)
        {
            var (p, start, length) = chunks[index];
            Span<float> total = default;
            for (int r = 1; r < parts.Length; r++)
            {
                if (parts[r].Replica.Parameters[p].Grad is not { } grad) continue;
                var part = grad.Span.Slice(start, length);
                if (total.IsEmpty) total = parameters[p].Grad!.Span.Slice(start, length);
                TensorPrimitives.Add(total, part, total);
                part.Clear();
            }
        }
    }
}
