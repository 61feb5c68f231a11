"""What fits a GPU of a given size: per method, the setting plan.py's memory model says fits, with
the config keys that train it. A search over plan.plan_memory (no model of its own); the rule is
in `recommend`'s docstring and docs/plan.md. `ja-adapt plan --recommend` prints it."""

from __future__ import annotations

from ja_adapt.config import base_dtype_problem
from ja_adapt.methods import SPECS
from ja_adapt.models.arch import architecture
from ja_adapt.models.plan import GIB, plan_memory, train_overrides

RECOMMEND_GB = (16, 24, 40, 80)  # consumer / workstation / data-centre GPU memory


def _largest_batch(config, budget: float, **kw) -> dict | None:
    """plan_memory of the largest batch (64 down to 1) whose total fits `budget`, else None."""
    for batch in (64, 32, 16, 8, 4, 2, 1):
        m = plan_memory(config, batch=batch, **kw)
        if m["total_bytes"] <= budget:
            return m
    return None


def recommend(
    config,
    *,
    gpu_gb: float,
    margin: float = 0.10,
    rank: int = 16,
    targets: str = "qv",
    precision: str = "bf16",
    seq: int = 2048,
) -> list[dict]:
    """Per method, the setting that fits `gpu_gb` GiB × (1 - margin), with what training can do.

    Rule: a frozen base is stored in bf16 (model.dtype) whenever training accepts it (precision
    bf16); the longest seq (seq, seq/2, ... 256) at which batch 1 fits; without activation
    checkpointing if possible (it costs a third more compute); the fused loss with 1024-row chunks
    only if that allows a larger batch; then the largest batch (≤ 64). LoRA rows report the largest
    rank (≤ 1024) that still fits. A method that fits nowhere gets fits False and its batch-1,
    seq-256 need. Each row's `overrides` are the config keys that train it (`train_overrides`).
    """
    budget = gpu_gb * GIB * (1 - margin)
    max_seq = architecture(config).max_positions or seq
    seqs = [sq for sq in dict.fromkeys((seq, seq // 2, seq // 4, seq // 8, 256)) if 256 <= sq <= max_seq]
    rows = []
    for spec in sorted(SPECS.values(), key=lambda m: not m.trains_base):
        base = "bf16" if base_dtype_problem(spec.name, "bf16", precision) is None else "fp32"
        kw = dict(method=spec.name, rank=rank, targets=targets, precision=precision, base_dtype=base)
        best = None
        for sq, ckpt in ((sq, ckpt) for sq in seqs for ckpt in (False, True)):
            options = [
                _largest_batch(config, budget, seq=sq, activation_checkpointing=ckpt, loss_chunk_size=chunk, **kw)
                for chunk in (0, 1024)
            ]
            options = [m for m in options if m is not None]
            if options:
                best = max(options, key=lambda m: m["setup"]["batch"])  # ties: one chunk
                break
        row = best or plan_memory(
            config, batch=1, seq=min(seqs or [256]), activation_checkpointing=True, loss_chunk_size=1024, **kw
        )
        out = {
            "gpu_gb": gpu_gb,
            "fits": best is not None,
            **row["setup"],
            "total_gb": row["total_bytes"] / GIB,
            "budget_gb": budget / GIB,
        }
        if best is not None and spec.adapts_linears:
            r, su = (
                rank,
                {k: v for k, v in best["setup"].items() if k not in ("rank", "targets", "packed", "lora_dropout")},
            )
            while r < 1024 and plan_memory(config, rank=2 * r, targets=targets, **su)["total_bytes"] <= budget:
                r *= 2
            out["max_rank"] = r
        out["overrides"] = train_overrides(out)
        rows.append(out)
    return rows
