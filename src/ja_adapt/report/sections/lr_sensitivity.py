"""Learning-rate sensitivity: per compared entry, its largest learning-rate sweep's best rate, the range
within tolerance and the sensitivity coefficient (analysis.lr_sensitivity)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok
from ja_adapt.report.sweeps import largest, sweep_metric, sweeps


def build(ctx) -> dict:
    return {"lr_sensitivity": lr_sensitivity(ctx.groups, ctx.cfg)}


def lr_sensitivity(groups, cfg: an.AnalysisConfig) -> dict:
    """Per compared entry (an arm of one arm's groups, else the method): its largest lr sweep. Two
    arms of one method (LoRA on q,v and on every linear) are two sweeps, each under its arm."""
    out = {"status": "ok", "by_method": {}}
    named: dict[str, list] = {}
    for bucket in sweeps(groups, "optim.lr"):
        arms = {g.arm for g in bucket}
        named.setdefault(arms.pop() if len(arms) == 1 else bucket[0].method, []).append(bucket)
    for entry in sorted(named):
        bucket = largest(named[entry], "optim.lr")
        name, metric = sweep_metric(bucket)
        pts = [
            {"lr": g.config["optim.lr"], "label": g.label, "metric": metric(g)}
            for g in sorted(bucket, key=lambda g: g.config["optim.lr"])
        ]
        out["by_method"][entry] = {
            "metric": name,
            "points": pts,
            **an.lr_sensitivity([(p["lr"], p["metric"]["mean"]) for p in pts], cfg.lr_tolerance),
        }
    return out if out["by_method"] else not_run()


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Learning rate sensitivity")]
    ls = res.get("lr_sensitivity")
    if not ok(ls):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        (
            "table",
            ["method", "metric", "best lr", "range within tolerance", "sensitivity coefficient", "lrs"],
            [
                [
                    m,
                    s["metric"],
                    fmt.num(s.get("best_lr")),
                    f"{fmt.num(s['range'][0])} – {fmt.num(s['range'][1])}" if s.get("range") else fmt.DASH,
                    fmt.num(s.get("sensitivity_coefficient")),
                    s.get("n_lrs"),
                ]
                for m, s in sorted(ls["by_method"].items())
            ],
        )
    )
    if "lr_sensitivity" in plots:
        b.append(("img", plots["lr_sensitivity"], "Learning-rate sensitivity"))
    return b
