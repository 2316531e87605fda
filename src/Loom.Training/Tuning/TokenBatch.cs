using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>A tokenized example: ids and a mask that is true on the tokens the model is scored or trained on (the response).</summary>
public sealed record TokenSequence(int[] Ids, bool[] TargetMask)
{
    /// <summary>
    /// A prompt and one assistant response in the model's chat format (null: Loom's); the mask covers the response and
    /// its end marker.
    /// </summary>
    public static TokenSequence FromResponse(IReadOnlyList<ChatTurn> prompt, string response, ITokenizer tokenizer, IChatFormat? format = null)
    {
        var (ids, mask) = (format ?? LoomChatFormat.Instance).Encode([.. prompt, new ChatTurn("assistant", response)], tokenizer, addGenerationPrompt: false);
        return new TokenSequence(ids, mask);
    }

    /// <summary>A whole conversation in the model's chat format (null: Loom's); the mask covers every assistant turn.</summary>
    public static TokenSequence FromTurns(IReadOnlyList<ChatTurn> turns, ITokenizer tokenizer, IChatFormat? format = null)
    {
        var (ids, mask) = (format ?? LoomChatFormat.Instance).Encode(turns, tokenizer, addGenerationPrompt: false);
        return new TokenSequence(ids, mask);
    }

    /// <summary>Prompt ids (ending with the open assistant turn) followed by sampled response ids, the mask on the response.</summary>
    public static TokenSequence FromSample(int[] promptIds, int[] responseIds)
    {
        var ids = new int[promptIds.Length + responseIds.Length];
        promptIds.CopyTo(ids, 0);
        responseIds.CopyTo(ids, promptIds.Length);
        var mask = new bool[ids.Length];
        mask.AsSpan(promptIds.Length).Fill(true);
        return new TokenSequence(ids, mask);
    }
}

/// <summary>
/// Sequences laid out as one [batch, tokens] block for the model. Two layouts:
/// <see cref="ForLogProbs"/> (inputs and next-token targets, −100 outside the response, so cross-entropy
/// and TokenLogProbs count the response only) and <see cref="ForScores"/> (the whole sequence; the index
/// of each row's last real token, where a reward head reads).
/// </summary>
public sealed class TokenBatch
{
    public const int IgnoreIndex = -100;

    TokenBatch(int batch, int tokens)
    {
        Batch = batch;
        Tokens = tokens;
        Ids = new int[batch * tokens];
        Targets = new int[batch * tokens];
        SegmentOf = new int[batch * tokens];
        LastIndex = new int[batch];
        Targets.AsSpan().Fill(IgnoreIndex);
        SegmentOf.AsSpan().Fill(-1);
    }

    public int Batch { get; }
    public int Tokens { get; }
    /// <summary>Input ids [batch, tokens]; padding is id 0 (never a target, never read by a head).</summary>
    public int[] Ids { get; }
    /// <summary>Next-token targets [batch, tokens]; −100 where nothing is learned.</summary>
    public int[] Targets { get; }
    /// <summary>For each position [batch, tokens]: the row (sequence) whose target it is, or −1.</summary>
    public int[] SegmentOf { get; }
    /// <summary>Flat index (row·tokens + position) of each row's last real token [batch].</summary>
    public int[] LastIndex { get; }

    /// <summary>
    /// One row per sequence, padded to the longest (at most <paramref name="maxTokens"/> inputs; longer ones are
    /// cut at the end). Position p's target is id p+1 when that id is in the response.
    /// </summary>
    public static TokenBatch ForLogProbs(IReadOnlyList<TokenSequence> sequences, int maxTokens)
    {
        int tokens = Math.Min(maxTokens, sequences.Max(s => s.Ids.Length - 1));
        if (tokens < 1) throw new ArgumentException("every sequence needs at least two tokens");
        var batch = new TokenBatch(sequences.Count, tokens);
        for (int row = 0; row < sequences.Count; row++)
        {
            var s = sequences[row];
            int length = Math.Min(tokens, s.Ids.Length - 1);
            for (int p = 0; p < length; p++)
            {
                int flat = row * tokens + p;
                batch.Ids[flat] = s.Ids[p];
                if (s.TargetMask[p + 1])
                {
                    batch.Targets[flat] = s.Ids[p + 1];
                    batch.SegmentOf[flat] = row;
                }
            }
            batch.LastIndex[row] = row * tokens + length - 1;
        }
        return batch;
    }

    /// <summary>One row per whole sequence (cut to <paramref name="maxTokens"/>), padded to the longest; no targets.</summary>
    public static TokenBatch ForScores(IReadOnlyList<TokenSequence> sequences, int maxTokens)
    {
        int tokens = Math.Min(maxTokens, sequences.Max(s => s.Ids.Length));
        var batch = new TokenBatch(sequences.Count, tokens);
        for (int row = 0; row < sequences.Count; row++)
        {
            var s = sequences[row];
            int length = Math.Min(tokens, s.Ids.Length);
            if (length == 0) throw new ArgumentException("an empty sequence cannot be scored");
            s.Ids.AsSpan(0, length).CopyTo(batch.Ids.AsSpan(row * tokens));
            batch.LastIndex[row] = row * tokens + length - 1;
        }
        return batch;
    }

    /// <summary>
    /// Sequence packing for supervised tuning: examples placed one after another into rows of
    /// <paramref name="tokens"/> inputs (first fit, in order), an example longer than a row cut to it.
    /// Attention stays causal across the whole row: an example can attend to the ones packed before it
    /// (as TRL's default packing does); the loss still counts only response tokens, and a response's
    /// first token is never predicted from the previous example because every example starts with a role marker.
    /// </summary>
    public static List<TokenBatch> Pack(IReadOnlyList<TokenSequence> sequences, int tokens, int rowsPerBatch)
    {
        var rows = new List<List<TokenSequence>>();
        var used = new List<int>();
        foreach (var s in sequences)
        {
            int length = Math.Min(s.Ids.Length, tokens + 1);
            int fit = -1;
            for (int r = Math.Max(0, rows.Count - 8); r < rows.Count; r++)
                if (used[r] + length <= tokens + 1) { fit = r; break; }
            if (fit < 0)
            {
                rows.Add([]);
                used.Add(0);
                fit = rows.Count - 1;
            }
            rows[fit].Add(s);
            used[fit] += length;
        }
        var batches = new List<TokenBatch>();
        for (int start = 0; start < rows.Count; start += rowsPerBatch)
        {
            int count = Math.Min(rowsPerBatch, rows.Count - start);
            var batch = new TokenBatch(count, tokens);
            var ids = new List<int>(tokens + 1);
            var mask = new List<bool>(tokens + 1);
            for (int row = 0; row < count; row++)
            {
                ids.Clear();
                mask.Clear();
                foreach (var s in rows[start + row])
                {
                    int length = Math.Min(s.Ids.Length, tokens + 1);
                    ids.AddRange(s.Ids.AsSpan(0, length));
                    mask.AddRange(s.TargetMask.AsSpan(0, length));
                }
                int inputs = Math.Min(tokens, ids.Count - 1);
                for (int p = 0; p < inputs; p++)
                {
                    int flat = row * tokens + p;
                    batch.Ids[flat] = ids[p];
                    if (mask[p + 1])
                    {
                        batch.Targets[flat] = ids[p + 1];
                        batch.SegmentOf[flat] = row;
                    }
                }
                batch.LastIndex[row] = row * tokens + Math.Max(inputs, 1) - 1;
            }
            batches.Add(batch);
        }
        return batches;
    }
}
