"""The answer: each method at its chosen settings, seeds aggregated: mean ± sd with a 95% t-interval
over seeds per headline metric (metrics.HEADLINE), and the seed-level LoRA − full difference (Welch,
with the paired-by-seed test beside it), Holm-adjusted per question. A difference is *resolved* only
when its 95% interval excludes zero and its Holm-adjusted p is below evaluate.stats.ALPHA.

Every statistic is computed by the evaluation layer (evaluate.stats.seed_compare, holm).
"""

from __future__ import annotations

from ja_adapt.evaluate.stats import ALPHA, holm, seed_compare
from ja_adapt.report import fmt
from ja_adapt.report.blocks import interval, mean_ci, unit_of, verdict
from ja_adapt.report.comparison import Comparison
from ja_adapt.report.groups import lora_variants
from ja_adapt.report.load import adapts_linears
from ja_adapt.report.metrics import HEADLINE, Metric
from ja_adapt.report.sentences import headline_summary, lora_configurations, lora_name
from ja_adapt.report.status import not_run


def build(ctx) -> dict:
    """headline (the primary LoRA against full fine-tuning) and headline_variants (every other LoRA-family
    arm against the same full fine-tuning)."""
    cmp = ctx.cmp
    variants = {g.arm: headline(Comparison(g, cmp.b)) for g in lora_variants(ctx.groups, cmp.a)} if cmp.b else {}
    return {"headline": headline(cmp), "headline_variants": variants}


def headline(cmp: Comparison) -> dict:
    """The LoRA-vs-full table over seeds (module docstring)."""
    if not cmp.complete:
        return not_run("no LoRA and full fine-tuning groups to compare")
    methods = {"lora": _side(cmp.a), "full": _side(cmp.b)}
    metrics, families = {}, {}
    for m in HEADLINE:
        key, question = m.key, m.question
        a, b = _by_seed(cmp.a, m), _by_seed(cmp.b, m)
        if not a or not b:
            continue
        seeds = seed_compare(a, b)
        diff = seeds["welch"]
        if len(set(a.values())) == 1 and len(set(b.values())) == 1:  # exact (e.g. parameter counts)
            d = next(iter(a.values())) - next(iter(b.values()))
            diff = {
                "diff": d,
                "ci_low": d,
                "ci_high": d,
                "exact": True,
                "note": "the same value at every seed: the difference is exact",
            }
        metrics[key] = {
            "name": m.name,
            "lower_is_better": m.lower_is_better,
            "question": question,
            "lora": seeds["methods"]["a"],
            "full": seeds["methods"]["b"],
            "difference": diff,
            "paired_by_seed": seeds["paired"],
        }
        if seeds["welch"].get("p") is not None:
            families.setdefault(question, {})[key] = seeds["welch"]["p"]
    for ps in families.values():
        for key, p_holm in zip(ps, holm(list(ps.values()))):
            metrics[key]["difference"]["p_holm"] = p_holm
    for m in metrics.values():
        m["resolved"], m["better"] = _resolved(m["difference"], m["lower_is_better"])
    return {
        "status": "ok",
        "level": "seed",
        "direction": "difference = LoRA − full (mean over seeds); Welch's t-interval",
        "rule": f"resolved: the 95% interval of the difference excludes 0 and the Holm-adjusted p "
        f"(per question: {', '.join(sorted(families))}) is below {ALPHA}; a value equal at "
        "every seed (a parameter count) is exact, its difference needs no test",
        "methods": methods,
        "metrics": metrics,
        "families": {q: sorted(ps) for q, ps in families.items()},
    }


def _by_seed(g, m: Metric) -> dict:
    """{seed: value} of a metric over a group's runs (quality per seed, or summary.json)."""
    values = {r.seed: g.quality[r.seed].get(m.key) if m.source == "quality" else r.summary.get(m.key) for r in g.runs}
    return {s: v for s, v in values.items() if v is not None}


