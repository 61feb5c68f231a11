"""What configuration, planning and telemetry need to know about an adaptation method, without torch.

A method has two halves. Its `MethodSpec` here (name, which weights train, what it saves) is what
the config validates against and what the plan, FLOPs per token and the report read. Its builder in
methods.py (the peft config, or none for full fine-tuning) is what wraps a model. A test keeps the
two registries equal, so adding a method is one spec here, one builder there, and their tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.errors import UserError, closest


@dataclass(frozen=True)
class MethodSpec:
    name: str                   # the `method` config value
    summary: str                # one line for --help and the report
    trains_base: bool           # every base weight trains (full fine-tuning); else the base is frozen
    artifact: str               # what a run saves: "adapter" (peft adapter dir) or "model" (full model dir)
    adapts_linears: bool        # trains rank-r adapters on the `lora.targets` linears (lora.rank, lora.alpha)
    quantized_base: bool = False  # the frozen base's decoder linears are stored 4-bit NF4 (bitsandbytes)


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


register_spec(MethodSpec("lora", "LoRA adapters on the target projections (peft); base frozen",
                         trains_base=False, artifact="adapter", adapts_linears=True))
register_spec(MethodSpec("full", "full fine-tuning: every weight trains",
                         trains_base=True, artifact="model", adapts_linears=False))


# Module-name presets for Qwen2-style decoders (names of nn.Linear modules inside each layer).
TARGET_PRESETS: dict[str, list[str]] = {
    "qv": ["q_proj", "v_proj"],
    "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def resolve_targets(targets: str) -> list[str]:
    """A preset name or a comma-separated list of module names → module names."""
    if targets in TARGET_PRESETS:
        return list(TARGET_PRESETS[targets])
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not names or any(not n.replace("_", "").isalnum() for n in names):
        raise UserError(f"config: key 'lora.targets' is '{targets}'{closest(targets, TARGET_PRESETS)}; "
                        f"use {', '.join(TARGET_PRESETS)} or a comma list of module names")
    return names


# QLoRA (Dettmers et al. 2023): LoRA over a base whose decoder linears are 4-bit NF4, dequantized
# block by block in each matmul. Embeddings, norms and the output head stay unquantized.
register_spec(MethodSpec("qlora", "LoRA adapters over a 4-bit NF4 frozen base (bitsandbytes; qlora.* keys)",
                         trains_base=False, artifact="adapter", adapts_linears=True, quantized_base=True))
