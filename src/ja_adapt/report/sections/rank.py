"""LoRA rank sensitivity: quality, parameters, memory and time per rank of the largest LoRA rank
sweep, and the recommended rank (the smallest not resolved from the best, stats.json)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok
from ja_adapt.report.sweeps import largest, sweep_metric, sweeps


def build(ctx) -> dict:
    return {"rank_sensitivity": rank_sensitivity(ctx.groups, ctx.cfg, ctx.stats_of, ctx.aliases)}


def rank_sensitivity(groups, cfg: an.AnalysisConfig, stats_of: dict | None = None, aliases: dict | None = None) -> dict:
    """Quality, parameters, memory and time per LoRA rank. The recommended rank is the smallest
    whose held-out bits/char is not resolved from the best rank's: the char-weighted difference's
    document-bootstrap 95% CI (stats.json, seed-matched runs) includes 0."""
    bucket = largest(sweeps(groups, "lora.rank", "lora"), "lora.rank")
    if bucket is None:
        return not_run()
    name, metric = sweep_metric(bucket)
    pts = []
    for g in sorted(bucket, key=lambda g: g.config["lora.rank"]):
        m, p = metric(g), g.summary("params_trainable")
        held = ((g.runs[0].eval or {}).get("domains") or {}).get("held_out") or {}
        pts.append(
            {
                "rank": g.config["lora.rank"],
                "label": g.label,
                "params_trainable": p,
                "metric": m,
                "metric_ci_seed0": held.get("bits_per_char_ci") if name == "ja_bits_per_char" else None,
                "peak_mem_bytes": g.summary("peak_mem_bytes"),
                "time_per_step_s": g.summary("time_per_step_s"),
                "run": g.runs[0].name,
            }
        )
    dr = an.diminishing_returns([(p["rank"], p["metric"]["mean"]) for p in pts], cfg.rank_tolerance)
    best = min((p for p in pts if p["metric"]["mean"] is not None), key=lambda p: p["metric"]["mean"], default=None)
    out = {
        "status": "ok",
        "metric": name,
        "points": pts,
        "diminishing_returns_rank": dr,
        "best_rank": best["rank"] if best else None,
        "seeds": min(len(g.runs) for g in bucket),
    }
    if best is not None and stats_of:
        for p in pts:
            p["vs_best"] = _pair_diff(stats_of, p["run"], best["run"], aliases or {}) if p is not best else None
        unresolved = [p["rank"] for p in pts if p is best or (p["vs_best"] and p["vs_best"].get("resolved") is False)]
        out["recommended_rank"] = min(unresolved)
        out["rule"] = (
            "the smallest rank whose held-out Japanese bits/char is not resolved from the best "
            "rank's (document level: char-weighted difference, bootstrap 95% CI includes 0; "
            f"{out['seeds']} seed)"
        )
    return out


def _pair_diff(stats_of: dict, a: str, b: str, aliases: dict) -> dict | None:
    """a − b held-out bits/char (char-weighted, document bootstrap CI) from stats.json, if present;
    aliases: run name → names of the same run copied into other experiments (report duplicates)."""
    names_a, names_b = {a, *aliases.get(a, ())}, {b, *aliases.get(b, ())}
    for e in (e for x in names_a for e in (stats_of.get(x) or {}).get("pairs", [])):
        if e["a"] in names_a | names_b and e["b"] in names_a | names_b and (e["a"] in names_a) != (e["b"] in names_a):
            cw = ((e["stats"].get("bits_per_char") or {}).get("held_out") or {}).get("char_weighted") or {}
            if cw.get("diff") is None or cw.get("ci_low") is None:
                return None
            sign = 1 if e["a"] in names_a else -1
            lo, hi = sorted((sign * cw["ci_low"], sign * cw["ci_high"]))
            return {"diff": sign * cw["diff"], "ci_low": lo, "ci_high": hi, "resolved": lo > 0 or hi < 0}
    return None


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "LoRA rank sensitivity")]
    rs = res.get("rank_sensitivity")
    if not ok(rs):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        (
            "table",
            ["rank", "trainable parameters", rs["metric"], "vs best rank (seed 0)", "peak memory", "time / step"],
            [
                [
                    p["rank"],
                    fmt.agg(p["params_trainable"], fmt.integer),
                    fmt.agg(p["metric"]),
                    _vs_best(p.get("vs_best")),
                    fmt.agg(p["peak_mem_bytes"], fmt.nbytes),
                    fmt.agg(p["time_per_step_s"], fmt.seconds),
                ]
                for p in rs["points"]
            ],
        )
    )
    b.append(
        (
            "p",
            f"Best measured rank: {rs['best_rank']}; recommended: {rs.get('recommended_rank', fmt.DASH)} "
            f"({rs.get('rule', 'no paired statistics')}). Seeds per rank: "
            + ", ".join(f"r={p['rank']}: {p['metric']['n']}" for p in rs["points"])
            + ".",
        )
    )
    if "rank_sensitivity" in plots:
        b.append(("img", plots["rank_sensitivity"], "Quality vs trainable parameters over LoRA ranks"))
    return b


def _vs_best(d: dict | None) -> str:
    if not d:
        return fmt.DASH
    return f"{fmt.num(d['diff'])} [{fmt.num(d['ci_low'])}, {fmt.num(d['ci_high'])}]" + (
        "" if d["resolved"] else " not resolved"
    )
