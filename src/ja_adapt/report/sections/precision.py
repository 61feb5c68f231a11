"""Mixed precision impact: time and memory per precision, and quality only when the runs were long
enough to compare it (a probe's groups carry no quality: then no metric and no recommendation)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok
from ja_adapt.report.sweeps import sweep_metric, sweeps


def build(ctx) -> dict:
    return {"precision_comparison": precision_comparison(ctx.groups, ctx.cfg)}


def precision_comparison(groups, cfg: an.AnalysisConfig) -> dict:
    """Time and memory per precision, and quality only when the runs were long enough to compare it
    (a probe's groups carry no quality: then no metric and no recommendation)."""
    found = sweeps(groups, "precision")
    if not found:
        return not_run()
    probe = all(r.purpose == "probe" for b in found for g in b for r in g.runs)
    out = {"status": "ok", "purpose": "probe" if probe else "quality", "by_method": {}, "recommended": {}}
    for bucket in found:
        method = bucket[0].method
        if method in out["by_method"]:
            continue
        name, metric = sweep_metric(bucket) if not probe else (None, lambda g: None)
        out["metric"] = name
        rows = {
            g.config["precision"]: {
                "label": g.label,
                "metric": metric(g),
                "peak_mem_bytes": g.summary("peak_mem_bytes"),
                "time_per_step_s": g.summary("time_per_step_s"),
                "train_time_s": g.summary("train_time_s"),
                "tokens_per_s": g.summary("tokens_per_s"),
            }
            for g in bucket
        }
        out["by_method"][method] = rows
        scored = {} if probe else {p: r["metric"]["mean"] for p, r in rows.items() if r["metric"]["mean"] is not None}
        if scored:
            best = min(scored.values())
            ok = [p for p, m in scored.items() if m <= best + cfg.precision_tolerance * abs(best)]
            out["recommended"][method] = min(ok, key=lambda p: rows[p]["time_per_step_s"]["mean"] or float("inf"))
    return out


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Mixed precision impact")]
    pc = res.get("precision_comparison")
    if not ok(pc):
        return b + [("p", NOT_RUN_TEXT)]
    probe = pc.get("purpose") == "probe"
    if probe:
        b.append(
            (
                "p",
                "A speed and memory probe: runs of a few steps, too short to compare quality, so no "
                "quality column and no recommendation. Time and memory are single measurements.",
            )
        )
    for m, rows in sorted(pc["by_method"].items()):
        quality = [] if probe else [pc["metric"]]
        b.append(
            (
                "table",
                ["method", "precision", *quality, "peak memory", "time / step", "total time"],
                [
                    [
                        m,
                        p,
                        *([] if probe else [fmt.agg(r["metric"])]),
                        fmt.agg(r["peak_mem_bytes"], fmt.nbytes),
                        fmt.agg(r["time_per_step_s"], fmt.seconds),
                        fmt.agg(r["train_time_s"], fmt.seconds),
                    ]
                    for p, r in sorted(rows.items())
                ],
            )
        )
    if "precision_comparison" in plots:
        b.append(("img", plots["precision_comparison"], "Quality, memory and time per precision"))
    return b
