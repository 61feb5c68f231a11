"""IA3 (method=ia3): learned vectors scaling the activations of some projections; base frozen.

`ia3_modules` is the one reading of ia3.targets / ia3.feedforward: validation, the plan arithmetic
and the builder all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.methods.spec import MethodSpec, Section, key_error, register, resolve_targets


@dataclass
class Ia3Config:
    """IA3 (method=ia3): learned vectors scaling the activations of some projections."""

    targets: str = "k_proj,v_proj,down_proj"  # projections scaled (a preset or comma list)
    feedforward: str = "down_proj"  # of those, the ones scaled on their input (feed-forward), not
    # their output; "" = none


def ia3_modules(ia3: Ia3Config) -> tuple[list[str], list[str]]:
    """(the projections ia3.targets names, those ia3.feedforward names: scaled on their input, not
    their output); errors name the key."""
    targets = resolve_targets(ia3.targets, "ia3.targets")
    feedforward = resolve_targets(ia3.feedforward, "ia3.feedforward") if ia3.feedforward else []
    return targets, feedforward


def check(cfg) -> None:
    """ia3.feedforward names only modules of ia3.targets."""
    targets, feedforward = ia3_modules(cfg.ia3)
    if not set(feedforward) <= set(targets):
        raise key_error(
            "ia3.feedforward", f"'{cfg.ia3.feedforward}' must name only modules of ia3.targets ('{cfg.ia3.targets}')"
        )


def _ia3_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """IA3 keeps, for its vector's gradient, the output it scales (activation dtype) or, on a
    feed-forward target, the input it scales, which peft upcasts to the vector's fp32 first."""
    targets, feedforward = ia3_modules(options.ia3)
    return sum(4 * i if n in feedforward else act * o for n, i, o in arch.linears if n in targets)


def _ia3_vectors(arch, options) -> list[int]:
    """IA3 learns one vector per target: over the input of a feed-forward target (ia3.feedforward),
    over the output of the others."""
    targets, feedforward = ia3_modules(options.ia3)
    return [i if n in feedforward else o for n, i, o in arch.linears if n in targets]


def ia3_config(cfg):
    """peft IA3: a vector scaling each ia3.targets projection (its input for ia3.feedforward)."""
    from peft import IA3Config as PeftIA3Config  # here, not at the top: the methods layer is torch-free

    targets, feedforward = ia3_modules(cfg.ia3)
    return PeftIA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")


register(
    MethodSpec(
        "ia3",
        "IA3: learned scaling vectors on the ia3.targets projections; base frozen",
        trains_base=False,
        artifact="adapter",
        adapts_linears=False,
        trainable=lambda arch, options: arch.layers * sum(_ia3_vectors(arch, options)),
        grad_entry=lambda arch, options: frozenset(ia3_modules(options.ia3)[0]),
        trainable_tensors=lambda arch, options: arch.layers * len(_ia3_vectors(arch, options)),
        saved_per_token=_ia3_saved,
        merges=True,
        section=Section("ia3", Ia3Config),
        check=check,
        targets_key="ia3.targets",
        peft_config=ia3_config,
    )
)
