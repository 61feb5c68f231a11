"""Learning dynamics: initial loss drop, convergence, steps to target, the generalization gap and
overfitting per configuration, and every compared run's loss curves (thinned, with smoothing)."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table
from ja_adapt.report.groups import curve, per_group


def build(ctx) -> dict:
    groups = per_group(
        ctx.compared,
        {
            "initial_loss_drop": lambda g: g.dyn("initial_loss_drop"),
            "convergence_step": lambda g: g.dyn("convergence_step"),
            "step_to_target": lambda g: g.dyn("step_to_target"),
            "generalization_gap": lambda g: g.dyn("generalization_gap"),
            "overfitting_onset_step": lambda g: g.agg(lambda r: g.dynamics[r.seed]["overfitting"]["onset_step"]),
            "overfitting_detected": lambda g: {
                str(r.seed): g.dynamics[r.seed]["overfitting"]["detected"] for r in g.runs
            },
        },
    )
    curves = {
        r.name: {
            "group": g.label,
            "seed": r.seed,
            "train": curve(r.train, "loss", ctx.cfg.smooth_window),
            "val": curve(r.val, "val_loss", ctx.cfg.val_smooth_window),
        }
        for g in ctx.compared
        for r in g.runs
    }
    return {"learning_dynamics": {"groups": groups, "curves": curves}}


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Loss curves")]
    if "loss_curves" in plots:
        b.append(("img", plots["loss_curves"], "Training and validation loss, raw and smoothed"))
    ld = res["learning_dynamics"]["groups"]
    b.append(
        group_table(
            ld,
            [
                ("initial loss drop", "initial_loss_drop", fmt.num),
                ("convergence step", "convergence_step", fmt.integer),
                ("step to target", "step_to_target", fmt.integer),
                ("generalization gap", "generalization_gap", fmt.num),
                ("overfitting onset", "overfitting_onset_step", fmt.integer),
            ],
        )
    )
    obs = []
    for g, v in sorted(ld.items()):
        det = [s for s, d in v["overfitting_detected"].items() if d]
        obs.append(
            f"{g}: overfitting detected in {len(det)} of {len(v['overfitting_detected'])} seed(s)"
            + (f", onset at step {fmt.agg(v['overfitting_onset_step'], fmt.integer)}" if det else "")
        )
    b.append(("ul", obs))
    return b
