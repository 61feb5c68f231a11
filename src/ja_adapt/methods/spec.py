"""What configuration, planning and telemetry need to know about an adaptation method, without torch.

A method has two halves. Its `MethodSpec` here (name, which weights train, what it saves) is what
the config validates against and what the plan, FLOPs per token and the report read. Its builder in
methods.py (the peft config, or none for full fine-tuning) is what wraps a model. A test keeps the
two registries equal, so adding a method is one spec here, one builder there, and their tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ja_adapt.core.errors import UserError, closest


@dataclass(frozen=True)
class MethodSpec:
    name: str                   # the `method` config value
    summary: str                # one line for --help and the report
    trains_base: bool           # every base weight trains (full fine-tuning); else the base is frozen
    artifact: str               # what a run saves: "adapter" (peft adapter dir) or "model" (full model dir)
    adapts_linears: bool        # trains rank-r adapters on the `lora.targets` linears (lora.rank, lora.alpha)
    quantized_base: bool = False  # the frozen base's decoder linears are stored 4-bit NF4 (bitsandbytes)
    # (arch, options) -> exact trainable parameters of a frozen-base method: arch is arch.Arch,
    # options the ExperimentConfig with this method's lora variant applied (`options`). None: every
    # weight trains.
    trainable: Callable[[Any, Any], int] | None = None
    # (arch, options) -> the per-layer nn.Linear names from whose outputs on gradients flow in every
    # layer, also the first (the plan's activation model: what the backward pass must keep)
    grad_entry: Callable[[Any, Any], frozenset] = lambda arch, options: frozenset()
    # (arch, options, activation bytes, seq, masked: attention gets an explicit mask) -> bytes per
    # token per layer the method saves for backward beyond the LoRA adapters the plan already counts
    # (IA3's scaled tensors, DoRA's base and adapter outputs, the prefix's keys and values); each
    # checked against saved-tensor hooks on the tiny model in tests/test_plan.py
    saved_per_token: Callable[[Any, Any, int, int, bool], float] = lambda arch, options, act, seq, masked: 0.0
    # (arch, options) -> bytes one layer's forward makes and frees again before the next layer (DoRA's
    # weight norm); the step's peak is the larger of the largest of them and the loss's working set
    forward_transient: Callable[[Any, Any], float] = lambda arch, options: 0.0
    # (arch, options) -> trainable tensors (AdamW keeps a step counter for each); None: every weight
    trainable_tensors: Callable[[Any, Any], int] | None = None
    # (arch, options) -> parameters the method adds that do not train (AdaLoRA's rank counters)
    frozen_added: Callable[[Any, Any], int] = lambda arch, options: 0
    # the adapter's first factor is formed in every step (AdaLoRA's P·Λ, r×in): an fp32 matmul saves
    # it for its input's gradient (under autocast it is the 2-byte copy LoRA's A has too)
    adapter_product: bool = False
    # attention always gets an explicit mask (the prefix's positions), so it keeps one and the keys
    # and values repeated to every query head, as for packed rows
    masks_attention: bool = False
    state_copies: int = 0       # fp32 copies of the trainable parameters kept besides AdamW's (AdaLoRA)
    # keeps training state besides its weights and AdamW's that checkpoints must carry to resume
    # exactly (its methods.STATE hooks: AdaLoRA's rank allocator); sharded (FSDP) ones do not
    checkpoint_state: bool = False
    merges: bool = False        # peft can fold the adapter into the base weights (`ja-adapt merge`)
    lora_variant: tuple = ()    # (lora key, value) pairs this method fixes: `dora` is lora + use_dora


SPECS: dict[str, MethodSpec] = {}


def register_spec(spec: MethodSpec) -> MethodSpec:
    """Add a method's spec; a second spec with the same name is refused (ValueError)."""
    if spec.name in SPECS:
        raise ValueError(f"method '{spec.name}' is already registered")
    if spec.artifact not in ("adapter", "model"):
        raise ValueError(f"method '{spec.name}': artifact must be adapter or model")
    SPECS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    """The spec of a registered method; UserError naming the key for an unknown one."""
    if name not in SPECS:
        raise UserError(f"config: key 'method' is '{name}', not a known method{closest(name, SPECS)}; "
                        f"known: {', '.join(SPECS)}")
    return SPECS[name]


