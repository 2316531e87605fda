using Loom.IO;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// A reward model: the transformer's final hidden state at each sequence's last real token, times a scalar head
/// (Hugging Face's LlamaForSequenceClassification with num_labels 1: <c>score.weight</c> [1, dim]). Saved as a
/// checkpoint folder whose config.json names that architecture and whose model.safetensors adds score.weight.
/// </summary>
public sealed class RewardModel
{
    public const string ScoreName = "score.weight";

    public RewardModel(Transformer model, Tensor? score = null)
    {
        Model = model;
        Head = score ?? Tensor.Parameter(ScoreName, 1, model.Config.Dim);
        if (Head.Dim(0) != 1 || Head.Dim(1) != model.Config.Dim)
            throw new ArgumentException($"score head has shape {Head.ShapeText}, expected [1, {model.Config.Dim}]");
    }

    /// <summary>The body (a causal LM's transformer; its LM head is unused).</summary>
    public Transformer Model { get; }

    /// <summary>score.weight [1, dim].</summary>
    public Tensor Head { get; } // [1, dim]

    /// <summary>Every trainable tensor: the body's and the head.</summary>
    public IReadOnlyList<Tensor> Parameters => [.. Model.Parameters, Head];

    /// <summary>A reward model that starts from a language model (InstructGPT starts from the SFT model); the head is zero.</summary>
    public static RewardModel FromLanguageModel(Transformer model) => new(model);

    /// <summary>Rewards [batch] of the rows of <paramref name="batch"/> (built by <see cref="TokenBatch.ForScores"/>).</summary>
    public Tensor Rewards(Tape tape, TokenBatch batch)
    {
        var hidden = Model.ForwardHidden(tape, batch.Ids, batch.Batch, batch.Tokens); // [batch, tokens, dim]
        var last = tape.GatherRows(hidden, batch.LastIndex); // [batch, dim]
        return tape.MatMul(last, Head, transposeW: true); // [batch, 1]
    }

    /// <summary>
    /// Rewards of whole sequences, without recording (inference); processed in chunks of <paramref name="chunk"/>
    /// on <paramref name="compute"/> (null: the default context).
    /// </summary>
    public float[] Score(IReadOnlyList<TokenSequence> sequences, int chunk = 32, ComputeContext? compute = null)
    {
        var tape = new Tape(compute) { Recording = false };
        var result = new float[sequences.Count];
        for (int start = 0; start < sequences.Count; start += chunk)
        {
            int count = Math.Min(chunk, sequences.Count - start);
            tape.Reset();
            var batch = TokenBatch.ForScores([.. sequences.Skip(start).Take(count)], Model.Config.MaxSeq);
            Rewards(tape, batch).Span.CopyTo(result.AsSpan(start));
        }
        return result;
    }

    /// <summary>Writes the checkpoint folder atomically (config.json names LlamaForSequenceClassification, num_labels 1).</summary>
    public void Save(string folder, ITokenizer tokenizer)
    {
        Checkpoint.WriteFolder(folder, temp =>
        {
            var config = JsonNode.Parse(Model.Config.ToHuggingFaceJson())!.AsObject();
            config["architectures"] = new JsonArray("LlamaForSequenceClassification");
            config["num_labels"] = 1;
            if (tokenizer.PadId is int pad) config["pad_token_id"] = pad;
            AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.ConfigFileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            SafeTensors.Write(Path.Combine(temp, SafeTensors.ModelFileName), Parameters, new Dictionary<string, string> { ["format"] = "pt" });
            tokenizer.Save(temp);
        });
    }

    /// <summary>Loads a reward-model folder; errors name the file and tensor.</summary>
    public static RewardModel Load(string folder)
    {
        folder = Checkpoint.Resolve(folder);
        var config = LlamaConfig.Load(Path.Combine(folder, Checkpoint.ConfigFileName));
        var content = SafeTensors.ReadModel(folder);
        string source = Path.Combine(folder, SafeTensors.ModelFileName);
        if (!content.Tensors.TryGetValue(ScoreName, out var score))
            throw new InvalidDataException($"{source}: tensor '{ScoreName}' is missing (not a reward model)");
        if (score.Rank != 2 || score.Dim(0) != 1 || score.Dim(1) != config.Dim)
            throw new InvalidDataException($"{source}: tensor '{ScoreName}' has shape {score.ShapeText}, expected [1, {config.Dim}]");
        var body = content.Tensors.Where(kv => kv.Key != ScoreName).ToDictionary(kv => kv.Key, kv => kv.Value);
        var model = Transformer.FromTensors(config, body, source);
        var head = Tensor.Parameter(ScoreName, 1, config.Dim);
        score.Span.CopyTo(head.Span);
        return new RewardModel(model, head);
    }
}
