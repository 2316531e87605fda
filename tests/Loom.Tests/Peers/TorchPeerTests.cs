using System.Text.Json;
using Loom.Models;
using Loom.Tensors;
using Loom.Training;

namespace Loom.Tests.Peers;

/// <summary>
/// The outside check of the engine (as Llm.cs checks its gradients against PyTorch's): a small full model's loss and every
/// gradient equal PyTorch autograd's on the same weights and batch, and AdamW's steps equal torch.optim.AdamW's on the same
/// gradients. The model is written again in plain torch in torch_llama.py; the reference runs in float64.
/// </summary>
[Trait(TestCategories.Category, TestCategories.Slow)]
public class TorchPeerTests
{
    /// <summary>The largest relative error (‖loom − torch‖ / ‖torch‖ per tensor) accepted against the float64 reference.</summary>
    const double Tolerance = 1e-4;

    const int Batch = 2;
    const int Tokens = 12;

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void LossAndEveryGradientEqualPyTorchAutograd(bool tied)
    {
        string python = TorchPeer.RequirePython();
        // Grouped-query attention (4 query heads read 2 kv heads), two blocks, a vocabulary that is not a power of two.
        var config = new LlamaConfig { VocabSize = 37, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 48, MaxSeq = 16, TiedEmbeddings = tied };
        var model = new Transformer(config, seed: 7);
        var random = new DeterministicRandom(11);
        // Weights five times the initial scale and norm weights away from 1, so attention is far from uniform and
        // every factor of every gradient matters.
        foreach (var p in model.Parameters)
        {
            var span = p.Span;
            for (int i = 0; i < span.Length; i++)
                span[i] = p.Rank == 1 ? 1f + 0.3f * (float)random.NextGaussian() : 5f * span[i];
        }
        var ids = new int[Batch * Tokens]; // [batch, tokens]
        var targets = new int[Batch * Tokens]; // [batch, tokens]
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)random.NextInt64(config.VocabSize);
            targets[i] = (int)random.NextInt64(config.VocabSize);
        }
        targets[3] = targets[Tokens + 5] = -100; // ignored positions count in neither the loss nor its mean

        string folder = Directory.CreateTempSubdirectory("loom-torch-grad-").FullName;
        try
        {
            config.Save(Path.Combine(folder, "config.json"));
            SafeTensors.Write(Path.Combine(folder, "model.safetensors"), model.Parameters);
            File.WriteAllText(Path.Combine(folder, "batch.json"), JsonSerializer.Serialize(new { batch = Batch, tokens = Tokens, ids, targets }));

            var tape = new Tape();
            var loss = model.Loss(tape, ids, targets, Batch, Tokens); // [1]
            tape.Backward(loss);

            using var reference = TorchPeer.Run(python, "grad", folder, "torch.json");
            var exact = reference.RootElement.GetProperty("float64");
            var single = reference.RootElement.GetProperty("float32");
            double expectedLoss = exact.GetProperty("loss").GetDouble();
            Assert.True(Math.Abs(loss.Scalar() - expectedLoss) <= Tolerance * Math.Abs(expectedLoss),
                $"loss {loss.Scalar()} vs PyTorch float64 {expectedLoss} (float32 {single.GetProperty("loss").GetDouble()})");
            var grads = exact.GetProperty("grads");
            Assert.Equal(model.Parameters.Count, grads.EnumerateObject().Count());
            foreach (var p in model.Parameters)
            {
                double[] expected = TorchPeer.Values(grads.GetProperty(p.Name!));
                Assert.True(p.Grad is not null, $"{p.Name}: Loom computed no gradient");
                double error = TorchPeer.RelativeError(p.Grad!.Span, expected);
                double torchSingle = RelativeError(TorchPeer.Values(single.GetProperty("grads").GetProperty(p.Name!)), expected);
                Assert.True(error <= Tolerance,
                    $"{p.Name} {p.ShapeText}: gradient relative error {error:E2} against PyTorch float64 (PyTorch float32's own: {torchSingle:E2})");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [SkippableFact]
    public void AdamWStepsEqualTorchOptimAdamW()
    {
        string python = TorchPeer.RequirePython();
        const int Steps = 3;
        var options = new AdamWOptions(LearningRate: 1e-2f, Beta1: 0.9f, Beta2: 0.95f, Epsilon: 1e-8f, WeightDecay: 0.1f);
        var random = new DeterministicRandom(5);
        Tensor Random(string name, float scale, params int[] shape)
        {
            var t = Tensor.Parameter(name, shape);
            var span = t.Span;
            for (int i = 0; i < span.Length; i++) span[i] = scale * (float)random.NextGaussian();
            return t;
        }
        // Matrices get weight decay, the vector (a norm weight) none; gradients change scale from step to step and
        // include values far below ε, so the bias corrections and the ε term both show.
        Tensor[] parameters = [Random("weight", 1f, 6, 10), Random("projection", 0.5f, 4, 3), Random("norm", 1f, 10)];
        var gradients = new List<Tensor>(); // one per parameter and step, named "{name}@{step}"
        for (int step = 0; step < Steps; step++)
            foreach (var p in parameters)
                gradients.Add(Random($"{p.Name}@{step}", step == 1 ? 1e-9f : MathF.Pow(10, -step), [.. p.Shape.ToArray()]));
        var initial = parameters.Select(p => p.Span.ToArray()).ToArray();

        string folder = Directory.CreateTempSubdirectory("loom-torch-adamw-").FullName;
        try
        {
            SafeTensors.Write(Path.Combine(folder, "params.safetensors"), parameters);
            SafeTensors.Write(Path.Combine(folder, "grads.safetensors"), gradients);
            File.WriteAllText(Path.Combine(folder, "adamw.json"), JsonSerializer.Serialize(new
            {
                lr = (double)options.LearningRate, beta1 = (double)options.Beta1, beta2 = (double)options.Beta2,
                eps = (double)options.Epsilon, weight_decay = (double)options.WeightDecay, steps = Steps,
            }));

            var optimizer = new AdamW(parameters, options);
            for (int step = 0; step < Steps; step++)
            {
                foreach (var p in parameters) gradients.Single(g => g.Name == $"{p.Name}@{step}").Span.CopyTo(p.EnsureGrad().Span);
                optimizer.Step();
            }

            using var reference = TorchPeer.Run(python, "adamw", folder, "adamw_result.json");
            var expected = reference.RootElement.GetProperty("params");
            for (int i = 0; i < parameters.Length; i++)
            {
                // The updates are compared, not the parameters: an error in a small update hides in a large weight.
                double[] expectedUpdate = TorchPeer.Values(expected.GetProperty(parameters[i].Name!));
                var update = new float[expectedUpdate.Length];
                for (int j = 0; j < update.Length; j++)
                {
                    expectedUpdate[j] -= initial[i][j];
                    update[j] = parameters[i].Span[j] - initial[i][j];
                }
                double error = TorchPeer.RelativeError(update, expectedUpdate);
                Assert.True(error <= Tolerance, $"{parameters[i].Name}: update after {Steps} steps differs from torch.optim.AdamW's by {error:E2} (relative)");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static double RelativeError(double[] actual, double[] expected)
    {
        double difference = 0, reference = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            reference += expected[i] * expected[i];
        }
        return Math.Sqrt(difference / Math.Max(reference, double.Epsilon));
    }
}
