using Loom.Tensors;

namespace Loom.Tests.Tensors;

/// <summary>
/// Checks an engine op against a plain scalar reference written in float64: the forward output
/// (relative error), and every input gradient against central finite differences of the reference.
/// The output is reduced with a random probe (loss = Σ output ⊙ probe), so each output element
/// carries a different weight and a transposed or shifted gradient cannot pass.
/// </summary>
internal static class GradCheck
{
    /// <param name="reference">The op in float64: inputs (in the order of <paramref name="inputs"/>) to the flat output.</param>
    /// <param name="op">The engine op under test.</param>
    /// <param name="inputs">Inputs; gradients are checked for those with RequiresGrad.</param>
    public static void Assert(
        Func<double[][], double[]> reference,
        Func<Tape, Tensor[], Tensor> op,
        Tensor[] inputs,
        double forwardTolerance = 1e-5,
        double gradTolerance = 1e-3,
        double step = 1e-3,
        int seed = 1)
    {
        var tape = new Tape();
        var output = op(tape, inputs);
        var x = inputs.Select(t => t.Span.ToArray().Select(v => (double)v).ToArray()).ToArray();
        var expected = reference(x);
        Xunit.Assert.Equal(expected.Length, output.Length);
        double forwardError = RelativeError(output.Span.ToArray().Select(v => (double)v).ToArray(), expected);
        Xunit.Assert.True(forwardError < forwardTolerance, $"forward relative error {forwardError:E3} ≥ {forwardTolerance:E0}");

        var random = new Random(seed);
        var probe = new float[output.Length];
        for (int i = 0; i < probe.Length; i++) probe[i] = (float)(random.NextDouble() * 2 - 1);
        if (!inputs.Any(t => t.RequiresGrad)) return;
        foreach (var t in inputs) t.ZeroGrad();
        tape.Backward(output, probe);

        for (int i = 0; i < inputs.Length; i++)
        {
            if (!inputs[i].RequiresGrad) continue;
            var numeric = new double[x[i].Length];
            for (int j = 0; j < numeric.Length; j++)
            {
                double saved = x[i][j];
                x[i][j] = saved + step;
                double plus = Dot(reference(x), probe);
                x[i][j] = saved - step;
                double minus = Dot(reference(x), probe);
                x[i][j] = saved;
                numeric[j] = (plus - minus) / (2 * step);
            }
            var analytic = inputs[i].Grad!.Span.ToArray().Select(v => (double)v).ToArray();
            double gradError = RelativeError(analytic, numeric);
            Xunit.Assert.True(gradError < gradTolerance,
                $"gradient of input {i} ({inputs[i].Name ?? inputs[i].ShapeText}): relative error {gradError:E3} ≥ {gradTolerance:E0}");
        }
    }

    /// <summary>‖actual − expected‖₂ / ‖expected‖₂ (absolute when the reference is all zeros).</summary>
    public static double RelativeError(double[] actual, double[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
    }

    /// <summary>A tensor of uniform values in [-scale, scale), requiring a gradient.</summary>
    public static Tensor Random(Random random, float scale, params int[] shape)
    {
        var t = new Tensor(shape) { RequiresGrad = true };
        var span = t.Span;
        for (int i = 0; i < span.Length; i++) span[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return t;
    }

    static double Dot(double[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
