"""Rank-stabilised LoRA (method=rslora): lora with lora.use_rslora set, so the update is scaled by
alpha / sqrt(rank) instead of alpha / rank."""

from __future__ import annotations

from ja_adapt.methods.lora import LORA_FAMILY
from ja_adapt.methods.spec import MethodSpec, register

register(
    MethodSpec(
        "rslora",
        "rank-stabilised LoRA: update scaled by alpha/sqrt(r) (lora.use_rslora)",
        lora_variant=(("use_rslora", True),),
        **LORA_FAMILY,
    )
)
