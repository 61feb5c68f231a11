"""What a method is, and the one registry of methods: name → MethodSpec.

A `MethodSpec` holds everything about an adaptation method: the facts config validation, the plan,
FLOPs per token and the report read (which weights train, what a run saves), its plan arithmetic,
its config section and rules, its builder (the peft config that wraps a model) and its training
hooks. Each method module (`ja_adapt.methods.<name>`) registers its own spec; importing
`ja_adapt.methods` (or any of its modules) registers them all.

Torch-free: builders and hooks import torch and peft inside their bodies, so config, the planner
and the report can read the registry without loading them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ja_adapt.core.errors import UserError, closest


def key_error(key: str, why: str) -> UserError:
    """The UserError of an invalid config value, naming its key: "config: key 'KEY' WHY"."""
    return UserError(f"config: key '{key}' {why}")


@dataclass(frozen=True)
class Section:
    """A config section a method owns: `cfg.<key>`, a dataclass of its keys with their defaults."""

    key: str  # the section's name in the config (`lora` → lora.rank, lora.alpha, ...)
    cls: type  # its dataclass: every default, each with a one-line comment
    # it configures how the frozen base is stored (qlora), not the adapter: the planner takes its
    # keys as arguments of their own rather than as method settings, and the section sits after
    # `eval` in the config, where qlora's was added (saved configs keep their key order)
    base_storage: bool = False


@dataclass(frozen=True)
class MethodState:
    """What a method keeps while training besides its trainable weights and AdamW's state, so that
    a checkpoint can carry it and a resumed run continue bit for bit (checkpoint.save / restore).
    Tensors go to safetensors, the rest to JSON: nothing that needs unpickling."""

    # model -> (named tensors, JSON-serialisable scalars, lists and dicts)
    state_dict: Callable[[Any], tuple[dict[str, Any], dict]]
    # (model, tensors, scalars) -> None: puts what state_dict returned back into a freshly built
    # model; ValueError when they do not fit it
    load_state: Callable[[Any, dict[str, Any], dict], None]
    # state_dict includes the trainable weights exactly, and restore takes them from it rather than
    # from the checkpoint's adapter/ (which peft writes in a reduced form: AdaLoRA's, rank-pruned)
    holds_weights: bool = False


def _no_wrapper(cfg) -> None:
    return None


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the `method` config value
    summary: str  # one line for --help and the report
    trains_base: bool  # every base weight trains (full fine-tuning); else the base is frozen
    artifact: str  # what a run saves: "adapter" (peft adapter dir) or "model" (full model dir)
    adapts_linears: bool  # trains rank-r adapters on the `lora.targets` linears (lora.rank, lora.alpha)
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
    # checked against saved-tensor hooks on the tiny model in tests/unit/models/test_plan.py
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
    state_copies: int = 0  # fp32 copies of the trainable parameters kept besides AdamW's (AdaLoRA)
    merges: bool = False  # peft can fold the adapter into the base weights (`ja-adapt merge`)
    lora_variant: tuple = ()  # (lora key, value) pairs this method fixes: `dora` is lora + use_dora
    # ---- config: the section this method owns (None: it reads other methods' keys, or none), and
    # its rules, cfg -> None raising key_error; every registered method's rules run on every config,
    # whatever its method (a grid may switch methods)
    section: Section | None = None
    check: Callable[[Any], None] | None = None
    targets_key: str | None = None  # the config key naming the modules it wraps (for errors), if any
    # ---- building: cfg -> the peft config that wraps the model (None: the model trains as it is)
    peft_config: Callable[[Any], Any] = _no_wrapper
    # what the shared loop calls after each optimizer step, before the gradients are cleared:
    # hook(model, step), step counting from 1
    post_step: Callable[[Any, int], None] | None = None
    # the training state its checkpoints carry to resume exactly (AdaLoRA's rank allocator)
    state: MethodState | None = None

    @property
    def checkpoint_state(self) -> bool:
        """It keeps training state besides its weights and AdamW's that checkpoints must carry to
        resume exactly (its `state` hooks); sharded (FSDP) checkpoints do not."""
        return self.state is not None


SPECS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method; a second method with the same name, or a second owner of a config section,
    is refused (ValueError) and the registry is left as it was."""
    if spec.name in SPECS:
        raise ValueError(f"method '{spec.name}' is already registered")
    if spec.artifact not in ("adapter", "model"):
        raise ValueError(f"method '{spec.name}': artifact must be adapter or model")
    if spec.section is not None and spec.section.key in {s.section.key for s in SPECS.values() if s.section}:
        raise ValueError(f"method '{spec.name}': config section '{spec.section.key}' already has an owner")
    SPECS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    """The spec of a registered method; UserError naming the key for an unknown one."""
    if name not in SPECS:
        raise UserError(
            f"config: key 'method' is '{name}', not a known method{closest(name, SPECS)}; known: {', '.join(SPECS)}"
        )
    return SPECS[name]


def options(cfg):
    """`cfg` (an ExperimentConfig) as its method sees it: a copy with the method's lora variant
    set (method=dora: lora.use_dora true), so builder, plan and validation read one set of keys."""
    variant = dict(method_spec(cfg.method).lora_variant)
    if not variant:
        return cfg
    return dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, **variant))


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
        raise UserError(
            f"config: key '{key}' is '{targets}'{closest(targets, TARGET_PRESETS)}; "
            f"use {', '.join(TARGET_PRESETS)} or a comma list of module names"
        )
    return names
