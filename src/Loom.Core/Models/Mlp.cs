using Loom.Tensors;

namespace Loom.Models;

/// <summary>
/// The MLP half of a Llama block: RMSNorm, then down(silu(gate(x)) ⊙ up(x)).
/// Returns the residual branch (the caller adds it).
/// </summary>
public sealed class Mlp
{
    readonly LlamaConfig config;

    /// <summary>model.layers.{i}.post_attention_layernorm.weight</summary>
    public Tensor Norm { get; } // [dim]
    /// <summary>model.layers.{i}.mlp.gate_proj.weight</summary>
    public Tensor Gate { get; } // [hidden, dim]
    /// <summary>model.layers.{i}.mlp.up_proj.weight</summary>
    public Tensor Up { get; } // [hidden, dim]
    /// <summary>model.layers.{i}.mlp.down_proj.weight</summary>
    public Tensor Down { get; } // [dim, hidden]

    public Mlp(LlamaConfig config, int layer)
    {
        this.config = config;
        string prefix = $"model.layers.{layer}.";
        Norm = Tensor.Parameter(prefix + "post_attention_layernorm.weight", config.Dim);
        Gate = Tensor.Parameter(prefix + "mlp.gate_proj.weight", config.HiddenDim, config.Dim);
        Up = Tensor.Parameter(prefix + "mlp.up_proj.weight", config.HiddenDim, config.Dim);
        Down = Tensor.Parameter(prefix + "mlp.down_proj.weight", config.Dim, config.HiddenDim);
    }

    /// <summary>The parameters in Hugging Face's order within a layer.</summary>
    public IEnumerable<Tensor> Parameters => [Norm, Gate, Up, Down];

    /// <summary>LoRA adapters on this layer's projections (see <see cref="Lora"/>); empty for a plain model.</summary>
    public List<LoraAdapter> Adapters { get; } = [];

    /// <summary>x [batch, tokens, dim] → the MLP branch [batch, tokens, dim].</summary>
    public Tensor Forward(Tape tape, Tensor x)
    {
        var h = tape.RmsNorm(x, Norm, config.NormEps); // [batch, tokens, dim]
        var (gate, up) = Linear.Forward(tape, h, Gate, Up, Adapters); // [batch, tokens, hidden] twice
        var activated = tape.SwiGlu(gate, up); // [batch, tokens, hidden]
        return Linear.Forward(tape, activated, Down, Adapters); // [batch, tokens, dim]
    }
}
