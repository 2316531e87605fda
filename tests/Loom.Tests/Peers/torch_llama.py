"""Loom's Llama model written again in plain PyTorch: the outside check of Loom's autograd and AdamW
(tests/Loom.Tests/Peers/TorchPeerTests.cs) and the peer that `bench torch` times (bench/Loom.Bench/TorchBench.cs).

  torch_llama.py grad FOLDER    reads config.json, model.safetensors, batch.json; writes torch.json with the loss and
                                every gradient in float64 and float32
  torch_llama.py adamw FOLDER   reads adamw.json, params.safetensors, grads.safetensors; runs torch.optim.AdamW in
                                float64 and writes adamw_result.json with the parameters after the steps
  torch_llama.py bench CONFIG BATCH TOKENS
                                prints "ready <torch version> <BLAS library>", then answers each stdin line
                                "step THREADS" with the wall milliseconds of one training step (forward, backward,
                                clipping, AdamW) run with torch.set_num_threads(THREADS); "quit" ends it

The model follows Hugging Face's LlamaForCausalLM (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU, tied or
untied head); transformers is not needed. Safetensors files are read with struct and json.
"""
import json
import math
import struct
import sys
import time

import torch
import torch.nn.functional as F


def read_safetensors(path, dtype):
    with open(path, "rb") as f:
        data = f.read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length])
    base = 8 + header_length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        values = torch.frombuffer(bytearray(data[base + start:base + end]), dtype=torch.float32)
        tensors[name] = values.reshape(info["shape"]).to(dtype).clone()
    return tensors


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, theta):
    """x [batch, heads, tokens, headDim]; element i pairs with i + headDim/2 (Hugging Face's layout)."""
    head_dim, tokens = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(tokens, dtype=torch.float64), inv_freq)  # [tokens, headDim/2]
    angles = torch.cat((angles, angles), dim=-1)  # [tokens, headDim]
    return x * angles.cos().to(x.dtype) + rotate_half(x) * angles.sin().to(x.dtype)


def causal_mask(tokens):
    return torch.ones(tokens, tokens, dtype=torch.bool).triu(1)  # [tokens, tokens], True above the diagonal


def loss_of(w, config, ids, targets):
    """Mean next-token cross-entropy of ids [batch, tokens] against targets [batch, tokens] (-100 ignored)."""
    batch, tokens = ids.shape
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config["hidden_size"] // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    mask = causal_mask(tokens)
    x = w["model.embed_tokens.weight"][ids]  # [batch, tokens, dim]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(batch, tokens, heads, head_dim).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(batch, tokens, kv_heads, head_dim).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(batch, tokens, kv_heads, head_dim).transpose(1, 2)
        q, k = rope(q, theta), rope(k, theta)
        k = k.repeat_interleave(heads // kv_heads, dim=1)  # query head i reads kv head i // (heads / kvHeads)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)  # [batch, heads, tokens, tokens]
        attended = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v  # [batch, heads, tokens, headDim]
        attended = attended.transpose(1, 2).reshape(batch, tokens, heads * head_dim)
        x = x + attended @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    logits = x @ head.T  # [batch, tokens, vocab]
    return F.cross_entropy(logits.reshape(batch * tokens, -1), targets.reshape(-1), ignore_index=-100)


def grad(folder):
    with open(f"{folder}/config.json") as f:
        config = json.load(f)
    with open(f"{folder}/batch.json") as f:
        batch = json.load(f)
    shape = (batch["batch"], batch["tokens"])
    ids = torch.tensor(batch["ids"], dtype=torch.long).view(shape)
    targets = torch.tensor(batch["targets"], dtype=torch.long).view(shape)
    result = {"torch": torch.__version__}
    for label, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        weights = read_safetensors(f"{folder}/model.safetensors", dtype)
        for t in weights.values():
            t.requires_grad_(True)
        loss = loss_of(weights, config, ids, targets)
        loss.backward()
        result[label] = {
            "loss": loss.item(),
            "grads": {name: t.grad.reshape(-1).tolist() for name, t in weights.items()},
        }
    with open(f"{folder}/torch.json", "w") as f:
        json.dump(result, f)


def adamw(folder):
    with open(f"{folder}/adamw.json") as f:
        options = json.load(f)
    params = read_safetensors(f"{folder}/params.safetensors", torch.float64)
    grads = read_safetensors(f"{folder}/grads.safetensors", torch.float64)
    names = list(params)
    decayed = [params[n] for n in names if params[n].dim() >= 2]
    plain = [params[n] for n in names if params[n].dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": options["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
        lr=options["lr"], betas=(options["beta1"], options["beta2"]), eps=options["eps"])
    for step in range(options["steps"]):
        for n in names:
            params[n].grad = grads[f"{n}@{step}"]
        optimizer.step()
    with open(f"{folder}/adamw_result.json", "w") as f:
        json.dump({"torch": torch.__version__, "params": {n: params[n].reshape(-1).tolist() for n in names}}, f)


def loaded_blas():
    """The BLAS library torch's matrix products run on (Debian: the libblas.so.3 alternative), from /proc/self/maps."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.split()[-1]}
    return ",".join(sorted(paths)) or "none"


def bench(config_path, batch, tokens):
    with open(config_path) as f:
        config = json.load(f)
    generator = torch.Generator().manual_seed(1)
    dim, hidden, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv_dim = config["num_key_value_heads"] * (dim // config["num_attention_heads"])
    shapes = {"model.embed_tokens.weight": (vocab, dim)}
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes.update({
            p + "input_layernorm.weight": (dim,), p + "self_attn.q_proj.weight": (dim, dim),
            p + "self_attn.k_proj.weight": (kv_dim, dim), p + "self_attn.v_proj.weight": (kv_dim, dim),
            p + "self_attn.o_proj.weight": (dim, dim), p + "post_attention_layernorm.weight": (dim,),
            p + "mlp.gate_proj.weight": (hidden, dim), p + "mlp.up_proj.weight": (hidden, dim),
            p + "mlp.down_proj.weight": (dim, hidden)})
    shapes["model.norm.weight"] = (dim,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, dim)
    weights = {n: (torch.randn(s, generator=generator) * 0.02 if len(s) == 2 else torch.ones(s)).requires_grad_(True)
               for n, s in shapes.items()}
    optimizer = torch.optim.AdamW(
        [{"params": [t for t in weights.values() if t.dim() >= 2], "weight_decay": 0.1},
         {"params": [t for t in weights.values() if t.dim() < 2], "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    ids = torch.randint(vocab, (batch, tokens), generator=generator)
    targets = torch.randint(vocab, (batch, tokens), generator=generator)
    print(f"ready {torch.__version__} {loaded_blas()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        torch.set_num_threads(int(words[1]))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(weights, config, ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(weights.values()), 1.0)
        optimizer.step()
        print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "grad":
        grad(sys.argv[2])
    elif mode == "adamw":
        adamw(sys.argv[2])
    elif mode == "bench":
        bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode} (grad, adamw, bench)")