def _side(g) -> dict:
    """Which configuration a side of the headline is: its group's label, arm, method and seeds, and
    for a LoRA-family method the adapted projections, rank and alpha (the LoRA it is about)."""
    out = {"label": g.label, "arm": g.arm, "method": g.method, "seeds": [r.seed for r in g.runs], "config": g.config}
    if adapts_linears(g.method):
        out.update(
            targets=g.config.get("lora.targets"), rank=g.config.get("lora.rank"), alpha=g.config.get("lora.alpha")
        )
    return out


def _resolved(diff: dict, lower_is_better: bool) -> tuple[bool, str | None]:
    lo, hi, p = diff.get("ci_low"), diff.get("ci_high"), diff.get("p_holm")
    if diff.get("exact"):  # no sampling error: any nonzero difference is real
        p = 0.0
    if None in (lo, hi, p) or not (lo > 0 or hi < 0) or p >= ALPHA:
        return False, None
    lora_lower = hi < 0
    return True, "lora" if lora_lower == lower_is_better else "full"


def blocks(res: dict, plots: dict) -> list[tuple]:
    head = res.get("headline") or {}
    if head.get("status") != "ok":
        return [("p", headline_summary(res))]
    b = []
    b.append(
        (
            "p",
            f"LoRA here is {lora_name(head['methods']['lora'])}, the group {head['methods']['lora']['label']}. "
            f"Each cell: mean ± sd [95% t-interval of the mean] over seeds. Difference: LoRA − full "
            f"with Welch's 95% interval; Holm-adjusted p within its question. {head['rule']}.",
        )
    )
    rows = []
    for k, v in head["metrics"].items():
        unit, d = unit_of(k), v["difference"]
        rows.append(
            [
                v["name"],
                mean_ci(v["lora"], unit),
                mean_ci(v["full"], unit),
                (f"{unit(d.get('diff'))} " + ("(exact)" if d.get("exact") else interval(d, unit)))
                if "skipped" not in d
                else d["skipped"],
                fmt.num(d.get("p_holm"), 3),
                v["question"],
                verdict(v),
            ]
        )
    b.append(("table", ["metric", "LoRA", "full", "LoRA − full [95% CI]", "Holm p", "question", "verdict"], rows))
    b += _configurations(res)
    if "learning_vs_forgetting" in plots:
        b.append(
            (
                "img",
                plots["learning_vs_forgetting"],
                "Learning vs forgetting, per seed whose checkpoints were evaluated: Japanese gain against "
                "English / Chinese loss at each checkpoint",
            )
        )
    return b


def _configurations(res: dict) -> list[tuple]:
    """One row per LoRA configuration against full fine-tuning (headline and headline_variants)."""
    configs = lora_configurations(res) if res.get("headline_variants") else []
    if not configs:
        return []
    rows = []
    for name, h in configs:
        m, p = h["metrics"].get("ja_bits_per_char"), h["metrics"].get("params_trainable")
        d = (m or {}).get("difference") or {}
        rows.append(
            [
                name,
                h["methods"]["lora"]["arm"],
                mean_ci(p["lora"], fmt.integer) if p else fmt.DASH,
                mean_ci(m["lora"], fmt.num) if m else fmt.DASH,
                mean_ci(m["full"], fmt.num) if m else fmt.DASH,
                f"{fmt.num(d.get('diff'))} " + ("(exact)" if d.get("exact") else interval(d)) if m else fmt.DASH,
                verdict(m) if m else fmt.DASH,
            ]
        )
    return [
        (
            "p",
            "Each LoRA configuration compared against full fine-tuning, by the same rule (held-out "
            "Japanese bits/char; headline_variants in results.json):",
        ),
        (
            "table",
            [
                "LoRA configuration",
                "arm",
                "trainable parameters",
                "ja bits/char",
                "full ja bits/char",
                "LoRA − full [95% CI]",
                "verdict",
            ],
            rows,
        ),
    ]
