using Loom.Models;
using Loom.Tensors;
using Loom.Text;

namespace Loom.Training.Tuning;

/// <summary>
/// Supervised fine-tuning (TRL's SFTTrainer): next-token cross-entropy on assistant/completion tokens only
/// (every other target is −100), examples packed into rows of the model's context (<see cref="TokenBatch.Pack"/>),
/// full fine-tuning or LoRA.
/// </summary>
public static class SupervisedTuner
{
    public static TuneResult Run(Transformer model, ITokenizer tokenizer, IReadOnlyList<SupervisedExample> examples, TuneOptions options,
        Action<TuneEvent>? report = null, string? baseModel = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (examples.Count == 0) throw new ArgumentException("no supervised examples to train on");
        var random = new DeterministicRandom(options.Seed);
        var sequences = examples.Select(e => TokenSequence.FromTurns(e.Turns, tokenizer, options.ChatFormat)).ToList();
        var order = TuningLoop.Shuffle(sequences.Count, random);
        int held = examples.Count >= 20 ? (int)(examples.Count * options.EvalFraction) : 0;
        var evalSet = order.Take(held).Select(i => sequences[i]).ToList();
        var trainSet = order.Skip(held).Select(i => sequences[i]).ToList();
        int block = model.Config.MaxSeq;
        var batches = TokenBatch.Pack(trainSet, block, options.Batch);
        var evalBatches = evalSet.Count > 0 ? TokenBatch.Pack(evalSet, block, options.Batch) : [];
        int steps = options.Epochs > 0 ? options.Epochs * batches.Count : options.Steps;

        var trainable = TuningLoop.Trainable(model, options);
        using var loop = new TuningLoop(options, steps, trainable, report);
        var evalTape = new Tape(loop.Compute) { Recording = false };
        int[] epochOrder = [];
        int stepsDone = 0;
        for (int step = 0; step < steps && !cancellationToken.IsCancellationRequested; step++)
        {
            int position = step % batches.Count;
            if (position == 0) epochOrder = TuningLoop.Shuffle(batches.Count, random);
            var batch = batches[epochOrder[position]];
            loop.Tape.Reset();
            var loss = model.Loss(loop.Tape, batch.Ids, batch.Targets, batch.Batch, batch.Tokens); // [1]
            float lossValue = loss.Scalar();
            var (learningRate, norm) = loop.Optimize(step, loss);
            stepsDone = step + 1;
            loop.Log(stepsDone, false, ("loss", lossValue), ("lr", learningRate), ("grad_norm", norm),
                ("target_tokens", batch.Targets.Count(t => t != TokenBatch.IgnoreIndex)));
            if (evalBatches.Count > 0 && loop.EvaluationDue(stepsDone))
            {
                double total = 0;
                foreach (var b in evalBatches)
                {
                    evalTape.Reset();
                    total += model.Loss(evalTape, b.Ids, b.Targets, b.Batch, b.Tokens).Scalar();
                }
                loop.Log(stepsDone, true, ("val_loss", (float)(total / evalBatches.Count)));
            }
        }
        TuningLoop.SavePolicy(model, tokenizer, options, baseModel);
        return loop.Result(stepsDone);
    }
}
