using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// The attention half of a Llama block: RMSNorm, q/k/v projections, RoPE on q and k,
/// causal grouped-query attention, output projection. Returns the residual branch (the caller adds it).
/// Weights use Hugging Face's Linear layout [out, in], so y = x · Wᵀ.
/// </summary>
public sealed class Attention
{
    readonly LlamaConfig config;

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

    /// <summary>x [batch, tokens, dim] → the attention branch [batch, tokens, dim].</summary>
    public Tensor Forward(Tape tape, Tensor x, int positionOffset = 0)
    {
        var h = tape.RmsNorm(x, Norm, config.NormEps); // [batch, tokens, dim]
        var q = LoraAdapter.Linear(tape, h, Query, Adapters); // [batch, tokens, heads·headDim]
        var k = LoraAdapter.Linear(tape, h, Key, Adapters); // [batch, tokens, kvHeads·headDim]
        var v = LoraAdapter.Linear(tape, h, Value, Adapters); // [batch, tokens, kvHeads·headDim]
        q = tape.Rope(q, config.Heads, config.HeadDim, config.RopeTheta, positionOffset); // [batch, tokens, heads·headDim]
        k = tape.Rope(k, config.KvHeads, config.HeadDim, config.RopeTheta, positionOffset); // [batch, tokens, kvHeads·headDim]
        var attended = tape.CausalAttention(q, k, v, config.Heads, config.KvHeads); // [batch, tokens, heads·headDim]
        return LoraAdapter.Linear(tape, attended, Output, Adapters); // [batch, tokens, dim]
    }
}
