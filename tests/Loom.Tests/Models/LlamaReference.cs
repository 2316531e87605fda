namespace Loom.Tests.Models;

/// <summary>
/// The whole Llama forward written plainly in float64, from the Hugging Face modeling_llama
/// definitions, sharing no code with the engine: weights by Hugging Face name, row-major [out, in].
/// </summary>
internal sealed class LlamaReference(int vocab, int dim, int layers, int heads, int kvHeads, int hidden, double theta, double eps, bool tied)
{
    public required Dictionary<string, double[]> Weights { get; init; }

    /// <summary>Logits [batch·tokens·vocab] for ids [batch·tokens].</summary>
    public double[] Logits(int[] ids, int batch, int tokens)
    {
        int headDim = dim / heads;
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
                    q[t] = Rope(Linear(h, Weights[p + "self_attn.q_proj.weight"], heads * headDim), heads, headDim, t);
                    k[t] = Rope(Linear(h, Weights[p + "self_attn.k_proj.weight"], kvHeads * headDim), kvHeads, headDim, t);
                    v[t] = Linear(h, Weights[p + "self_attn.v_proj.weight"], kvHeads * headDim);
                }
                for (int t = 0; t < tokens; t++)
                {
                    var attended = new double[heads * headDim];
                    for (int head = 0; head < heads; head++)
                    {
                        int kvHead = head / (heads / kvHeads);
                        var scores = new double[t + 1];
                        double max = double.NegativeInfinity;
                        for (int s = 0; s <= t; s++)
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
                double angle = position * Math.Pow(theta, -2.0 * i / headDim);
                double x1 = x[h * headDim + i], x2 = x[h * headDim + i + half];
                y[h * headDim + i] = x1 * Math.Cos(angle) - x2 * Math.Sin(angle);
                y[h * headDim + i + half] = x2 * Math.Cos(angle) + x1 * Math.Sin(angle);
            }
        return y;
    }
}
