"""Learning rate per method: each method's grid, validation losses, chosen value, and the comparison
at the values both grids share (does the conclusion change at a shared rate?), from stats.json."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import interval, verdict
from ja_adapt.report.load import adapts_linears
from ja_adapt.report.status import NOT_RUN_TEXT, not_run


def build(ctx) -> dict:
    return {"lr_tuning": lr_tuning(ctx.exps, ctx.stats_of)}


def lr_tuning(exps, stats_of: dict) -> dict:
    """The tuning records of the compare experiments (experiments.run_compare), keyed by compared
    entry (method or arm), with each grid point's held-out Japanese bits/char and the LoRA − full
    comparisons at shared values (stats.json). An entry tuned in several experiments (the demo's
    methods comparison reuses LoRA's and full fine-tuning's runs) is shown from the first."""
    tuned = [e for e in exps if (e.manifest.get("tuning") or {}).get("spec")]
    if not tuned:
        return not_run("the comparison was run at one configured value per method (no --tune grid)")
    key, selection = tuned[0].manifest["tuning"]["spec"]["key"], tuned[0].manifest["tuning"]["spec"]["selection"]
    points, grids, chosen, at_edge = _grid_points(tuned, key)
    shared = []
    for v in sorted(set(grids.get("lora", [])) & set(grids.get("full", []))):
        a = next((p["run"] for p in points["lora"] if p["value"] == v), None)
        b = next((p["run"] for p in points["full"] if p["value"] == v), None)
        shared.append({"value": v, **_doc_diff(stats_of, a, b)})
    at_choice = (
        _doc_diff(stats_of, *(next(p["run"] for p in points[m] if p["value"] == chosen[m]) for m in ("lora", "full")))
        if {"lora", "full"} <= set(chosen)
        else None
    )
    changes = None
    if at_choice and shared and at_choice.get("resolved") is not None:
        changes = any(
            (s.get("better"), s.get("resolved")) != (at_choice.get("better"), at_choice.get("resolved")) for s in shared
        )
    return {
        "status": "ok",
        "key": key,
        "selection": selection,
        "grids": grids,
        "points": points,
        "chosen": chosen,
        "at_grid_edge": at_edge,
        **_search(tuned, key, chosen, points),
        "at_chosen": at_choice,
        "at_shared_values": shared,
        "conclusion_changes_at_shared_value": changes,
        "level": "document (one pair of seed-0 checkpoints per row)",
    }


REFERENCE_RATIO = 10
REFERENCE_SOURCES = "LoRA Without Regret (2025); Biderman et al. (2024)"


def _search(tuned: list, key: str, chosen: dict, points: dict) -> dict:
    """Per entry, from the first experiment tuning it: the tie tolerance and rule, the loss band
    (lowest loss to lowest × (1 + tolerance)), the ties, the points added beyond the starting grid
    and whether the limit stopped the search, the seed spread at the choice (_seed_spread, over
    `points`: _grid_points'); and the rate ratio (rate_ratio)."""
    out = {k: {} for k in ("band", "ties", "extended", "limit_reached", "seed_spread")}
    out |= {"tolerance": None, "tie_rule": None, "method_of": {}}
    for exp in tuned:
        t = exp.manifest["tuning"]
        if t["spec"]["key"] != key:
            continue
        out["tolerance"] = out["tolerance"] if out["tolerance"] is not None else t["spec"].get("tolerance")
        out["tie_rule"] = out["tie_rule"] or t["spec"].get("tie_rule")
        for m in t["spec"]["grids"]:
            if m in out["method_of"]:
                continue
            out["method_of"][m] = ((exp.manifest.get("arms") or {}).get(m) or {}).get("method", m)
            for k in ("band", "ties", "extended", "limit_reached"):
                out[k][m] = (t.get(k) or {}).get(m)
            losses = {p["value"]: p["val_loss"] for p in points[m]}  # the final grid's, in order
            out["seed_spread"][m] = _seed_spread(exp, key, m, chosen.get(m), losses)
    out["rate_ratio"] = _rate_ratio(key, chosen, out.pop("method_of"))
    return out


def _seed_spread(exp, key: str, m: str, value, tuning_losses: dict) -> dict | None:
    """The measured tuning noise beside the stated tolerance: the final validation losses of entry
    m's seeds at its chosen value (low, high; spread = high − low, and relative to low), and the
    grid points whose seed-0 loss (tuning_losses: value → loss, None where training stopped) lies
    within that spread of the lowest (the ties a band of the seed spread would make). The choice
    itself was made before the other seeds trained, so it follows the tolerance. None: fewer than
    two seeds finished at the choice."""
    losses = sorted(
        r.summary["final_val_loss"]
        for r in exp.runs
        if r.arm == m and r.config.get(key) == value and (r.summary or {}).get("final_val_loss") is not None
    )
    if len(losses) < 2:
        return None
    spread = losses[-1] - losses[0]
    finished = {v: x for v, x in tuning_losses.items() if x is not None}
    best = min(finished.values(), default=None)
    return {
        "n": len(losses),
        "low": losses[0],
        "high": losses[-1],
        "spread": spread,
        "relative": spread / abs(losses[0]),
        "ties": [v for v, x in finished.items() if x - best <= spread],  # in grid order
    }


def _rate_ratio(key: str, chosen: dict, method_of: dict) -> dict | None:
    """LoRA's chosen rate ÷ full fine-tuning's (the "lora" entry, else the first LoRA-family one),
    beside the literature's ≈10×; None unless both were tuned on optim.lr."""
    family = sorted((m for m, meth in method_of.items() if adapts_linears(meth)), key=lambda m: m != "lora")
    if key != "optim.lr" or "full" not in chosen or not family or not chosen["full"]:
        return None
    return {
        "lora_entry": family[0],
        "ratio": chosen[family[0]] / chosen["full"],
        "reference": REFERENCE_RATIO,
        "reference_sources": REFERENCE_SOURCES,
    }


def _grid_points(tuned: list, key: str) -> tuple[dict, dict, dict, dict]:
    """(points, grids, chosen, at_edge) per compared entry, each from the first experiment tuning it
    over `key`: a point is a grid value's validation loss and held-out bits/char (the tuning seed)."""
    points, grids, chosen, at_edge = {}, {}, {}, {}
    for exp in tuned:
        t = exp.manifest["tuning"]
        if t["spec"]["key"] != key:
            continue
        for m, start in t["spec"]["grids"].items():
            if m in points:
                continue
            grid = (t.get("grid") or {}).get(m) or start  # the final grid, extensions included
            pts = []
            for v in grid:
                run = next(
                    (r for r in exp.runs if r.arm == m and r.seed == t["spec"]["seed"] and r.config.get(key) == v), None
                )
                held = (((run.eval or {}).get("domains") or {}).get("held_out") or {}) if run else {}
                pts.append(
                    {
                        "value": v,
                        "val_loss": t["val_loss"][m].get(str(v)),
                        "ja_bits_per_char": held.get("bits_per_char"),
                        "ja_bits_per_char_ci": held.get("bits_per_char_ci"),
                        "run": run.name if run else None,
                    }
                )
            points[m], grids[m], chosen[m] = pts, grid, t["chosen"][m]
            at_edge[m] = t.get("at_grid_edge", {}).get(m)
    return points, grids, chosen, at_edge


def _doc_diff(stats_of: dict, a: str | None, b: str | None) -> dict:
    """LoRA − full held-out Japanese bits/char of runs a, b from stats.json (document level)."""
    if not a or not b:
        return {"skipped": "missing run"}
    st, flipped = None, False
    for e in stats_of.get(a, {}).get("pairs", []):
        if {e["a"], e["b"]} == {a, b}:
            st, flipped = e["stats"], e["a"] != a
    corpus = (((st or {}).get("bits_per_char") or {}).get("held_out") or {}).get("char_weighted") or {}
    d, lo, hi = corpus.get("diff"), corpus.get("ci_low"), corpus.get("ci_high")
    if d is None or lo is None or hi is None:
        return {"lora_run": a, "full_run": b, "skipped": "no paired statistics in stats.json"}
    if flipped:
        d, lo, hi = -d, -hi, -lo
    resolved = lo > 0 or hi < 0
    return {
        "lora_run": a,
        "full_run": b,
        "diff": d,
        "ci_low": lo,
        "ci_high": hi,
        "resolved": resolved,
        "better": ("lora" if hi < 0 else "full") if resolved else None,
        "weighting": corpus.get("weighting"),
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    """The report's learning-rate tuning section: each method's grid and its choice, their plot, then
    whether LoRA − full changes at a shared rate."""
    t = res.get("lr_tuning") or {}
    if t.get("status") != "ok":
        return [("p", t.get("reason", NOT_RUN_TEXT))]
    b = []
    b.append(
        (
            "p",
            f"Each method's {t['key']} was chosen from its own grid by {t['selection']}; the other seeds "
            "then trained at the choice. Held-out bits/char of each grid point (seed 0) with its 95% "
            "document-bootstrap interval:",
        )
    )
    b += [_grid_table(t, m, pts) for m, pts in t["points"].items()]
    b += _search_blocks(t)
    if "lr_tuning" in plots:
        b.append(("img", plots["lr_tuning"], "Validation loss over each method's learning-rate grid"))
    return b + _shared_rate_blocks(t)


def _grid_table(t: dict, m: str, pts: list[dict]) -> tuple:
    """One method's grid: each value's validation loss and held-out bits/char, the chosen one marked."""
    return (
        "table",
        [f"{m}: {t['key']}", "final validation loss", "held-out ja bits/char [95% CI]", "chosen"],
        [
            [
                fmt.num(p["value"]),
                fmt.num(p["val_loss"]),
                f"{fmt.num(p['ja_bits_per_char'])} {interval(p.get('ja_bits_per_char_ci'))}",
                "chosen" + (" (edge of the grid)" if t["at_grid_edge"].get(m) else "")
                if p["value"] == t["chosen"][m]
                else "",
            ]
            for p in pts
        ],
    )


def _search_blocks(t: dict) -> list[tuple]:
    """How each grid was extended and the choice made: the tie band and rule, the ties, the points
    added and whether the limit stopped the search; then the rate ratio beside the literature's."""
    if t.get("tolerance") is None:  # a tuning record from before the search
        return []
    b = [
        (
            "p",
            f"While an entry's choice was at an edge of its grid, the next point beyond it (same log "
            f"spacing) was added and trained; points within {fmt.num(100 * t['tolerance'])}% of the "
            f"lowest final validation loss are ties (the band), and the rule chooses {t['tie_rule']}. "
            "The seed spread is the measured noise beside it: the final validation losses of the seeds "
            "at the choice (max − min), and the points within that spread of the lowest.",
        ),
        (
            "table",
            ["entry", "band (final validation loss)", "ties", "seed spread at the choice", "ties within it"]
            + ["points added", "search"],
            [
                [
                    m,
                    " – ".join(fmt.num(x) for x in t["band"][m] or ()) or fmt.DASH,
                    ", ".join(fmt.num(v) for v in t["ties"][m] or ()) or fmt.DASH,
                    *_spread_cells((t.get("seed_spread") or {}).get(m)),
                    ", ".join(fmt.num(v) for v in t["extended"][m] or ()) or "none",
                    _search_end(t, m),
                ]
                for m in t["points"]
            ],
        ),
    ]
    r = t.get("rate_ratio")
    if r:
        b.append(
            (
                "p",
                f"Rate ratio: {r['lora_entry']}'s chosen {t['key']} ÷ full fine-tuning's = "
                f"{fmt.num(r['ratio'])}× (the literature's reference: ≈{r['reference']}×, "
                f"{r['reference_sources']}).",
            )
        )
    return b


def _spread_cells(sp: dict | None) -> list[str]:
    """The seed spread's two cells: the spread (relative, over n seeds) and the points within it."""
    if not sp:
        return [fmt.DASH, fmt.DASH]
    return [
        f"{fmt.num(sp['spread'])} ({fmt.num(100 * sp['relative'])}%, {sp['n']} seeds)",
        ", ".join(fmt.num(v) for v in sp["ties"]) or fmt.DASH,
    ]


def _search_end(t: dict, m: str) -> str:
    if t["limit_reached"].get(m):
        return "stopped by the limit of extra points, choice at the grid's edge"
    return "choice at the grid's edge" if t["at_grid_edge"].get(m) else "choice inside the grid"


def _shared_rate_blocks(t: dict) -> list[tuple]:
    """LoRA − full at each method's own rate and at each shared rate, and whether the verdict changes
    (nothing where neither was measured)."""
    rows = []
    if t.get("at_chosen"):
        rows.append(["each method's own choice", *_diff_cells(t["at_chosen"])])
    rows += [[f"shared {t['key']} = {fmt.num(s['value'])}", *_diff_cells(s)] for s in t["at_shared_values"]]
    if not rows:
        return []
    b = [
        (
            "p",
            "Does the conclusion change at a shared rate? LoRA − full held-out bits/char (seed 0, "
            "char-weighted, 95% document-bootstrap interval):",
        ),
        ("table", ["setting", "LoRA − full", "95% CI", "verdict"], rows),
    ]
    ch = t.get("conclusion_changes_at_shared_value")
    if ch is not None:
        b.append(
            (
                "p",
                "At a shared rate the verdict "
                + ("differs from" if ch else "is the same as")
                + " the verdict at each method's own rate.",
            )
        )
    return b


def _diff_cells(d: dict) -> list[str]:
    if "diff" not in d:
        return [fmt.DASH, fmt.DASH, d.get("skipped", "")]
    return [fmt.num(d["diff"]), interval(d), verdict(d)]