def options(cfg):
    """`cfg` (an ExperimentConfig) as its method sees it: a copy with the method's lora variant
    set (method=dora: lora.use_dora true), so builder, plan and validation read one set of keys."""
    variant = dict(method_spec(cfg.method).lora_variant)
    if not variant:
        return cfg
    return dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, **variant))


# ---- the methods' arithmetic (shapes: arch.Arch; every count is checked against peft's own in tests)

def _adapted(arch, options) -> list[tuple[str, int, int]]:
    names = set(resolve_targets(options.lora.targets))
    return [(n, i, o) for n, i, o in arch.linears if n in names]


def _embedding_params(arch, options) -> int:
    """Embedding rows trained beside a LoRA adapter: the whole embedding and output head
    (lora.train_embeddings; one matrix when they are tied), or the rows of lora.train_token_ids."""
    if options.lora.train_embeddings:
        return arch.embedding + arch.lm_head
    return len(set(options.lora.train_token_ids)) * arch.hidden


def _lora_params(arch, options) -> int:
    """r·(in + out) per adapted Linear (A: r×in, B: out×r), + out for DoRA's magnitude vector."""
    lo = options.lora
    per_layer = sum(lo.rank * (i + o) + (o if lo.use_dora else 0) for _, i, o in _adapted(arch, options))
    return arch.layers * per_layer + _embedding_params(arch, options)


def _dora_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """DoRA's output is (m/||W + BA|| - 1)·Wx + (m/||W + BA||)·s·BAx: the magnitude's gradient keeps
    both products' other factor, Wx and s·BAx ([out] each per token)."""
    return sum(2 * o * act for _, _, o in _adapted(arch, options)) if options.lora.use_dora else 0.0


def _dora_transient(arch, options) -> float:
    """peft's DoRA recomputes ||W + s·B·A|| per output row in every forward: B·A through an [in, in]
    identity (so B·A itself is never a parameter product FSDP could not see), then s·B·A and W + s·B·A,
    all fp32, freed before the next Linear. Bytes of the largest adapted Linear's: identity, A·I,
    three [out, in] matrices and two [out] vectors (the norm, the magnitude's ratio to it), an upper
    bound of what lives at once (tests/test_plan.py measures the real tensors)."""
    if not options.lora.use_dora:
        return 0.0
    r = options.lora.rank
    return max(4.0 * (i * i + i * r + 3 * i * o + 2 * o) for _, i, o in _adapted(arch, options))


def _lora_tensors(arch, options) -> int:
    """A and B per adapted Linear, DoRA's magnitude too; the trained embedding matrices or rows."""
    lo = options.lora
    per_linear = 3 if lo.use_dora else 2
    embeddings = (1 if arch.lm_head == 0 else 2) if lo.train_embeddings else (1 if lo.train_token_ids else 0)
    return arch.layers * per_linear * len(_adapted(arch, options)) + embeddings


def _adalora_params(arch, options) -> int:
    """SVD-form adapter at the initial rank r = lora.rank: P (r×in), Q (out×r), Λ (r×1)."""
    return arch.layers * sum(options.lora.rank * (i + o + 1) for _, i, o in _adapted(arch, options))


def _ia3_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """IA3 keeps, for its vector's gradient, the output it scales (activation dtype) or, on a
    feed-forward target, the input it scales, which peft upcasts to the vector's fp32 first."""
    names = set(resolve_targets(options.ia3.targets, "ia3.targets"))
    ff = set(resolve_targets(options.ia3.feedforward, "ia3.feedforward")) if options.ia3.feedforward else set()
    return sum(4 * i if n in ff else act * o for n, i, o in arch.linears if n in names)


def _ia3_vectors(arch, options) -> list[int]:
    """IA3 learns one vector per target: over the input of a feed-forward target (ia3.feedforward),
    over the output of the others."""
    names = set(resolve_targets(options.ia3.targets, "ia3.targets"))
    ff = set(resolve_targets(options.ia3.feedforward, "ia3.feedforward")) if options.ia3.feedforward else set()
    return [i if n in ff else o for n, i, o in arch.linears if n in names]


def _prefix_params(arch, options) -> int:
    """A key and a value per virtual token in every layer, of the key/value width (peft sizes the
    prefix by num_key_value_heads under grouped-query attention)."""
    return options.prefix.virtual_tokens * arch.layers * 2 * arch.kv_width


