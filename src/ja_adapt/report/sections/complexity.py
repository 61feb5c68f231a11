"""Linguistic complexity: bits/char per complexity bucket of the held-out text, per model, and the
LoRA-vs-full retention per bucket."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    groups, base, cmp = ctx.cmp.groups, ctx.base, ctx.cmp
    buckets = sorted(
        {
            k[len("bucket_") : -len("_bits_per_char")]
            for g in groups
            for s in g.quality
            for k in g.quality[s]
            if k.startswith("bucket_") and g.quality[s][k] is not None
        }
    )
    if not buckets:
        return {"complexity_analysis": not_run()}
    out = {
        "status": "ok",
        "buckets": buckets,
        "groups": {g.label: {b: g.q(f"bucket_{b}_bits_per_char") for b in buckets} for g in groups},
    }
    if base.quality:
        out["groups"]["base"] = {b: base.q(f"bucket_{b}_bits_per_char") for b in buckets}
    if cmp.complete:
        out["lora_full_retention"] = {
            b: an.retention(
                cmp.a.q(f"bucket_{b}_bits_per_char")["mean"], cmp.b.q(f"bucket_{b}_bits_per_char")["mean"], True
            )
            for b in buckets
        }
        out["direction"] = "full bits/char / LoRA bits/char per bucket; 1 = parity, < 1 = LoRA needs more bits"
    return {"complexity_analysis": out}


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Linguistic complexity")]
    cx = res.get("complexity_analysis")
    if not ok(cx):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        (
            "table",
            ["model"] + [f"{k} bits/char" for k in cx["buckets"]],
            [[g, *(fmt.agg(v[k]) for k in cx["buckets"])] for g, v in cx["groups"].items()],
        )
    )
    if cx.get("lora_full_retention"):
        b.append(
            (
                "p",
                f"Retention per bucket ({cx['direction']}): "
                + ", ".join(f"{k} {fmt.num(v)}" for k, v in cx["lora_full_retention"].items())
                + ".",
            )
        )
    return b
