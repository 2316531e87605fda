using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.IO;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Logs;

/// <summary>How a log model is shaped and trained. Null means the default.</summary>
public sealed record LogModelOptions
{
    /// <summary>Width of the residual stream.</summary>
    public int Dim { get; init; } = 64;
    /// <summary>Transformer blocks.</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Longest context in events (start token included); longer sessions are read in overlapping windows.</summary>
    public int MaxSeq { get; init; } = 64;
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 300;
    /// <summary>Sessions per step.</summary>
    public int Batch { get; init; } = 32;
    /// <summary>Peak learning rate (AdamW, warmup then cosine decay to a tenth).</summary>
    public float LearningRate { get; init; } = 3e-3f;
    /// <summary>Share of the normal sessions held out of training to set the threshold.</summary>
    public double HoldOutFraction { get; init; } = 0.1;
    /// <summary>Quantile of the held-out normal sessions' scores taken as the threshold: 0.99 allows 1% false alarms on normal data (1 = the largest).</summary>
    public double ThresholdQuantile { get; init; } = 0.99;
    /// <summary>Factor on that quantile: a margin above the most surprising normal session.</summary>
    public double ThresholdMargin { get; init; } = 1.0;
    /// <summary>The threads the model's kernels run on; null: <see cref="ComputeContext.Default"/>.</summary>
    public ComputeContext? Compute { get; init; }
    /// <summary>Distinct normal sessions kept in the checkpoint (the most frequent first) for explanations: the nearest normal sessions to a flagged one.</summary>
    public int KeptNormalSessions { get; init; } = 2000;
    /// <summary>Seeds the weights, the hold-out split and batch sampling.</summary>
    public ulong Seed { get; init; } = 1;

    public LogModelOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(Dim > 0 && Dim % Heads == 0, $"LogModelOptions.Dim must be a positive multiple of Heads, got {Dim}");
        Check(Layers > 0, $"LogModelOptions.Layers must be positive, got {Layers}");
        Check(MaxSeq >= 4, $"LogModelOptions.MaxSeq must be at least 4, got {MaxSeq}");
        Check(Steps > 0, $"LogModelOptions.Steps must be positive, got {Steps}");
        Check(Batch > 0, $"LogModelOptions.Batch must be positive, got {Batch}");
        Check(LearningRate > 0, $"LogModelOptions.LearningRate must be positive, got {LearningRate}");
        Check(HoldOutFraction is >= 0 and < 1, $"LogModelOptions.HoldOutFraction must be in [0, 1), got {HoldOutFraction}");
        Check(ThresholdQuantile is > 0 and <= 1, $"LogModelOptions.ThresholdQuantile must be in (0, 1], got {ThresholdQuantile}");
        Check(ThresholdMargin > 0, $"LogModelOptions.ThresholdMargin must be positive, got {ThresholdMargin}");
        Check(KeptNormalSessions >= 0, $"LogModelOptions.KeptNormalSessions must be >= 0, got {KeptNormalSessions}");
        return this;
    }
}

/// <summary>An event the model expected, with its probability.</summary>
public sealed record EventPrediction(string Event, string? Template, double Probability);

/// <summary>
/// A log foundation model: a small Llama <see cref="Transformer"/> over event tokens (start of session, the events,
/// end of session), trained with Loom's engine on normal sessions only to predict the next event. A session's score is
/// its most surprising step, −ln p(event | events before it), the end of the session included; the threshold comes
/// from normal sessions held out of training. Saved as a Loom checkpoint plus events.json and detector.json.
/// </summary>
public sealed class LogModel
{
    public const string DetectorFileName = "detector.json";

    LogModel(Transformer model, EventVocabulary vocabulary, double threshold, IReadOnlyList<NormalPattern> normal, ComputeContext? compute)
    {
        Normal = normal;
        Compute = compute ?? ComputeContext.Default;
        Model = model;
        Vocabulary = vocabulary;
        Threshold = threshold;
    }

