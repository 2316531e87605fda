using Loom.Models.Gguf;
using Loom.Tensors;

namespace Loom.Tests.Models;

/// <summary>
/// A plain float64 Llama forward pass with Hugging Face semantics (rotate-half RoPE on the HF row
/// layout, grouped-query attention, SwiGLU, RMSNorm), the scalar reference the GGUF tests
/// compare llama.cpp against; and tiny random models to feed it.
/// </summary>
static class GgufReference
{
    /// <summary>A random model: weights uniform in ±scale/sqrt(fanIn), norms near 1.</summary>
    public static Dictionary<string, Tensor> RandomWeights(LlamaGgufConfig config, int seed, float embeddingScale = 1f)
    {
        var random = new Random(seed);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, shape) in LlamaGguf.ExpectedTensors(config))
        {
            var tensor = Tensor.Parameter(name, shape);
            var span = tensor.Span;
            if (shape.Length == 1)
            {
                for (int i = 0; i < span.Length; i++)
                    span[i] = 1f + 0.2f * (float)(random.NextDouble() * 2 - 1);
            }
            else
            {
                float bound = name.Contains("embed_tokens") ? embeddingScale : 1.7f / MathF.Sqrt(shape[1]);
                for (int i = 0; i < span.Length; i++)
                    span[i] = bound * (float)(random.NextDouble() * 2 - 1);
            }
            tensors[name] = tensor;
        }
        return tensors;
    }

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Tensor, double[]> Widened = new();

    /// <summary>
    /// Logits after every position: [tokens, vocab]. With <paramref name="quantizeActivations"/> the
    /// input of every linear layer is first rounded to Q8_0 blocks the way llama.cpp's x86 CPU code
    /// does before a Q8_0 matrix product (scale max|x|/127 kept as f16, q = x * (127 / max|x|)
    /// rounded half to even), so a Q8_0 model can be compared with llama.cpp without that noise.
    /// </summary>
    public static double[][] Forward(LlamaGgufConfig config, IReadOnlyDictionary<string, Tensor> weights, ReadOnlySpan<int> tokens,
        bool quantizeActivations = false)
    {
        int dim = config.Dim, headDim = config.HeadDim, tokenCount = tokens.Length;
        int groupSize = config.Heads / config.KvHeads;
        double[] W(string name) => Widened.GetValue(weights[name], t => Array.ConvertAll(t.Span.ToArray(), v => (double)v));
        double[] MatVec(double[] matrix, double[] vector) => GgufReference.MatVec(matrix, quantizeActivations ? QuantizeQ8(vector) : vector);

        var embed = W("model.embed_tokens.weight"); // [vocab, dim]
        var x = new double[tokenCount][]; // [tokens, dim]
        for (int t = 0; t < tokenCount; t++)
            x[t] = embed.AsSpan(tokens[t] * dim, dim).ToArray();

        for (int layer = 0; layer < config.Layers; layer++)
        {
            string p = $"model.layers.{layer}.";
            var wq = W(p + "self_attn.q_proj.weight"); // [heads * headDim, dim]
            var wk = W(p + "self_attn.k_proj.weight"); // [kvHeads * headDim, dim]
            var wv = W(p + "self_attn.v_proj.weight"); // [kvHeads * headDim, dim]
            var wo = W(p + "self_attn.o_proj.weight"); // [dim, heads * headDim]
            var q = new double[tokenCount][];
            var k = new double[tokenCount][];
            var v = new double[tokenCount][];
            for (int t = 0; t < tokenCount; t++)
            {
                var h = RmsNorm(x[t], W(p + "input_layernorm.weight"), config.NormEps);
                q[t] = RotateHalf(MatVec(wq, h), t, config.Heads, headDim, config.RopeTheta);
                k[t] = RotateHalf(MatVec(wk, h), t, config.KvHeads, headDim, config.RopeTheta);
                v[t] = MatVec(wv, h);
            }
            for (int t = 0; t < tokenCount; t++)
            {
                var attention = new double[config.Heads * headDim]; // [heads * headDim]
                for (int head = 0; head < config.Heads; head++)
                {
                    int kvHead = head / groupSize;
                    var scores = new double[t + 1];
                    double max = double.NegativeInfinity;
                    for (int s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++)
                            dot += q[t][head * headDim + d] * k[s][kvHead * headDim + d];
                        scores[s] = dot / Math.Sqrt(headDim);
                        max = Math.Max(max, scores[s]);
                    }
                    double sum = 0;
                    for (int s = 0; s <= t; s++)
                        sum += scores[s] = Math.Exp(scores[s] - max);
                    for (int s = 0; s <= t; s++)
                        for (int d = 0; d < headDim; d++)
                            attention[head * headDim + d] += scores[s] / sum * v[s][kvHead * headDim + d];
                }
                var o = MatVec(wo, attention);
                for (int d = 0; d < dim; d++)
                    x[t][d] += o[d];
            }
            var gate = W(p + "mlp.gate_proj.weight");
            var up = W(p + "mlp.up_proj.weight");
            var down = W(p + "mlp.down_proj.weight");
            for (int t = 0; t < tokenCount; t++)
            {
                var h = RmsNorm(x[t], W(p + "post_attention_layernorm.weight"), config.NormEps);
                var g = MatVec(gate, h);
                var u = MatVec(up, h);
                for (int i = 0; i < g.Length; i++)
                    g[i] = g[i] / (1 + Math.Exp(-g[i])) * u[i];
                var o = MatVec(down, g);
                for (int d = 0; d < dim; d++)
                    x[t][d] += o[d];
            }
        }
        var lmHead = W(config.TiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"); // [vocab, dim]
        var norm = W("model.norm.weight");
        var logits = new double[tokenCount][];
        for (int t = 0; t < tokenCount; t++)
            logits[t] = MatVec(lmHead, RmsNorm(x[t], norm, config.NormEps));
        return logits;
    }

    /// <summary>llama.cpp's x86 quantize_row_q8_0 applied to a vector and expanded back.</summary>
    static double[] QuantizeQ8(double[] vector)
    {
        var result = new double[vector.Length];
        for (int b = 0; b < vector.Length; b += 32)
        {
            float max = 0;
            for (int i = b; i < b + 32; i++)
                max = Math.Max(max, Math.Abs((float)vector[i]));
            float scale = (float)(Half)(max / 127f);
            float inverse = max != 0 ? 127f / max : 0f;
            for (int i = b; i < b + 32; i++)
                result[i] = scale * MathF.Round((float)vector[i] * inverse, MidpointRounding.ToEven);
        }
        return result;
    }

    static double[] MatVec(double[] matrix, double[] vector)
    {
        int columns = vector.Length, rows = matrix.Length / columns;
        var result = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < columns; c++)
                sum += matrix[r * columns + c] * vector[c];
            result[r] = sum;
        }
        return result;
    }

    static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double meanSquare = 0;
        foreach (var value in x)
            meanSquare += value * value;
        meanSquare /= x.Length;
        double scale = 1 / Math.Sqrt(meanSquare + eps);
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
            result[i] = x[i] * scale * weight[i];
        return result;
    }

    /// <summary>Hugging Face RoPE: within each head, element i rotates with element i + headDim/2.</summary>
    public static double[] RotateHalf(double[] x, int position, int heads, int headDim, double theta)
    {
        var result = (double[])x.Clone();
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
            {
                double angle = position * Math.Pow(theta, -2.0 * i / headDim);
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                double a = x[h * headDim + i], b = x[h * headDim + i + half];
                result[h * headDim + i] = a * cos - b * sin;
                result[h * headDim + i + half] = b * cos + a * sin;
            }
        return result;
    }

    /// <summary>llama.cpp RoPE (NORM mode): within each head, element 2i rotates with element 2i + 1.</summary>
    public static double[] RotateInterleaved(double[] x, int position, int heads, int headDim, double theta)
    {
        var result = (double[])x.Clone();
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < headDim / 2; i++)
            {
                double angle = position * Math.Pow(theta, -2.0 * i / headDim);
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                double a = x[h * headDim + 2 * i], b = x[h * headDim + 2 * i + 1];
                result[h * headDim + 2 * i] = a * cos - b * sin;
                result[h * headDim + 2 * i + 1] = b * cos + a * sin;
            }
        return result;
    }

    public static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best])
                best = i;
        return best;
    }

    /// <summary>The repository root (the folder holding Loom.sln), found by walking up from the test binaries.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Loom.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no Loom.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>../shared/data/tinyshakespeare.txt beside the repository.</summary>
    public static string Shakespeare() => Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared", "data", "tinyshakespeare.txt"));
}
