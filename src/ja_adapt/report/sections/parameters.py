"""Parameter efficiency: total and trainable parameters and the artifact on disk, and the derived
LoRA-vs-full reductions (ratios of seed means)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table, vs_list
from ja_adapt.report.groups import per_group


def build(ctx) -> dict:
    return {
        "efficiency_metrics": {
            "groups": per_group(
                ctx.compared,
                {
                    "params_total": lambda g: g.summary("params_total"),
                    "params_trainable": lambda g: g.summary("params_trainable"),
                    "trainable_pct": lambda g: g.agg(
                        lambda r: 100.0 * r.summary["params_trainable"] / r.summary["params_total"]
                    ),
                    "artifact_bytes": lambda g: g.summary("artifact_bytes"),
                },
            ),
            "lora_vs_full": ctx.cmp.vs(
                {
                    "parameter_reduction_pct": (an.reduction_pct, lambda g: g.summary("params_trainable")),
                    "parameter_gain": (lambda a, b: an.ratio(b, a), lambda g: g.summary("params_trainable")),
                    "artifact_reduction_pct": (an.reduction_pct, lambda g: g.summary("artifact_bytes")),
                    "artifact_gain": (lambda a, b: an.ratio(b, a), lambda g: g.summary("artifact_bytes")),
                }
            ),
        }
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    eff = res["efficiency_metrics"]
    b = [
        ("h", 4, "Parameter efficiency"),
        group_table(
            eff["groups"],
            [
                ("total parameters", "params_total", fmt.integer),
                ("trainable parameters", "params_trainable", fmt.integer),
                ("trainable %", "trainable_pct", lambda x: fmt.pct(x, 3)),
                ("artifact on disk", "artifact_bytes", fmt.nbytes),
            ],
        ),
    ]
    if eff.get("lora_vs_full"):
        b.append(
            vs_list(
                eff["lora_vs_full"],
                {
                    "parameter_reduction_pct": ("trainable-parameter reduction", fmt.pct),
                    "parameter_gain": ("fewer trainable parameters", fmt.times),
                    "artifact_reduction_pct": ("artifact size reduction", fmt.pct),
                    "artifact_gain": ("smaller artifact", fmt.times),
                },
            )
        )
    return b