    public Transformer Model { get; }
    public EventVocabulary Vocabulary { get; }
    /// <summary>Distinct normal training sessions with their counts, the most frequent first (empty for checkpoints that kept none).</summary>
    public IReadOnlyList<NormalPattern> Normal { get; }
    /// <summary>The threads scoring runs on.</summary>
    public ComputeContext Compute { get; }
    /// <summary>Scores above this flag a session; set from held-out normal sessions, or tuned on labelled ones.</summary>
    public double Threshold { get; set; }

    /// <summary>
    /// Trains on <paramref name="normal"/> sessions; <paramref name="templates"/> (event key → text) is kept for
    /// explanations. <paramref name="progress"/> receives a line every few steps.
    /// </summary>
    public static LogModel Train(IReadOnlyList<LogSession> normal, LogModelOptions? options = null, IReadOnlyDictionary<string, string>? templates = null,
        Action<string>? progress = null, CancellationToken cancellationToken = default)
    {
        options = (options ?? new LogModelOptions()).Validate();
        if (normal.Count < 2) throw new ArgumentException($"training needs at least 2 normal sessions, got {normal.Count}");
        var random = new DeterministicRandom(options.Seed);
        var order = Enumerable.Range(0, normal.Count).ToArray();
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = (int)random.NextInt64(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        int heldOut = Math.Min(normal.Count - 1, (int)Math.Round(normal.Count * options.HoldOutFraction));
        var train = order.Skip(heldOut).Select(i => normal[i]).ToList();
        var holdOut = order.Take(heldOut).Select(i => normal[i]).ToList();

        var vocabulary = new EventVocabulary(train.SelectMany(s => s.Events).Distinct().Order(StringComparer.Ordinal), templates);
        var config = new LlamaConfig
        {
            VocabSize = vocabulary.Count, Dim = options.Dim, Layers = options.Layers, Heads = options.Heads, KvHeads = options.Heads,
            HiddenDim = options.Dim * 2, MaxSeq = options.MaxSeq, BosId = EventVocabulary.StartId, EosId = EventVocabulary.EndId,
        };
        var transformer = new Transformer(config, options.Seed);
        var optimizer = new AdamW(transformer.Parameters, new AdamWOptions(options.LearningRate, WeightDecay: 0.01f) { Compute = options.Compute });
        var schedule = new LearningRateSchedule(options.LearningRate, options.LearningRate / 10, Math.Min(20, options.Steps / 10), options.Steps).Validate();
        var tape = new Tape(options.Compute);
        var encoded = train.Select(s => Encode(vocabulary, s)).ToList();
        var stopwatch = Stopwatch.StartNew();
        long tokens = 0;
        for (int step = 0; step < options.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A batch of random sessions, each a random window of at most MaxSeq tokens, padded to the longest with
            // ignored targets: the model learns p(next event | events so far) at every position, the end token included.
            var rows = new int[options.Batch][];
            for (int b = 0; b < rows.Length; b++)
            {
                var sequence = encoded[(int)random.NextInt64(encoded.Count)];
                int start = sequence.Length > options.MaxSeq + 1 ? (int)random.NextInt64(sequence.Length - options.MaxSeq) : 0;
                rows[b] = sequence[start..Math.Min(sequence.Length, start + options.MaxSeq + 1)];
            }
            int width = rows.Max(r => r.Length) - 1;
            var ids = new int[rows.Length * width];
            var targets = new int[rows.Length * width];
            Array.Fill(targets, -100);
            Array.Fill(ids, EventVocabulary.EndId);
            for (int b = 0; b < rows.Length; b++)
                for (int t = 0; t + 1 < rows[b].Length; t++)
                {
                    ids[b * width + t] = rows[b][t];
                    targets[b * width + t] = rows[b][t + 1];
                }
            tape.Reset();
            optimizer.ZeroGrad();
            var loss = transformer.Loss(tape, ids, targets, rows.Length, width); // [1]
            tape.Backward(loss);
            GradientClipping.ClipGradientNorm(transformer.Parameters, 1f, options.Compute);
            optimizer.Step(schedule.At(step));
            tokens += rows.Sum(r => r.Length - 1);
            if (progress is not null && (step % 50 == 0 || step == options.Steps - 1))
                progress($"step {step + 1}/{options.Steps}: loss {loss.Scalar():F4}, {tokens / stopwatch.Elapsed.TotalSeconds:F0} events/s");
        }

        var model = new LogModel(transformer, vocabulary, double.PositiveInfinity, NormalPatterns.From(normal, options.KeptNormalSessions), options.Compute);
        var normalScores = model.Score(holdOut.Count > 0 ? holdOut : train).Select(s => s.Score).Order().ToArray();
        int index = Math.Clamp((int)Math.Ceiling(options.ThresholdQuantile * normalScores.Length) - 1, 0, normalScores.Length - 1);
        model.Threshold = normalScores[index] * options.ThresholdMargin;
        progress?.Invoke($"threshold {model.Threshold:F3} = {options.ThresholdMargin} x the {options.ThresholdQuantile:P1} quantile of {normalScores.Length} held-out normal sessions' scores");
        return model;
    }

    /// <summary>[start, e1 … en, end] as tokens.</summary>
    static int[] Encode(EventVocabulary vocabulary, LogSession session)
    {
        var tokens = new int[session.Events.Count + 2];
        tokens[0] = EventVocabulary.StartId;
        for (int i = 0; i < session.Events.Count; i++) tokens[i + 1] = vocabulary.Id(session.Events[i]);
        tokens[^1] = EventVocabulary.EndId;
        return tokens;
    }

    /// <summary>The surprise of each step of a session and the model's distribution there.</summary>
    public sealed record SessionScore(double Score, double[] Surprises, int MostSurprising, Func<int, int, IReadOnlyList<EventPrediction>> Expected);

    /// <summary>
    /// Scores sessions: for each, −ln p of every next event (positions 0…n−1 are the events, n the end of session;
    /// <paramref name="includeEnd"/> false leaves the end out, for sessions still open) and the maximum as the score.
    /// </summary>
    public List<SessionScore> Score(IReadOnlyList<LogSession> sessions, bool includeEnd = true)
    {
        var tape = new Tape(Compute) { Recording = false };
        int maxSeq = Model.Config.MaxSeq;
        int vocab = Vocabulary.Count;
        var results = new List<SessionScore>(sessions.Count);
        foreach (var chunk in sessions.Chunk(64))
        {
            var encoded = chunk.Select(s => Encode(Vocabulary, s)).ToArray();
            var logProbs = encoded.Select(e => new float[(e.Length - 1) * vocab]).ToArray(); // [steps, vocab] per session
            // Windows of maxSeq tokens; after the first, each starts half a window on and scores only its second half,
            // so every step sees at least maxSeq/2 events of context.
            var windows = new List<(int Session, int Start, int ScoreFrom)>();
            for (int s = 0; s < encoded.Length; s++)
            {
                int steps = encoded[s].Length - 1;
                windows.Add((s, 0, 0));
                for (int start = maxSeq / 2; start + maxSeq / 2 < steps; start += maxSeq / 2) windows.Add((s, start, start + maxSeq / 2));
            }
            foreach (var group in windows.Chunk(64))
            {
                int width = group.Max(w => Math.Min(maxSeq, encoded[w.Session].Length - 1 - w.Start));
                var ids = new int[group.Length * width];
                Array.Fill(ids, EventVocabulary.EndId);
                for (int g = 0; g < group.Length; g++)
                {
                    var (s, start, _) = group[g];
                    int length = Math.Min(width, encoded[s].Length - 1 - start);
                    Array.Copy(encoded[s], start, ids, g * width, length);
                }
                tape.Reset();
                var logits = Model.Forward(tape, ids, group.Length, width).Span; // [windows, width, vocab]
                for (int g = 0; g < group.Length; g++)
                {
                    var (s, start, scoreFrom) = group[g];
                    int length = Math.Min(width, encoded[s].Length - 1 - start);
                    for (int t = Math.Max(0, scoreFrom - start); t < length; t++)
                    {
                        var row = logits.Slice((g * width + t) * vocab, vocab);
                        float max = System.Numerics.Tensors.TensorPrimitives.Max(row);
                        double sum = 0;
                        foreach (float v in row) sum += Math.Exp(v - max);
                        float logSum = max + (float)Math.Log(sum);
                        var output = logProbs[s].AsSpan((start + t) * vocab, vocab);
                        for (int v = 0; v < vocab; v++) output[v] = row[v] - logSum;
                    }
                }
            }
            for (int s = 0; s < encoded.Length; s++)
            {
                int steps = encoded[s].Length - 1 - (includeEnd ? 0 : 1);
                var surprises = new double[steps];
                int worst = 0;
                for (int t = 0; t < steps; t++)
                {
                    surprises[t] = -logProbs[s][t * vocab + encoded[s][t + 1]];
                    if (surprises[t] > surprises[worst]) worst = t;
                }
                var table = logProbs[s];
                results.Add(new SessionScore(steps == 0 ? 0 : surprises[worst], surprises, worst, (t, k) => Top(table, t, k)));
            }
        }
        return results;
    }

    IReadOnlyList<EventPrediction> Top(float[] logProbs, int step, int k)
    {
        int vocab = Vocabulary.Count;
        return [.. Enumerable.Range(0, vocab)
            .Where(v => v != EventVocabulary.StartId && v != EventVocabulary.UnknownId)
            .OrderByDescending(v => logProbs[step * vocab + v])
            .Take(k)
            .Select(v => new EventPrediction(Vocabulary.Key(v), Vocabulary.Template(Vocabulary.Key(v)), Math.Exp(logProbs[step * vocab + v])))];
    }

    /// <summary>Writes the checkpoint (config.json, model.safetensors, tokenizer.json), events.json and detector.json (threshold and the kept normal sessions).</summary>
    public void Save(string folder)
    {
        var normal = new JsonArray();
        foreach (var pattern in Normal)
            normal.Add(new JsonObject { ["events"] = new JsonArray([.. pattern.Events.Select(e => JsonValue.Create(e))]), ["count"] = pattern.Count });
        Checkpoint.Save(folder, Model, temp =>
        {
            Vocabulary.Save(temp);
            AtomicFile.WriteAllText(Path.Combine(temp, DetectorFileName),
                new JsonObject { ["threshold"] = Threshold, ["score"] = "max over steps of -ln p(event | previous events)", ["normal"] = normal }.ToJsonString());
        });
    }

    /// <summary>Loads a folder written by <see cref="Save"/>; errors name the file.</summary>
    public static LogModel Load(string folder, ComputeContext? compute = null)
    {
        folder = Checkpoint.Resolve(folder);
        var transformer = Checkpoint.Load(folder);
        var vocabulary = EventVocabulary.Load(folder);
        if (vocabulary.Count != transformer.Config.VocabSize)
            throw new InvalidDataException($"{Path.Combine(folder, EventVocabulary.FileName)}: {vocabulary.Count} tokens, config.json says vocab_size {transformer.Config.VocabSize}");
        string detector = Path.Combine(folder, DetectorFileName);
        if (!File.Exists(detector)) throw new FileNotFoundException($"{detector}: file not found (not a log model checkpoint)", detector);
        double threshold;
        var normal = new List<NormalPattern>();
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(detector));
            threshold = root?["threshold"]?.GetValue<double>() ?? throw new InvalidDataException($"{detector}: missing field threshold");
            if (root?["normal"] is JsonArray patterns)
                foreach (var pattern in patterns)
                {
                    if (pattern?["events"] is not JsonArray events || pattern["count"]?.GetValue<int>() is not int count)
                        throw new InvalidDataException($"{detector}: normal[{normal.Count}] needs events and count");
                    normal.Add(new NormalPattern([.. events.Select(e => e?.GetValue<string>() ?? throw new InvalidDataException($"{detector}: normal[{normal.Count}].events holds a null"))], count));
                }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{detector}: invalid JSON ({e.Message.Split('\n')[0]})");
        }
        return new LogModel(transformer, vocabulary, threshold, normal, compute);
    }
}
