namespace Loom.Tests.Models;

/// <summary>
/// The whole Llama forward written plainly in float64, from the Hugging Face modeling_llama
/// definitions, sharing no code with the engine: weights by Hugging Face name, row-major [out, in].
/// </summary>
internal sealed class LlamaReference(int vocab, int dim, int layers, int heads, int kvHeads, int hidden, double theta, double eps, bool tied)
{
    public required Dictionary<string, double[]> Weights { get; init; }

    /// <summary>
    /// Checks the gradients that backward left on <paramref name="model"/>'s parameters <paramref name="names"/> against
    /// central finite differences of this reference's loss, at <paramref name="samples"/> random entries each
    /// (relative error below 2e-3); <paramref name="label"/> starts each failure message.
    /// </summary>
    public void AssertGradientsMatch(Loom.Models.Transformer model, int[] ids, int[] targets, int batch, int tokens,
        IEnumerable<string> names, int samples, Random random, string label)
    {
        foreach (string name in names)
        {
            var parameter = model.Parameters.Single(p => p.Name == name);
            var weights = Weights[name];
            var analytic = new List<double>();
            var numeric = new List<double>();
            for (int sample = 0; sample < samples; sample++)
            {
                int index = random.Next(weights.Length);
                double saved = weights[index];
                const double step = 1e-5;
                weights[index] = saved + step;
                double plus = Loss(ids, targets, batch, tokens);
                weights[index] = saved - step;
                double minus = Loss(ids, targets, batch, tokens);
                weights[index] = saved;
                numeric.Add((plus - minus) / (2 * step));
                analytic.Add(parameter.Grad![index]);
            }
            double error = Loom.Tests.Tensors.GradCheck.RelativeError([.. analytic], [.. numeric]);
            Assert.True(error < 2e-3, $"{label}{name}: gradient relative error {error:E3} (analytic {string.Join(", ", analytic)}; numeric {string.Join(", ", numeric)})");
        }
    }

    /// <summary>Llama 3's rope scaling: frequency i is theta^(−2i/headDim) / FrequencyDivisors[i]; null for plain RoPE.</summary>
    public double[]? FrequencyDivisors { get; init; }

    /// <summary>Mistral's sliding window: position t attends to t − SlidingWindow + 1 .. t; 0 for the whole past.</summary>
    public int SlidingWindow { get; init; }

    /// <summary>Channels per head when not dim / heads (head_dim).</summary>
    public int? HeadDim { get; init; }

    /// <summary>The reference of a config: its shapes, rope scaling, sliding window and head size.</summary>
    public static LlamaReference For(Loom.Models.LlamaConfig config, Dictionary<string, double[]> weights) =>
        new(config.VocabSize, config.Dim, config.Layers, config.Heads, config.KvHeads, config.HiddenDim, config.RopeTheta, config.NormEps, config.TiedEmbeddings)
        {
            Weights = weights,
            FrequencyDivisors = config.RopeFrequencyDivisors()?.Select(d => (double)d).ToArray(),
            SlidingWindow = config.SlidingWindow ?? 0,
            HeadDim = config.HeadDim,
        };

    /// <summary>Linear(x) plus the layer's bias when the weights hold one (Qwen2's q, k, v).</summary>
    double[] Projection(double[] x, string name, int outputs)
    {
        var y = Linear(x, Weights[name + ".weight"], outputs);
        if (Weights.TryGetValue(name + ".bias", out var bias))
            for (int i = 0; i < outputs; i++) y[i] += bias[i];
        return y;
    }

