"""Shapes of a decoder and its training FLOPs per token, by arithmetic on its config: no torch.

`ja-adapt plan` answers from these in milliseconds; importing torch and transformers to build a
meta-device model took seconds longer than the arithmetic. The architectures whose parameters are
written out below (`LAYOUTS`: Qwen2, Llama, Mistral) are checked against the meta-device model in
tests/unit/models/test_plan.py; any other architecture is built on the meta device (`_meta_arch`).

The presets (`PRESETS`) live here too, as plain dicts, so that planning a preset imports nothing
heavy; models.py turns them into transformers configs.

FLOPs per trained token (defined once, here; telemetry re-exports it; docs/plan.md states the
derivation):
  N       = matmul weight parameters: every nn.Linear weight of the model, lm_head included (it is
            a [vocab, hidden] matmul even when tied to the embedding). Embedding lookups, norms and
            biases are not counted (lookups and element-wise ops are not matmuls; biases are O(N/d)).
  attn    = 12 · L · (heads · head_dim) · T, T = seq_len, the full packed row length (PaLM's
            convention: the whole T×T score matrix, not halved for the causal mask nor shortened by
            document boundaries), so MFU is comparable with published numbers.
  base trains (full)   6 · N + attn                   (forward 2N, backward 4N: input and weight grads)
  frozen base (lora)   4 · N + 6 · N_trainable + attn (the base skips its 2N weight-gradient matmuls)
Which applies is the method's `MethodSpec.trains_base` (method_spec.py). Activation checkpointing
runs most of every decoder layer's forward once more (`recompute_flops_per_token`): hardware work,
not model FLOPs, so it counts in the time model and not in MFU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ja_adapt.methods.spec import method_spec

# Public Qwen2.5 configuration facts (config.json of each release). All: rope_theta 1e6,
# rms_norm_eps 1e-6, SiLU MLP, q/k/v projections with bias, o_proj without.
_QWEN25 = dict(
    model_type="qwen2",
    hidden_act="silu",
    rms_norm_eps=1e-6,
    max_position_embeddings=32768,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
)
PRESETS: dict[str, dict] = {
    "tiny": dict(
        _QWEN25,
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=8192,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
    ),
    # the embedded demo's base model (about 1M parameters): measured to learn its languages in
    # minutes on 2 CPU cores (docs/demo.md: the recipe and what else was tried)
    "micro": dict(
        _QWEN25,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=2048,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
    ),
    "qwen2.5-0.5b": dict(
        _QWEN25,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "qwen2.5-1.5b": dict(
        _QWEN25,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "qwen2.5-7b": dict(
        _QWEN25,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
    "qwen2.5-14b": dict(
        _QWEN25,
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=48,
        num_attention_heads=40,
        num_key_value_heads=8,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
}

# model_type → which projections carry a bias, as transformers builds the model: a fixed bool, or
# the config key that decides it (its class default False). Written out for the architectures
# the planner knows by arithmetic; every other model_type goes to the meta device.
LAYOUTS: dict[str, dict[str, bool | str]] = {
    "qwen2": {"qkv_bias": True, "o_bias": False, "mlp_bias": False},
    "llama": {"qkv_bias": "attention_bias", "o_bias": "attention_bias", "mlp_bias": "mlp_bias"},
    "mistral": {"qkv_bias": False, "o_bias": False, "mlp_bias": False},
}
# Config keys the arithmetic needs stated (the others have the defaults of transformers' classes).
REQUIRED_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


@dataclass(frozen=True)
class Arch:
    """Shapes of a decoder."""

    hidden: int
    ff: int
    layers: int
    heads: int
    q_width: int  # heads · head_dim
    kv_width: int  # kv_heads · head_dim
    head_dim: int
    vocab: int
    total: int  # parameters, tied weights once
    embedding: int  # input embedding matrix
    lm_head: int  # untied output matrix (0 when tied to the embedding)
    n_tensors: int  # parameter tensors (AdamW keeps a step counter for each)
    linears: tuple  # (leaf name, in, out) of every nn.Linear in one layer
    max_positions: int | None = None  # max_position_embeddings, when the config states it

    @property
    def matmul(self) -> int:
        """N: every nn.Linear weight (decoder projections and the lm_head, tied or not)."""
        return self.layers * sum(i * o for _, i, o in self.linears) + self.vocab * self.hidden


def _get(config, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def _arithmetic_arch(config) -> Arch | None:
    """The Arch of a config of a LAYOUTS architecture (a dict or a transformers config), else None."""
    layout = LAYOUTS.get(_get(config, "model_type"))
    if layout is None or any(not isinstance(_get(config, k), int) for k in REQUIRED_KEYS):
        return None
    bias = {k: v if isinstance(v, bool) else bool(_get(config, v, False)) for k, v in layout.items()}
    d, f, layers = _get(config, "hidden_size"), _get(config, "intermediate_size"), _get(config, "num_hidden_layers")
    heads = _get(config, "num_attention_heads")
    kv_heads = _get(config, "num_key_value_heads") or heads
    head_dim = _get(config, "head_dim") or d // heads
    q, kv, vocab = heads * head_dim, kv_heads * head_dim, _get(config, "vocab_size")
    linears = (
        ("q_proj", d, q),
        ("k_proj", d, kv),
        ("v_proj", d, kv),
        ("o_proj", q, d),
        ("gate_proj", d, f),
        ("up_proj", d, f),
        ("down_proj", f, d),
    )
    biases = {
        "q_proj": bias["qkv_bias"],
        "k_proj": bias["qkv_bias"],
        "v_proj": bias["qkv_bias"],
        "o_proj": bias["o_bias"],
        "gate_proj": bias["mlp_bias"],
        "up_proj": bias["mlp_bias"],
        "down_proj": bias["mlp_bias"],
    }
    per_layer = sum(i * o + (o if biases[n] else 0) for n, i, o in linears) + 2 * d  # + 2 RMSNorms
    tensors_per_layer = len(linears) + sum(biases.values()) + 2
    tied = bool(_get(config, "tie_word_embeddings", False))
    head = 0 if tied else vocab * d
    return Arch(
        hidden=d,
        ff=f,
        layers=layers,
        heads=heads,
        q_width=q,
        kv_width=kv,
        head_dim=head_dim,
        vocab=vocab,
        total=vocab * d + head + d + layers * per_layer,
        embedding=vocab * d,
        lm_head=head,
        n_tensors=1 + (0 if tied else 1) + 1 + layers * tensors_per_layer,
        linears=linears,
        max_positions=_get(config, "max_position_embeddings"),
    )


def _meta_arch(config) -> Arch:
    """The Arch of any transformers decoder config, read from its model built on the meta device."""
    import torch  # heavy: only for architectures LAYOUTS does not write out
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = list(model.parameters())  # deduplicated: a tied lm_head is the embedding
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    layer = model.model.layers[0]
    linears = tuple(
        (n.rsplit(".", 1)[-1], m.in_features, m.out_features)
        for n, m in layer.named_modules()
        if isinstance(m, torch.nn.Linear)
    )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return Arch(
        hidden=config.hidden_size,
        ff=config.intermediate_size,
        layers=config.num_hidden_layers,
        heads=config.num_attention_heads,
        q_width=config.num_attention_heads * head_dim,
        kv_width=kv_heads * head_dim,
        head_dim=head_dim,
        vocab=emb.shape[0],
        total=sum(p.numel() for p in params),
        embedding=emb.numel(),
        lm_head=0 if head is emb else head.numel(),
        n_tensors=len(params),
        linears=linears,
        max_positions=getattr(config, "max_position_embeddings", None),
    )


_ARCH_CACHE: dict[str, Arch] = {}


def architecture(config) -> Arch:
    """Parameter counts and layer shapes of a decoder config (a dict or a transformers config)."""
    key = (
        json.dumps(config, sort_keys=True, default=str)
        if isinstance(config, dict)
        else config.to_json_string(use_diff=False)
    )
    if key not in _ARCH_CACHE:
        _ARCH_CACHE[key] = _arithmetic_arch(config) or _meta_arch(config)
    return _ARCH_CACHE[key]


def local_config(model: str) -> dict | None:
    """A preset's config dict, or a local directory's config.json when LAYOUTS knows its
    architecture and it states the shapes; None otherwise (transformers must read it)."""
    if model in PRESETS:
        return PRESETS[model]
    path = Path(model)
    cfg_file = (path.parent if path.suffix == ".json" else path) / "config.json"
    if not cfg_file.is_file():
        return None
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # transformers' reader names the problem
    return raw if isinstance(raw, dict) and _arithmetic_arch(raw) is not None else None


# ---- FLOPs ---------------------------------------------------------------------------------------


def matmul_params(config) -> int:
    """N: parameters of every nn.Linear weight (decoder projections and lm_head) of `config`'s model."""
    return architecture(config).matmul