def _prefix_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """Attention saves the prefix's keys and values in every layer, once per sequence of `seq`
    tokens and repeated to every query head (the mask is explicit: masks_attention), and the mask
    grows by the prefix's columns."""
    return options.prefix.virtual_tokens * (2 * arch.q_width * act / seq + act)


def _lora_entry(arch, options) -> frozenset:
    return frozenset(n for n, _, _ in _adapted(arch, options))


_LORA = dict(trains_base=False, artifact="adapter", adapts_linears=True, trainable=_lora_params,
             grad_entry=_lora_entry, saved_per_token=_dora_saved, trainable_tensors=_lora_tensors,
             forward_transient=_dora_transient, merges=True)
register_spec(MethodSpec("lora", "LoRA adapters on the target projections (peft); base frozen", **_LORA))
register_spec(MethodSpec("full", "full fine-tuning: every weight trains",
                         trains_base=True, artifact="model", adapts_linears=False))
register_spec(MethodSpec("dora", "DoRA: LoRA with a learned magnitude per output (lora.use_dora)",
                         lora_variant=(("use_dora", True),), **_LORA))
register_spec(MethodSpec("rslora", "rank-stabilised LoRA: update scaled by alpha/sqrt(r) (lora.use_rslora)",
                         lora_variant=(("use_rslora", True),), **_LORA))
register_spec(MethodSpec(
    "adalora", "AdaLoRA: SVD-form LoRA whose rank budget is reallocated during training (adalora.*)",
    trains_base=False, artifact="adapter", adapts_linears=True, trainable=_adalora_params,
    grad_entry=_lora_entry, adapter_product=True,
    trainable_tensors=lambda arch, options: 3 * arch.layers * len(_adapted(arch, options)),   # P, Λ, Q
    frozen_added=lambda arch, options: arch.layers * len(_adapted(arch, options)),   # rank counters
    state_copies=3, checkpoint_state=True,   # sensitivity, its EMA, uncertainty
    merges=True))
register_spec(MethodSpec(
    "ia3", "IA3: learned scaling vectors on the ia3.targets projections; base frozen",
    trains_base=False, artifact="adapter", adapts_linears=False,
    trainable=lambda arch, options: arch.layers * sum(_ia3_vectors(arch, options)),
    grad_entry=lambda arch, options: frozenset(resolve_targets(options.ia3.targets, "ia3.targets")),
    trainable_tensors=lambda arch, options: arch.layers * len(_ia3_vectors(arch, options)),
    saved_per_token=_ia3_saved, merges=True))
register_spec(MethodSpec(
    "prefix", "prefix tuning: learned keys and values of prefix.virtual_tokens in every layer",
    trains_base=False, artifact="adapter", adapts_linears=False, trainable=_prefix_params,
    grad_entry=lambda arch, options: frozenset({"k_proj", "v_proj"}),
    trainable_tensors=lambda arch, options: 1,     # one embedding of every layer's keys and values
    masks_attention=True,
    saved_per_token=_prefix_saved, merges=False))


# Module-name presets for Qwen2-style decoders (names of nn.Linear modules inside each layer).
TARGET_PRESETS: dict[str, list[str]] = {
    "qv": ["q_proj", "v_proj"],
    "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def resolve_targets(targets: str, key: str = "lora.targets") -> list[str]:
    """A preset name or a comma-separated list of module names → module names (errors name `key`)."""
    if targets in TARGET_PRESETS:
        return list(TARGET_PRESETS[targets])
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not names or any(not n.replace("_", "").isalnum() for n in names):
        raise UserError(f"config: key '{key}' is '{targets}'{closest(targets, TARGET_PRESETS)}; "
                        f"use {', '.join(TARGET_PRESETS)} or a comma list of module names")
    return names


# QLoRA (Dettmers et al. 2023): LoRA over a base whose decoder linears are 4-bit NF4, dequantized
# block by block in each matmul. Embeddings, norms and the output head stay unquantized.
register_spec(MethodSpec("qlora", "LoRA adapters over a 4-bit NF4 frozen base (bitsandbytes; qlora.* keys)",
                         quantized_base=True, **_LORA))