    /// <summary>Logits [batch·tokens·vocab] for ids [batch·tokens].</summary>
    public double[] Logits(int[] ids, int batch, int tokens)
    {
        int headDim = HeadDim ?? dim / heads;
        var logits = new double[batch * tokens * vocab];
        for (int b = 0; b < batch; b++)
        {
            var x = new double[tokens][];
            for (int t = 0; t < tokens; t++)
                x[t] = Weights["model.embed_tokens.weight"].AsSpan(ids[b * tokens + t] * dim, dim).ToArray();
            for (int l = 0; l < layers; l++)
            {
                string p = $"model.layers.{l}.";
                var q = new double[tokens][];
                var k = new double[tokens][];
                var v = new double[tokens][];
                for (int t = 0; t < tokens; t++)
                {
                    var h = RmsNorm(x[t], Weights[p + "input_layernorm.weight"]);
                    q[t] = Rope(Projection(h, p + "self_attn.q_proj", heads * headDim), heads, headDim, t);
                    k[t] = Rope(Projection(h, p + "self_attn.k_proj", kvHeads * headDim), kvHeads, headDim, t);
                    v[t] = Projection(h, p + "self_attn.v_proj", kvHeads * headDim);
                }
                for (int t = 0; t < tokens; t++)
                {
                    var attended = new double[heads * headDim];
                    for (int head = 0; head < heads; head++)
                    {
                        int kvHead = head / (heads / kvHeads);
                        var scores = new double[t + 1];
                        double max = double.NegativeInfinity;
                        int first = SlidingWindow > 0 ? Math.Max(0, t - SlidingWindow + 1) : 0;
                        for (int s = 0; s < first; s++) scores[s] = double.NegativeInfinity;
                        for (int s = first; s <= t; s++)
                        {
                            double dot = 0;
                            for (int i = 0; i < headDim; i++) dot += q[t][head * headDim + i] * k[s][kvHead * headDim + i];
                            scores[s] = dot / Math.Sqrt(headDim);
                            max = Math.Max(max, scores[s]);
                        }
                        double sum = 0;
                        for (int s = 0; s <= t; s++) sum += scores[s] = Math.Exp(scores[s] - max);
                        for (int s = 0; s <= t; s++)
                            for (int i = 0; i < headDim; i++)
                                attended[head * headDim + i] += scores[s] / sum * v[s][kvHead * headDim + i];
                    }
                    var o = Linear(attended, Weights[p + "self_attn.o_proj.weight"], dim);
                    for (int i = 0; i < dim; i++) x[t][i] += o[i];
                    var h2 = RmsNorm(x[t], Weights[p + "post_attention_layernorm.weight"]);
                    var gate = Linear(h2, Weights[p + "mlp.gate_proj.weight"], hidden);
                    var up = Linear(h2, Weights[p + "mlp.up_proj.weight"], hidden);
                    for (int i = 0; i < hidden; i++) gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
                    var down = Linear(gate, Weights[p + "mlp.down_proj.weight"], dim);
                    for (int i = 0; i < dim; i++) x[t][i] += down[i];
                }
            }
            var head2 = Weights[tied ? "model.embed_tokens.weight" : "lm_head.weight"];
            for (int t = 0; t < tokens; t++)
            {
                var y = Linear(RmsNorm(x[t], Weights["model.norm.weight"]), head2, vocab);
                y.CopyTo(logits, (b * tokens + t) * vocab);
            }
        }
        return logits;
    }

    /// <summary>Mean cross-entropy of the logits against targets.</summary>
    public double Loss(int[] ids, int[] targets, int batch, int tokens)
    {
        var logits = Logits(ids, batch, tokens);
        double total = 0;
        for (int r = 0; r < batch * tokens; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < vocab; j++) max = Math.Max(max, logits[r * vocab + j]);
            double sum = 0;
            for (int j = 0; j < vocab; j++) sum += Math.Exp(logits[r * vocab + j] - max);
            total += max + Math.Log(sum) - logits[r * vocab + targets[r]];
        }
        return total / (batch * tokens);
    }

    double[] RmsNorm(double[] x, double[] weight)
    {
        double meanSquare = 0;
        foreach (double value in x) meanSquare += value * value;
        double scale = 1 / Math.Sqrt(meanSquare / x.Length + eps);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * scale * weight[i];
        return y;
    }

    /// <summary>y = W x with W [outputs, inputs] (torch.nn.Linear).</summary>
    static double[] Linear(double[] x, double[] weight, int outputs)
    {
        var y = new double[outputs];
        for (int o = 0; o < outputs; o++)
            for (int i = 0; i < x.Length; i++) y[o] += weight[o * x.Length + i] * x[i];
        return y;
    }

    /// <summary>HF apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, rotate_half(x) = [-x2, x1].</summary>
    double[] Rope(double[] x, int headCount, int headDim, int position)
    {
        int half = headDim / 2;
        var y = new double[x.Length];
        for (int h = 0; h < headCount; h++)
            for (int i = 0; i < half; i++)
            {
                double angle = position * Math.Pow(theta, -2.0 * i / headDim) / (FrequencyDivisors?[i] ?? 1.0);
                double x1 = x[h * headDim + i], x2 = x[h * headDim + i + half];
                y[h * headDim + i] = x1 * Math.Cos(angle) - x2 * Math.Sin(angle);
                y[h * headDim + i + half] = x2 * Math.Cos(angle) + x1 * Math.Sin(angle);
            }
        return y;
    }
}
