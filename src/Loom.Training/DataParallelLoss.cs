using System.Numerics.Tensors;
using Tensor = Loom.Tensors.Tensor;
using Loom.Models;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// The forward and backward pass of one batch with its rows split between the threads of a context: each thread
/// runs whole sequences through its own replica of the model (<see cref="Transformer.Replica"/>: the same weights,
/// a tape on one thread), so the token-proportional work (activations, their gradients, attention) pays one hand-off
/// between threads instead of one per op. At the small batches of fine-tuning and of nanoGPT's configuration each op
/// is a few microseconds of work, and splitting every op over two threads spends at the barriers most of what it saves.
/// Each replica computes its parameters' gradients over its own rows into gradients of its own, added into the
/// model's by <see cref="CollectGradients"/> in replica order, so a run gives the same result bit for bit every time at a
/// given thread count (not the same bits as one thread: sums are grouped differently). The other way,
/// <see cref="SharedWeightGradients"/> (the replicas meet at each matrix product's backward and compute its weight
/// gradient once over all their rows, each thread a share of dW's rows), measured slower on every shape of the step
/// bench on a quiet 2-core AMD EPYC (the replicas wait for each other at every product); it stays for the bench to time.
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
    readonly SharedWeightGradients shared;

    /// <param name="model">The model; its parameters' gradients receive the sum of every replica's.</param>
    /// <param name="compute">The threads: one replica (the model itself first) per thread.</param>
    public DataParallelLoss(Transformer model, ComputeContext compute) : this(model, compute, shareWeightGradients: false) { }

    /// <param name="model">The model.</param>
    /// <param name="compute">The threads.</param>
    /// <param name="shareWeightGradients">True: the replicas compute each weight gradient once over all their rows
    /// (<see cref="SharedWeightGradients"/>; the token embedding's own gradient is then collected only at the rows of the
    /// tokens the replicas took); false (the default): each replica computes every gradient over its own rows.</param>
    internal DataParallelLoss(Transformer model, ComputeContext compute, bool shareWeightGradients)
    {
        this.model = model;
        this.compute = compute;
        parts = new Part[compute.ThreadCount];
        var replicas = new Transformer[compute.ThreadCount];
        for (int r = 0; r < replicas.Length; r++) replicas[r] = r == 0 ? model : model.Replica();
        shared = new SharedWeightGradients(model, replicas);
        for (int r = 0; r < parts.Length; r++) parts[r] = new Part(replicas[r], shared, shareWeightGradients ? shared.For(r) : null);
        pass = new PassJob(parts);
        int embedding = -1; // the token embedding's index when only its touched rows are collected
        if (shareWeightGradients)
            do embedding++; while (!ReferenceEquals(model.Parameters[embedding], model.TokenEmbedding));
        collect = new CollectJob(model.Parameters, parts, embedding);
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
        Span<bool> taking = stackalloc bool[parts.Length];
        for (int r = 0; r < used; r++)
        {
            parts[r].Seed = counted == 0 ? 0f : scale * parts[r].Counted / counted;
            taking[r] = parts[r].Counted > 0;
        }
        for (int r = 1; r < used; r++) collect.Touch(parts[r].Ids);
        shared.Begin(taking);
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
        compute.Run(collect.Count, collect);
        collect.Collected();
    }

    /// <summary>Time the replicas spent, all together, waiting for each other at the weight gradients since creation or <see cref="ResetWait"/>.</summary>
    internal TimeSpan Wait => shared.Wait;

    /// <summary>Sets <see cref="Wait"/> back to zero.</summary>
    internal void ResetWait() => shared.ResetWait();

    public void Dispose()
    {
        foreach (var part in parts) part.Dispose();
    }

    /// <summary>One replica: its rows of the batch, its tape on a one-thread context (its weight gradients going to the shared ones), its loss.</summary>
    sealed class Part(Transformer replica, SharedWeightGradients shared, IWeightGradients? weightGradients) : IDisposable
    {
        readonly ComputeContext single = new(1);
        Tape? tape;
        int[] ids = [], targets = [];
        int rows, tokens;

        public Transformer Replica { get; } = replica;
        public int[] Ids => ids;
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
            tape ??= new Tape(single) { WeightGradients = weightGradients };
            try
            {
                tape.Reset();
                var loss = Replica.Loss(tape, ids, targets, rows, tokens); // [1]
                Loss = loss.Scalar();
                if (Counted > 0) tape.Backward(loss, Seed);
            }
            catch (SharedWeightGradients.AbortedException)
            {
                // Another replica failed; its exception is the one reported.
            }
            catch
            {
                shared.Abort();
                throw;
            }
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

    /// <summary>
    /// Work item i: one chunk of one parameter, or (after the chunks) a block of the token embedding's touched rows;
    /// adds each replica's gradient into the model's in order, then zeroes it. With weight gradients shared, a replica's
    /// token-embedding gradient is nonzero only at the rows of its tokens (the head's weight gradient, tied or not, is
    /// the shared one), so only the rows of the tokens the replicas took since the last collect (<see cref="Touch"/>) are
    /// added; otherwise (embedding −1) the embedding is chunked like every other parameter.
    /// </summary>
    sealed class CollectJob : IParallelWork
    {
        const int RowsPerItem = 64;
        readonly (int Parameter, int Start, int Length)[] chunks;
        readonly IReadOnlyList<Tensor> parameters;
        readonly Part[] parts;
        readonly int embedding, width;
        readonly int[] stamps, rows; // per vocabulary row: the epoch it was last touched in; the rows touched in this one
        int touched, epoch = 1;

        public CollectJob(IReadOnlyList<Tensor> parameters, Part[] parts, int embedding)
        {
            this.parameters = parameters;
            this.parts = parts;
            this.embedding = embedding;
            width = embedding < 0 ? 0 : parameters[embedding].Dim(1);
            stamps = embedding < 0 ? [] : new int[parameters[embedding].Dim(0)];
            rows = new int[stamps.Length];
            var list = new List<(int, int, int)>();
            for (int p = 0; p < parameters.Count; p++)
                if (p != embedding)
                    for (int start = 0; start < parameters[p].Length; start += ChunkLength)
                        list.Add((p, start, Math.Min(ChunkLength, parameters[p].Length - start)));
            chunks = [.. list];
        }

        /// <summary>Work items: the chunks, then the blocks of touched embedding rows.</summary>
        public int Count => chunks.Length + (touched + RowsPerItem - 1) / RowsPerItem;

        /// <summary>Marks the embedding rows of a replica's tokens (ids outside the vocabulary are the embedding's to report).</summary>
        public void Touch(int[] ids)
        {
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)stamps.Length || stamps[id] == epoch) continue;
                stamps[id] = epoch;
                rows[touched++] = id;
            }
        }

        /// <summary>Starts a new set of touched rows.</summary>
        public void Collected()
        {
            touched = 0;
            if (++epoch == int.MaxValue)
            {
                Array.Clear(stamps);
                epoch = 1;
            }
        }

        /// <summary>Gives the model a gradient wherever a replica has one, before the chunks run in parallel.</summary>
        public void EnsureGradients()
        {
            for (int p = 0; p < parameters.Count; p++)
                for (int r = 1; r < parts.Length; r++)
                    if (parts[r].Replica.Parameters[p].Grad is not null) parameters[p].EnsureGrad();
        }

        public void Execute(int index)
        {
            if (index < chunks.Length)
            {
                var (p, start, length) = chunks[index];
                Add(p, start, length);
                return;
            }
            int first = (index - chunks.Length) * RowsPerItem, end = Math.Min(touched, first + RowsPerItem);
            for (int i = first; i < end; i++) Add(embedding, rows[i] * width, width);
        }

        void Add(int p, int start, int length)
        {
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
