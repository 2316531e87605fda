using System.Diagnostics;
using Loom.Models;
using Loom.Tensors;

namespace Loom.Training;

/// <summary>
/// The weight gradients of a data-parallel pass (<see cref="DataParallelLoss"/>), each computed once over the rows
/// of every replica: at each matrix product's backward the replicas meet, and replica i computes its share of the
/// rows of dW (<see cref="Gemm.RowShare"/>) over all replicas' dY and x, joined in replica order, straight into the
/// model's gradient. So no replica holds a copy of a weight gradient, none is summed afterwards, and each dW is read
/// and written once per step instead of once per replica (for a 124M model's tied head, 154 MB each way).
/// The result is the same for a given set of replicas bit for bit, whichever replica reaches a meeting first.
/// </summary>
internal sealed unsafe class SharedWeightGradients
{
    readonly Dictionary<Tensor, int> indexOf = new(ReferenceEqualityComparer.Instance);
    readonly IReadOnlyList<Tensor> targets;
    readonly Sink[] sinks;
    readonly Slot[] slots; // [2, replicas]: the meeting's parity, then the participant
    readonly int[] participants; // replica of each participant, in replica order
    int count;
    int arrived;
    long generation;
    int aborted;
    long waitTicks;

    struct Slot
    {
        public float* DY, X;
        public int Rows;
    }

    /// <param name="model">The model whose parameters' gradients receive every weight gradient.</param>
    /// <param name="replicas">The replicas (the model itself first), in order.</param>
    public SharedWeightGradients(Transformer model, IReadOnlyList<Transformer> replicas)
    {
        targets = model.Parameters;
        foreach (var replica in replicas)
            for (int p = 0; p < replica.Parameters.Count; p++) indexOf[replica.Parameters[p]] = p;
        sinks = new Sink[replicas.Count];
        for (int r = 0; r < sinks.Length; r++) sinks[r] = new Sink(this);
        slots = new Slot[2 * replicas.Count];
        participants = new int[replicas.Count];
    }

    /// <summary>The sink that replica <paramref name="replica"/>'s tape hands its weight gradients to.</summary>
    public IWeightGradients For(int replica) => sinks[replica];

    /// <summary>
    /// Starts a pass in which the replicas marked in <paramref name="taking"/> run backward (each must meet the others
    /// at every weight gradient); gives every trainable parameter of the model a gradient first, so no replica creates one.
    /// </summary>
    public void Begin(ReadOnlySpan<bool> taking)
    {
        count = 0;
        for (int r = 0; r < taking.Length; r++)
        {
            sinks[r].Rank = taking[r] ? count : -1;
            sinks[r].Meetings = 0;
            if (taking[r]) participants[count++] = r;
        }
        arrived = 0;
        aborted = 0;
        for (int p = 0; p < targets.Count; p++) // an index loop: an interface's enumerator would allocate
            if (targets[p].RequiresGrad) targets[p].EnsureGrad();
    }

    /// <summary>Time the replicas spent, all together, waiting at meetings for the others since creation or <see cref="ResetWait"/>.</summary>
    public TimeSpan Wait => Stopwatch.GetElapsedTime(0, Volatile.Read(ref waitTicks));

    /// <summary>Sets <see cref="Wait"/> back to zero.</summary>
    public void ResetWait() => Volatile.Write(ref waitTicks, 0);

    /// <summary>Releases the replicas waiting at a meeting after one of them failed; they end their pass without gradients.</summary>
    public void Abort() => Volatile.Write(ref aborted, 1);

    void Accumulate(Sink sink, Tensor weight, float* dY, float* x, int rows, int k, int n, bool transposeW)
    {
        int rank = sink.Rank;
        if (rank < 0) throw new InvalidOperationException("a replica that takes no part in this pass ran backward");
        int parity = (int)(sink.Meetings++ & 1);
        slots[parity * sinks.Length + rank] = new Slot { DY = dY, X = x, Rows = rows };
        Meet();
        // transposeW: dW[n, k] = dYᵀ · x; otherwise dW[k, n] = xᵀ · dY. Rows of dW are shared out among the participants.
        int m = transposeW ? n : k, columns = transposeW ? k : n;
        var (start, end) = Gemm.RowShare(m, rank, count);
        Span<GemmSegment> segments = stackalloc GemmSegment[count];
        for (int q = 0; q < count; q++)
        {
            var slot = slots[parity * sinks.Length + q];
            segments[q] = transposeW ? new GemmSegment(slot.DY, slot.X, slot.Rows) : new GemmSegment(slot.X, slot.DY, slot.Rows);
        }
        var grad = targets[indexOf[weight]].Grad!; // [m, columns]
        Gemm.MultiplyRows(segments, m, columns, grad.Pointer, transposeA: true, transposeB: false, accumulate: true, start, end);
    }

    /// <summary>
    /// Waits until every participant has posted its operands for this meeting. Two sets of slots alternate: a replica
    /// posts the next meeting's operands only after all have arrived at this one, so none is still reading them.
    /// </summary>
    void Meet()
    {
        long seen = Volatile.Read(ref generation);
        if (Interlocked.Increment(ref arrived) == count)
        {
            Volatile.Write(ref arrived, 0);
            Interlocked.Increment(ref generation);
            return;
        }
        long start = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (Volatile.Read(ref generation) == seen)
        {
            if (Volatile.Read(ref aborted) != 0) throw new AbortedException();
            spin.SpinOnce(sleep1Threshold: -1);
        }
        Interlocked.Add(ref waitTicks, Stopwatch.GetTimestamp() - start);
    }

    /// <summary>Thrown out of a meeting that another replica's failure ended; the replica's pass stops there.</summary>
    internal sealed class AbortedException : Exception;

    sealed class Sink(SharedWeightGradients owner) : IWeightGradients
    {
        public int Rank = -1;
        public long Meetings;

        public void Accumulate(Tensor weight, float* dY, float* x, int rows, int k, int n, bool transposeW) =>
            owner.Accumulate(this, weight, dY, x, rows, k, n, transposeW);
    }
}
