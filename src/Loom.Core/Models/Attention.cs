using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// The attention half of a Llama block: RMSNorm, q/k/v projections (plus biases in Qwen2), RoPE on q and k
/// (Llama 3's scaled frequencies when the config has rope_scaling), causal grouped-query attention (within
/// Mistral's sliding window when the config has one), output projection. Returns the residual branch (the caller adds it).
/// Weights use Hugging Face's Linear layout [out, in], so y = x · Wᵀ. The same code runs training (no cache),
/// prefill (one sequence, many tokens, written to the cache) and decode (one token of each of several
/// sequences, attending to their cached past).
/// </summary>
public sealed class Attention
{
    readonly LlamaConfig config;
    readonly int layer;
    readonly Tensor? frequencyDivisors; // [headDim/2] Llama 3's rope scaling, or null

    /// <summary>model.layers.{i}.input_layernorm.weight</summary>
    public Tensor Norm { get; } // [dim]
    /// <summary>model.layers.{i}.self_attn.q_proj.weight</summary>
    public Tensor Query { get; } // [heads·headDim, dim]
    /// <summary>model.layers.{i}.self_attn.k_proj.weight</summary>
    public Tensor Key { get; } // [kvHeads·headDim, dim]
    /// <summary>model.layers.{i}.self_attn.v_proj.weight</summary>
    public Tensor Value { get; } // [kvHeads·headDim, dim]
    /// <summary>model.layers.{i}.self_attn.o_proj.weight</summary>
    public Tensor Output { get; } // [dim, heads·headDim]
    /// <summary>model.layers.{i}.self_attn.q_proj.bias (Qwen2), else null.</summary>
    public Tensor? QueryBias { get; } // [heads·headDim]
    /// <summary>model.layers.{i}.self_attn.k_proj.bias (Qwen2), else null.</summary>
    public Tensor? KeyBias { get; } // [kvHeads·headDim]
    /// <summary>model.layers.{i}.self_attn.v_proj.bias (Qwen2), else null.</summary>
    public Tensor? ValueBias { get; } // [kvHeads·headDim]

    public Attention(LlamaConfig config, int layer)
    {
        this.config = config;
        this.layer = layer;
        string prefix = $"model.layers.{layer}.";
        Norm = Tensor.Parameter(prefix + "input_layernorm.weight", config.Dim);
        Query = Tensor.Parameter(prefix + "self_attn.q_proj.weight", config.QueryDim, config.Dim);
        Key = Tensor.Parameter(prefix + "self_attn.k_proj.weight", config.KvDim, config.Dim);
        Value = Tensor.Parameter(prefix + "self_attn.v_proj.weight", config.KvDim, config.Dim);
        Output = Tensor.Parameter(prefix + "self_attn.o_proj.weight", config.Dim, config.QueryDim);
        if (config.AttentionBias)
        {
            QueryBias = Tensor.Parameter(prefix + "self_attn.q_proj.bias", config.QueryDim);
            KeyBias = Tensor.Parameter(prefix + "self_attn.k_proj.bias", config.KvDim);
            ValueBias = Tensor.Parameter(prefix + "self_attn.v_proj.bias", config.KvDim);
        }
        if (config.RopeFrequencyDivisors() is float[] divisors) frequencyDivisors = Tensor.From(divisors, divisors.Length);
    }

    /// <summary>The parameters in Hugging Face's order within a layer.</summary>
    public IEnumerable<Tensor> Parameters => QueryBias is null
        ? [Norm, Query, Key, Value, Output]
        : [Norm, Query, QueryBias, Key, KeyBias!, Value, ValueBias!, Output];

    /// <summary>LoRA adapters on this layer's projections (see <see cref="Lora"/>); empty for a plain model.</summary>
    public List<LoraAdapter> Adapters { get; } = [];

    /// <summary>
    /// x [batch, tokens, dim] → the attention branch [batch, tokens, dim]. Without a cache each batch row is a
    /// whole sequence from position 0; with one, batch row b continues the sequence in its slot (see
    /// <see cref="KvCacheView"/>): its keys and values are appended and its queries attend to the cached past.
    /// </summary>
    public Tensor Forward(Tape tape, Tensor x, KvCacheView? cache = null)
    {
        var h = tape.RmsNorm(x, Norm, config.NormEps); // [batch, tokens, dim]
        var (q, k, v) = Linear.Forward(tape, h, Query, Key, Value, Adapters); // [batch, tokens, heads·headDim], [batch, tokens, kvHeads·headDim] twice
        if (QueryBias is not null)
        {
            q = tape.AddBias(q, QueryBias); // [batch, tokens, heads·headDim]
            k = tape.AddBias(k, KeyBias!); // [batch, tokens, kvHeads·headDim]
            v = tape.AddBias(v, ValueBias!); // [batch, tokens, kvHeads·headDim]
        }
        q = cache is null
            ? tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta, frequencyDivisors: frequencyDivisors) // [batch, tokens, heads·headDim]
            : tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta, cache.Starts, frequencyDivisors); // [batch, tokens, heads·headDim]
        k = cache is null
            ? tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta, frequencyDivisors: frequencyDivisors) // [batch, tokens, kvHeads·headDim]
            : tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta, cache.Starts, frequencyDivisors); // [batch, tokens, kvHeads·headDim]
        int window = config.SlidingWindow ?? 0;
        var attended = cache is null
            ? tape.CausalAttention(q, k, v, config.Heads, config.KvHeads, window) // [batch, tokens, heads·headDim]
            : cache.Attend(tape, layer, q, k, v, config.Heads, config.KvHeads, window); // [batch, tokens, heads·headDim]
        return Linear.Forward(tape, attended, Output, Adapters); // [batch, tokens, dim]
    }
}
