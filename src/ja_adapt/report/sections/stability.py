"""Stability and robustness: final-window loss and gradient-norm variances, coefficients of variation,
the skipped fraction and the stability score per configuration (analysis.stability)."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table
from ja_adapt.report.groups import per_group

COLUMNS = (
    ("loss variance", "loss_variance"),
    ("grad-norm variance", "grad_norm_variance"),
    ("cv loss", "cv_loss"),
    ("cv grad norm", "cv_grad_norm"),
    ("skipped fraction", "skipped_fraction"),
    ("stability score", "stability_score"),
)


def build(ctx) -> dict:
    return {
        "stability_analysis": {
            "groups": per_group(ctx.compared, {k: (lambda key: lambda g: g.dyn(key))(k) for _, k in COLUMNS})
        }
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    return [group_table(res["stability_analysis"]["groups"], [(h, k, fmt.num) for h, k in COLUMNS])]
