"""AdaLoRA (method=adalora): SVD-form LoRA whose rank budget is reallocated during training.

It starts at rank lora.rank on lora.targets (the lora.* keys) and prunes to adalora.target_rank on
average; its rank allocator runs after every optimizer step (`post_step`) and its state travels
with checkpoints (`state`), so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.methods.lora import adapted_entry, adapted_linears
from ja_adapt.methods.spec import MethodSpec, MethodState, Section, key_error, register, resolve_targets


@dataclass
class AdaLoraConfig:
    """AdaLoRA (method=adalora): starts at rank lora.rank on lora.targets, prunes to target_rank."""

    target_rank: int = 8  # average rank per adapted matrix once the budget is allocated
    tinit: float = 0.1  # share of train.max_steps trained at full rank before pruning
    tfinal: float = 0.2  # share of train.max_steps trained at the final budget
    delta_t: int = 10  # steps between rank reallocations
    beta1: float = 0.85  # EMA of the sensitivity scores
    beta2: float = 0.85  # EMA of their uncertainty


def check(cfg) -> None:
    """The adalora.* keys, and method=adalora without the LoRA variants it lacks."""
    lo = cfg.lora
    if cfg.method == "adalora" and (lo.use_dora or lo.train_embeddings or lo.train_token_ids or lo.init != "default"):
        raise key_error(
            "method",
            "is adalora, which has none of the lora.use_dora / train_embeddings / "
            "train_token_ids / init variants; leave them at their defaults",
        )
    a = cfg.adalora
    if a.target_rank < 1 or (cfg.method == "adalora" and a.target_rank > cfg.lora.rank):
        raise key_error(
            "adalora.target_rank",
            f"must be in 1..lora.rank ({cfg.lora.rank}: AdaLoRA's initial rank), got {a.target_rank}",
        )
    if a.tinit < 0 or a.tfinal < 0 or a.tinit + a.tfinal >= 1:
        raise key_error(
            "adalora.tinit",
            f"and adalora.tfinal must be >= 0 with a sum below 1 (got {a.tinit} "
            f"+ {a.tfinal}): the budget schedule runs between them",
        )
    if a.delta_t < 1:
        raise key_error("adalora.delta_t", f"must be >= 1, got {a.delta_t}")
    for key in ("beta1", "beta2"):
        if not 0 < getattr(a, key) < 1:
            raise key_error(f"adalora.{key}", f"must be in (0, 1), got {getattr(a, key)}")


def _adalora_params(arch, options) -> int:
    """SVD-form adapter at the initial rank r = lora.rank: P (r×in), Q (out×r), Λ (r×1)."""
    return arch.layers * sum(options.lora.rank * (i + o + 1) for _, i, o in adapted_linears(arch, options))


# ---- building and hooks (torch and peft imported inside: the methods layer is torch-free) ---------


def adalora_config(cfg):
    """peft AdaLoRA on lora.targets: rank lora.rank at first, adalora.target_rank on average at the
    end, its schedule over train.max_steps. peft adds AdaLoRA's orthogonality penalty only inside
    its own forward with labels, which ja-adapt's loss (train/loss.py) does not call: it is not applied."""
    from peft import AdaLoraConfig as PeftAdaLoraConfig

    a, steps = cfg.adalora, cfg.train.max_steps
    return PeftAdaLoraConfig(
        init_r=cfg.lora.rank,
        target_r=a.target_rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=resolve_targets(cfg.lora.targets),
        total_step=steps,
        tinit=int(a.tinit * steps),
        tfinal=int(a.tfinal * steps),
        deltaT=a.delta_t,
        beta1=a.beta1,
        beta2=a.beta2,
        orth_reg_weight=0.0,
        task_type="CAUSAL_LM",
    )


def _adalora_step(model, step: int) -> None:
    """AdaLoRA's rank budget: update the sensitivity scores from this step's gradients and
    mask the least important singular values (peft: after optimizer.step, before zero_grad)."""
    model.base_model.update_and_allocate(step)


# peft's RankAllocator keeps one tensor per trainable parameter in each of these dicts
_ALLOCATOR_SCORES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def _adalora_state(model) -> tuple[dict, dict]:
    """AdaLoRA's rank allocator: per trainable parameter its sensitivity (`ipt`), that
    sensitivity's EMA and its uncertainty's EMA (tensors `<dict>/<parameter name>`), and the rank
    pattern of the last reallocation (JSON). Also the trainable weights at full rank (`weight/...`):
    peft saves the adapter pruned to the rank pattern, but the masked rows of P and Q still move
    under AdamW's momentum and may be unmasked at the next reallocation."""
    allocator = model.base_model.rankallocator
    tensors = {f"{d}/{n}": t.contiguous() for d in _ALLOCATOR_SCORES for n, t in getattr(allocator, d).items()}
    tensors.update({f"weight/{n}": p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad})
    return tensors, {"rank_pattern": model.active_peft_config.rank_pattern}


def _adalora_load_state(model, tensors: dict, scalars: dict) -> None:
    """Put _adalora_state's tensors and rank pattern back into a freshly built AdaLoRA model."""
    import torch

    allocator = model.base_model.rankallocator
    allocator.reset_ipt()
    weights = {}
    for key, t in tensors.items():
        kind, _, name = key.partition("/")
        if kind not in ("weight", *_ALLOCATOR_SCORES):
            raise ValueError(f"AdaLoRA state has an unknown tensor '{key}'")
        if kind == "weight":
            weights[name] = t
        else:
            getattr(allocator, kind)[name] = t
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    if set(weights) != trainable:
        raise ValueError(
            f"AdaLoRA state does not match the model's trainable parameters ({sorted(set(weights) ^ trainable)[:3]})"
        )
    with torch.no_grad():
        for name, t in weights.items():
            params[name].copy_(t)
    model.active_peft_config.rank_pattern = scalars["rank_pattern"]


register(
    MethodSpec(
        "adalora",
        "AdaLoRA: SVD-form LoRA whose rank budget is reallocated during training (adalora.*)",
        trains_base=False,
        artifact="adapter",
        adapts_linears=True,
        trainable=_adalora_params,
        grad_entry=adapted_entry,
        adapter_product=True,
        trainable_tensors=lambda arch, options: 3 * arch.layers * len(adapted_linears(arch, options)),  # P, Λ, Q
        frozen_added=lambda arch, options: arch.layers * len(adapted_linears(arch, options)),  # rank counters
        state_copies=3,  # sensitivity, its EMA, uncertainty
        merges=True,
        section=Section("adalora", AdaLoraConfig),
        check=check,
        targets_key="lora.targets",
        peft_config=adalora_config,
        post_step=_adalora_step,
        state=MethodState(_adalora_state, _adalora_load_state, holds_weights=True),
    )
)
