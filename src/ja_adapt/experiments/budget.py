"""What a comparison holds equal between its entries (`compare --budget`): steps (every entry trains
`train.max_steps`), training tokens, or training FLOPs (the one FLOPs formula,
models.arch.flops_per_token, with the plan arithmetic's trainable count: torch-free, before any
training).

tokens and flops: the reference entry is the one that costs the most per step (tokens or FLOPs per
optimizer step); it trains `train.max_steps`, every other entry round(max_steps × cost_ref / cost_e)
steps, so no entry trains more than max_steps of the costliest allows and a frozen-base method
(LoRA: 4N + 6·trainable per token against full's 6N) trains more steps than full. The warmup is
kept proportional: optim.warmup_steps × steps_e / max_steps, rounded. Both keys become the
entry's overrides where they differ from the config's (its run directories and cache keys say
them; the reference's runs keep their equal-steps names); eval_every and save_every stay in steps.
An entry that sets either key itself is refused: the budget would override it silently."""

from __future__ import annotations

import copy

from ja_adapt.config import ExperimentConfig, with_overrides
from ja_adapt.core.errors import UserError
from ja_adapt.models.arch import flops_per_token
from ja_adapt.models.load import model_config, tokenizer_for
from ja_adapt.models.plan import count_parameters, method_settings

BUDGETS = ("steps", "tokens", "flops")
NAMES = {"steps": "equal steps", "tokens": "equal training tokens", "flops": "equal training FLOPs"}


def check_budget(kind: str) -> str:
    """`kind` when it is a known budget, else refused in one line."""
    if kind not in BUDGETS:
        raise UserError(f"--budget {kind}: not a budget; choose one of {', '.join(BUDGETS)}")
    return kind


def tokens_per_step(cfg: ExperimentConfig) -> int:
    """Training tokens per optimizer step (per rank): packed rows × row length."""
    return cfg.train.batch_size * cfg.train.grad_accum * cfg.data.seq_len


def with_extended_vocab(config, cfg: ExperimentConfig):
    """`config` with the embedding and output rows a `vocab.extend` run trains with: the tokenizer's
    length plus the added tokens (models.vocab.fit_rows grows the model to it when it has fewer
    rows); `config` itself without an extension."""
    if not cfg.vocab.extend:
        return config
    rows = len(tokenizer_for(cfg)) + cfg.vocab.extend
    current = config["vocab_size"] if isinstance(config, dict) else config.vocab_size
    if rows <= current:
        return config
    if isinstance(config, dict):
        return {**config, "vocab_size": rows}
    grown = copy.deepcopy(config)
    grown.vocab_size = rows
    return grown


def run_flops_per_token(cfg: ExperimentConfig, config=None) -> float:
    """Training FLOPs per token of a run of `cfg` (config: the model's config; loaded when None),
    its output head as wide as the run's vocabulary (with_extended_vocab)."""
    config = config if config is not None else model_config(cfg.model.name_or_path, cfg.model.trust_remote_code)
    config = with_extended_vocab(config, cfg)
    counts = count_parameters(
        config, method=cfg.method, rank=cfg.lora.rank, targets=cfg.lora.targets, settings=method_settings(cfg)
    )
    return flops_per_token(config, method=cfg.method, trainable_params=counts["trainable"], seq_len=cfg.data.seq_len)


def entry_costs(cfg: ExperimentConfig, entries: dict[str, dict], config=None) -> dict[str, dict]:
    """Entry → {"tokens_per_step", "flops_per_token", "flops_per_step"} of its configuration."""
    costs = {}
    for name, overrides in entries.items():
        c = with_overrides(cfg, overrides)
        tps = tokens_per_step(c)
        fpt = run_flops_per_token(c, config)
        costs[name] = {"tokens_per_step": tps, "flops_per_token": fpt, "flops_per_step": fpt * tps}
    return costs


# the keys a tokens or flops budget sets per entry: an entry (or the tuning) that sets one itself
# would be silently overridden, so it is refused
BUDGET_KEYS = ("train.max_steps", "optim.warmup_steps")


def _refuse_own_steps(entries: dict[str, dict], kind: str, tune_key: str | None) -> None:
    for name, overrides in entries.items():
        if own := [k for k in BUDGET_KEYS if k in overrides]:
            raise UserError(
                f"--arm {name}: sets {own[0]}, but --budget {kind} sets each entry's steps and warmup "
                f"(the costliest trains train.max_steps); drop {own[0]} from the arm, or compare at --budget steps"
            )
    if tune_key in BUDGET_KEYS:
        raise UserError(
            f"--tune {tune_key}: --budget {kind} sets each entry's steps and warmup; tune another key, "
            "or compare at --budget steps"
        )


def budget_overrides(
    cfg: ExperimentConfig, entries: dict[str, dict], kind: str, config=None, tune_key: str | None = None
) -> tuple[dict[str, dict], dict | None]:
    """Entry → the overrides its budget adds (train.max_steps, optim.warmup_steps where they differ
    from the config's: the reference entry's runs keep the names they have at equal steps), and the
    experiment.json record {kind, reference, per_entry: {entry: {steps, tokens, flops}}}. steps:
    nothing added and no record (experiments before budgets had none; their outputs stay the same).
    Refused: an entry or the tuned key setting a BUDGET_KEYS key under tokens or flops."""
    check_budget(kind)
    if kind == "steps":
        return {m: {} for m in entries}, None
    _refuse_own_steps(entries, kind, tune_key)
    costs = entry_costs(cfg, entries, config)
    per_step = {m: c["tokens_per_step" if kind == "tokens" else "flops_per_step"] for m, c in costs.items()}
    reference = max(entries, key=lambda m: per_step[m])  # the costliest per step; first on ties
    added, per_entry = {}, {}
    configured = {"train.max_steps": cfg.train.max_steps, "optim.warmup_steps": cfg.optim.warmup_steps}
    for m in entries:  # warmup < steps, as validation requires
        steps = max(1, round(cfg.train.max_steps * per_step[reference] / per_step[m]))
        warmup = min(round(cfg.optim.warmup_steps * steps / cfg.train.max_steps), steps - 1)
        own = {"train.max_steps": steps, "optim.warmup_steps": warmup}
        added[m] = {k: v for k, v in own.items() if v != configured[k]}
        tokens = steps * costs[m]["tokens_per_step"]
        per_entry[m] = {"steps": steps, "tokens": tokens, "flops": tokens * costs[m]["flops_per_token"]}
    record = {
        "kind": kind,
        "reference": reference,
        "rule": f"{NAMES[kind]}: the costliest entry per step ({reference}) trains train.max_steps "
        f"({cfg.train.max_steps}); each other entry round(max_steps x cost_ref / cost_entry) steps, "
        "warmup scaled alike",
        "per_entry": per_entry,
    }
    return added, record
