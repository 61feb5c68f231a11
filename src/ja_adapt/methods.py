"""Adaptation methods: how a model is wrapped and which parameters train.

LoRA and full fine-tuning share one training loop; they differ only here. A method is a function
`(model, cfg) -> model` in a small registry that refuses duplicates, so peft's other methods (DoRA,
AdaLoRA, IA3, prefix tuning, QLoRA) plug in with one function each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ja_adapt.errors import UserError, closest

if TYPE_CHECKING:
    from ja_adapt.config import ExperimentConfig

# Module-name presets for Qwen2-style decoders (names of nn.Linear modules inside each layer).
TARGET_PRESETS: dict[str, list[str]] = {
    "qv": ["q_proj", "v_proj"],
    "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}

METHODS: dict[str, Callable[[torch.nn.Module, "ExperimentConfig"], torch.nn.Module]] = {}


def register(name: str):
    def add(fn):
        if name in METHODS:
            raise ValueError(f"method '{name}' is already registered")
        METHODS[name] = fn
        return fn
    return add


def resolve_targets(targets: str) -> list[str]:
    """A preset name or a comma-separated list of module names → module names."""
    if targets in TARGET_PRESETS:
        return list(TARGET_PRESETS[targets])
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not names or any(not n.replace("_", "").isalnum() for n in names):
        raise UserError(f"config: key 'lora.targets' is '{targets}'{closest(targets, TARGET_PRESETS)}; "
                        f"use {', '.join(TARGET_PRESETS)} or a comma list of module names")
    return names


def peft_lora_config(rank: int, alpha: float, dropout: float, targets: str):
    from peft import LoraConfig as PeftLoraConfig
    return PeftLoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                          target_modules=resolve_targets(targets), bias="none", task_type="CAUSAL_LM")


@register("lora")
def apply_lora(model: torch.nn.Module, cfg: "ExperimentConfig") -> torch.nn.Module:
    """peft LoRA on the target projections; the base weights are frozen."""
    from peft import get_peft_model
    lora = cfg.lora
    return get_peft_model(model, peft_lora_config(lora.rank, lora.alpha, lora.dropout, lora.targets))


@register("full")
def apply_full(model: torch.nn.Module, cfg: "ExperimentConfig") -> torch.nn.Module:
    """Full fine-tuning: every weight trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_method(model: torch.nn.Module, cfg: "ExperimentConfig") -> torch.nn.Module:
    if cfg.method not in METHODS:
        raise UserError(f"config: key 'method' is '{cfg.method}'{closest(cfg.method, METHODS)}; "
                        f"known: {', '.join(METHODS)}")
    return METHODS[cfg.method](model, cfg)


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model itself: under a peft wrapper, the wrapped one."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_adapter(model: torch.nn.Module) -> bool:
    """True when the model is a peft wrapper (its artifact is an adapter, not a full model)."""
    return hasattr(model, "peft_config")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights counted once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
