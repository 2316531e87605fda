using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// The attention half of a Llama block: RMSNorm, q/k/v projections, RoPE on q and k,
/// causal grouped-query attention, output projection. Returns the residual branch (the caller adds it).
/// Weights use Hugging Face's Linear layout [out, in], so y = x · Wᵀ. The same code runs training (no cache),
/// prefill (one sequence, many tokens, written to the cache) and decode (one token of each of several
/// sequences, attending to their cached past).
/// </summary>
public sealed class Attention
{
    readonly LlamaConfig config;
    readonly int layer;

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

    public Attention(LlamaConfig config, int layer)
    {
        this.config = config;
        this.layer = layer;
        string prefix = $"model.layers.{layer}.";
        Norm = Tensor.Parameter(prefix + "input_layernorm.weight", config.Dim);
        Query = Tensor.Parameter(prefix + "self_attn.q_proj.weight", config.Heads * config.HeadDim, config.Dim);
        Key = Tensor.Parameter(prefix + "self_attn.k_proj.weight", config.KvDim, config.Dim);
        Value = Tensor.Parameter(prefix + "self_attn.v_proj.weight", config.KvDim, config.Dim);
        Output = Tensor.Parameter(prefix + "self_attn.o_proj.weight", config.Dim, config.Heads * config.HeadDim);
    }

    /// <summary>The parameters in Hugging Face's order within a layer.</summary>
    public IEnumerable<Tensor> Parameters => [Norm, Query, Key, Value, Output];

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
        q = cache is null
            ? tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta) // [batch, tokens, heads·headDim]
            : tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta, cache.Starts); // [batch, tokens, heads·headDim]
        k = cache is null
            ? tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta) // [batch, tokens, kvHeads·headDim]
            : tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta, cache.Starts); // [batch, tokens, kvHeads·headDim]
        var attended = cache is null
            ? tape.CausalAttention(q, k, v, config.Heads, config.KvHeads) // [batch, tokens, heads·headDim]
            : cache.Attend(tape, layer, q, k, v, config.Heads, config.KvHeads); // [batch, tokens, heads·headDim]
        return Linear.Forward(tape, attended, Output, Adapters); // [batch, tokens, dim]
    }
}