def flops_per_token(config, *, method: str, trainable_params: int, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) of a causal LM built from `config`.

    method: a registered method; one that trains its base (full) needs no `trainable_params`, one
    with a frozen base (lora) takes its trainable (adapter) parameters. seq_len: packed row length T.
    """
    a = architecture(config)
    attention = 12.0 * a.layers * a.q_width * seq_len
    if method_spec(method).trains_base:
        return 6.0 * a.matmul + attention
    return 4.0 * a.matmul + 6.0 * trainable_params + attention


def recompute_flops_per_token(config, *, seq_len: int) -> float:
    """FLOPs per token that activation checkpointing adds: each decoder layer's forward again
    (2 per weight of its Linears, 4 · (heads · head_dim) · T for attention; not the lm_head), less
    its last Linear (down_proj): torch's non-reentrant checkpoint stops recomputing once every
    tensor backward needs is back, and down_proj's own inputs are the last of them (measured with
    FlopCounterMode in tests/unit/train/test_telemetry.py)."""
    a = architecture(config)
    return a.layers * (2.0 * sum(i * o for _, i, o in a.linears[:-1]) + 4.0 * a.q_width * seq_len)


# Peak dense bf16 tensor throughput (FLOP/s), matched as a case-insensitive substring of the device
# name. Dense figures only: H100's "1979 TFLOP/s" is with 2:4 sparsity and is never used.
PEAK_BF16_FLOPS: dict[str, float] = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a device from its name (e.g. 'NVIDIA H100 80GB HBM3'), None if unknown."""
    upper = device_name.upper()
    for key, value in PEAK_BF16_FLOPS.items():
        if key in upper:
            return value
    return None
