"""Block helpers the sections share (render.py's block tuples): tables per group, intervals, verdicts.

Every number goes through report/fmt.py here, at render time.
"""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.metrics import METRICS


def unit_of(key: str):
    """The formatter of a registered metric's values (metrics.Metric.unit; plain numbers otherwise)."""
    return fmt.UNITS[METRICS[key].unit] if key in METRICS else fmt.num


def mean_ci(d: dict, unit) -> str:
    """mean ± sd [95% CI] over seeds."""
    if not d or d.get("mean") is None:
        return fmt.DASH
    s = unit(d["mean"])
    if d.get("sd") is not None:
        s += f" ± {unit(d['sd'])}"
    if d.get("ci_low") is not None:
        s += f" [{unit(d['ci_low'])}, {unit(d['ci_high'])}]"
    return s


def interval(ci: dict | None, unit=fmt.num) -> str:
    return f"[{unit(ci.get('ci_low'))}, {unit(ci.get('ci_high'))}]" if ci else fmt.DASH


def verdict(d: dict) -> str:
    """A comparison's verdict: which side is better where resolved."""
    return {"lora": "LoRA better", "full": "full better"}[d["better"]] if d["resolved"] else "not resolved"


def group_table(groups: dict, cols: list[tuple[str, str, callable]]) -> tuple:
    """Table with one row per group: cols = [(header, key, formatter)]."""
    head = ["configuration", "seeds"] + [h for h, _, _ in cols]
    rows = [
        [g, len(v.get("seeds", []))] + [fmt.agg(v.get(k), f) for _, k, f in cols] for g, v in sorted(groups.items())
    ]
    return ("table", head, rows)


def vs_list(d: dict | None, labels: dict[str, tuple[str, callable]]) -> tuple:
    """The derived LoRA-vs-full figures of a section as a list: labels = {key: (text, formatter)}."""
    d = d or {}
    return (
        "ul",
        [f"{text}: {f(d.get(k))}" for k, (text, f) in labels.items()]
        + [
            "(ratios of seed means, point estimates; whether a difference is resolved, with its "
            "interval: the answer section)"
        ],
    )


def scored_by_examples(groups: dict, key: str) -> dict:
    """Groups whose `seeds` count is the number of scored values of `key` (base included)."""
    return {g: {**v, "seeds": [0] * v[key]["n"]} for g, v in groups.items()}
