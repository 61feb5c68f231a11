"""DoRA (method=dora): LoRA with a learned magnitude per output row, i.e. lora with lora.use_dora
set (its arithmetic and builder are lora.py's, which read use_dora)."""

from __future__ import annotations

from ja_adapt.methods.lora import LORA_FAMILY
from ja_adapt.methods.spec import MethodSpec, register

register(
    MethodSpec(
        "dora",
        "DoRA: LoRA with a learned magnitude per output (lora.use_dora)",
        lora_variant=(("use_dora", True),),
        **LORA_FAMILY,
    )
)
